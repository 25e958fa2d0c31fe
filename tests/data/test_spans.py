"""Span-offset JSONL -> word tags, IOB1 -> IOB2, source + split beside a test file, stratified splits, format
inference, and the one-line errors of each (mtst.data.spans, readers, splits, sources)."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from mtst.data.readers import Examples, read_examples
from mtst.data.sources import DataSource, SplitSpec, TaskData, infer_format
from mtst.data.spans import iob1_to_iob2, looks_like_iob1, span_tags, words_with_offsets
from mtst.data.splits import read_task_splits, split_examples
from mtst.errors import MtstError

SENTENCE = "sentence_classification"
TOKEN = "token_classification"
TEXT = "John Smith moved to New York-based Acme."


def write_jsonl(path, rows: list) -> DataSource:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return DataSource(path=path, format="spans")


# ---- spans ------------------------------------------------------------------------------------
def test_words_are_letter_digit_runs_and_single_punctuation():
    assert [w for w, _, _ in words_with_offsets("New York-based, 2024.")] == ["New", "York", "-", "based", ",",
                                                                              "2024", "."]
    assert words_with_offsets("a  bc")[1] == ("bc", 3, 5)


def test_list_and_dict_spans_give_bio_tags(tmp_path):
    rows = [{"text": TEXT, "spans": [[0, 10, "PER"], [20, 28, "LOC"], [35, 39, "ORG"]]},
            {"text": TEXT, "spans": [{"start": 0, "end": 4, "label": "PER"},
                                     {"start": 35, "end": 40, "labels": ["ORG"]}]},  # Label Studio's "labels"
            {"text": "nothing here", "spans": []}]
    examples = read_examples(write_jsonl(tmp_path / "ner.jsonl", rows), token=True)
    assert examples.texts[0] == ["John", "Smith", "moved", "to", "New", "York", "-", "based", "Acme", "."]
    assert examples.labels[0] == ["B-PER", "I-PER", "O", "O", "B-LOC", "I-LOC", "O", "O", "B-ORG", "O"]
    assert examples.labels[1][:2] == ["B-PER", "O"] and examples.labels[1][-2:] == ["B-ORG", "I-ORG"]
    assert examples.labels[2] == ["O", "O"]
    assert examples.origins == [f"{tmp_path / 'ner.jsonl'}:{n}" for n in (1, 2, 3)]


def test_span_whitespace_is_trimmed_and_label_map_applies(tmp_path):
    source = write_jsonl(tmp_path / "ner.jsonl", [{"text": "Mary won", "label": [[0, 5, "1"]]}])
    source = source.model_copy(update={"label_column": "label", "label_map": {"1": "PER"}})  # doccano's key
    source = DataSource.model_validate(source.model_dump())  # label_column counts as set
    assert read_examples(source, token=True).labels == [["B-PER", "O"]]


@pytest.mark.parametrize(("spans", "message"), [
    ([[0, 3, "PER"]], r"ner.jsonl:1: span \[0, 3\] 'Joh' cuts the word 'John'; spans must start and end on word "),
    ([[1, 4, "PER"]], r"cuts the word 'John'"),
    ([[0, 99, "PER"]], r"ner.jsonl:1: span \[0, 99\] is out of range for a text of 40 characters"),
    ([[5, 5, "PER"]], r"span \[5, 5\] is out of range"),
    ([[-1, 4, "PER"]], r"span \[-1, 4\] is out of range"),
    ([[0, 10, "PER"], [5, 10, "PER"]], r"ner.jsonl:1: span \[5, 10\] 'Smith' overlaps another span"),
    ([[4, 5, "PER"]], r"span \[4, 5\] covers only whitespace"),
    ([["a", 4, "PER"]], r"span offsets must be integers"),
    ([[0, 4]], r"a span is \[start, end, label\]"),
    ("PER", r"spans must be a list"),
])
def test_bad_spans_are_one_line_errors(tmp_path, spans, message):
    source = write_jsonl(tmp_path / "ner.jsonl", [{"text": TEXT, "spans": spans}])
    with pytest.raises(MtstError, match=message) as error:
        read_examples(source, token=True)
    assert "\n" not in str(error.value)


def test_spans_need_a_token_task(tmp_path):
    source = write_jsonl(tmp_path / "ner.jsonl", [{"text": TEXT, "spans": []}])
    with pytest.raises(MtstError, match="spans data holds entity offsets; use it for a token task"):
        read_examples(source, token=False)


def test_span_tags_direct():
    assert span_tags("a b", [[2, 3, "X"]], "f:1") == (["a", "b"], ["O", "B-X"])


# ---- IOB1 -------------------------------------------------------------------------------------
IOB1 = "John I-PER\nSmith I-PER\nmet O\nMary I-PER\n\nParis I-LOC\nBerlin B-LOC\nwon O\n"
IOB2 = "John B-PER\nSmith I-PER\nmet O\nMary B-PER\n\nParis B-LOC\nBerlin B-LOC\nwon O\n"


def test_iob1_file_is_detected_and_rewritten(tmp_path):
    (tmp_path / "a.conll").write_text(IOB1, encoding="utf-8")
    (tmp_path / "b.conll").write_text(IOB2, encoding="utf-8")
    converted = read_examples(DataSource(path=tmp_path / "a.conll", format="conll"), token=True)
    expected = read_examples(DataSource(path=tmp_path / "b.conll", format="conll"), token=True)
    assert converted.labels == expected.labels == [["B-PER", "I-PER", "O", "B-PER"], ["B-LOC", "B-LOC", "O"]]
    kept = read_examples(DataSource(path=tmp_path / "a.conll", format="conll", scheme="iob2"), token=True)
    assert kept.labels[0] == ["I-PER", "I-PER", "O", "I-PER"]  # scheme: iob2 reads tags as they are


def test_iob2_and_malformed_iob2_are_left_alone():
    iob2 = [["B-PER", "I-PER", "O", "B-LOC", "B-LOC"]]
    assert not looks_like_iob1(iob2) and iob1_to_iob2(iob2[0]) == iob2[0]
    malformed = [["B-PER", "O"], ["I-LOC", "O"]]  # has B- starts: IOB2 with a slip, not IOB1
    assert not looks_like_iob1(malformed)
    assert looks_like_iob1([["I-PER", "B-PER", "O"]])


def test_explicit_iob1_scheme_converts(tmp_path):
    (tmp_path / "a.conll").write_text("Paris I-LOC\nis O\n\nJohn B-PER\n", encoding="utf-8")
    auto = read_examples(DataSource(path=tmp_path / "a.conll", format="conll"), token=True)
    assert auto.labels == [["I-LOC", "O"], ["B-PER"]]  # a B- start: auto leaves it
    forced = read_examples(DataSource(path=tmp_path / "a.conll", format="conll", scheme="iob1"), token=True)
    assert forced.labels == [["B-LOC", "O"], ["B-PER"]]


# ---- errors the issue lists -------------------------------------------------------------------
def test_wrong_conll_column_count_and_empty_files(tmp_path):
    (tmp_path / "a.conll").write_text("John NNP B-PER\nwon O\n", encoding="utf-8")
    with pytest.raises(MtstError, match=r"a.conll:2: expected 3 columns \(as on line 1\), got 2"):
        read_examples(DataSource(path=tmp_path / "a.conll", format="conll"), token=True)
    (tmp_path / "b.conll").write_text("-DOCSTART- O\n\n", encoding="utf-8")
    with pytest.raises(MtstError, match="b.conll: no examples in the file"):
        read_examples(DataSource(path=tmp_path / "b.conll", format="conll"), token=True)
    (tmp_path / "c.csv").write_text("text,label\n", encoding="utf-8")
    with pytest.raises(MtstError, match="c.csv: no examples below the header"):
        read_examples(DataSource(path=tmp_path / "c.csv", format="csv"), token=False)
    (tmp_path / "d.csv").write_text("text,tag\na,b\n", encoding="utf-8")
    with pytest.raises(MtstError, match=r"d.csv:1: no column 'label'; the header has \['text', 'tag'\]"):
        read_examples(DataSource(path=tmp_path / "d.csv", format="csv"), token=False)


# ---- source + split beside a test file; stratified splits ---------------------------------------
def write_sentences(path, labels: list[str]) -> DataSource:
    path.write_text("text,label\n" + "".join(f"row {i},{label}\n" for i, label in enumerate(labels)))
    return DataSource(path=path, format="csv")


def test_given_test_file_wins_and_source_is_cut_into_the_rest(tmp_path):
    source = write_sentences(tmp_path / "all.csv", ["a", "b"] * 10)
    test = write_sentences(tmp_path / "test.csv", ["a", "b", "a"])
    data = TaskData(source=source, test=test, split=SplitSpec(train=0.8, dev=0.1, test=0.1, seed=3))
    splits = read_task_splits("topic", SENTENCE, data)
    assert set(splits) == {"train", "dev", "test"}
    assert splits["test"].texts == ["row 0", "row 1", "row 2"] and "test.csv" in splits["test"].origins[0]
    assert (len(splits["train"]), len(splits["dev"])) == (18, 2)  # test's share went to train
    plain = read_task_splits("topic", SENTENCE, TaskData(source=source, split=SplitSpec(seed=3)))
    assert plain["dev"].texts == splits["dev"].texts  # same seed, same dev cut
    with pytest.raises(ValueError, match="give either 'source'"):
        TaskData(source=source, train=test, split=SplitSpec())


def test_stratified_split_keeps_label_shares_and_is_opt_in():
    labels = ["a"] * 80 + ["b"] * 20
    examples = Examples([f"t{i}" for i in range(100)], labels, [f"f:{i}" for i in range(100)])
    parts = split_examples(examples, SplitSpec(train=0.8, dev=0.1, test=0.1, seed=1, stratify=True))
    assert {name: Counter(part.labels) for name, part in parts.items()} == {
        "train": Counter(a=64, b=16), "dev": Counter(a=8, b=2), "test": Counter(a=8, b=2)}
    again = split_examples(examples, SplitSpec(seed=1, stratify=True))
    assert again["dev"].texts == parts["dev"].texts  # deterministic
    unstratified = split_examples(examples, SplitSpec(seed=1))
    assert unstratified["dev"].texts != parts["dev"].texts


def test_stratify_puts_a_rare_label_in_train_and_refuses_word_tags():
    examples = Examples(["x", "y", "z", "w"], ["a", "a", "a", "rare"], ["f:1", "f:2", "f:3", "f:4"])
    parts = split_examples(examples, SplitSpec(train=0.5, dev=0.25, test=0.25, stratify=True))
    assert "rare" in parts["train"].labels
    words = Examples([["a"], ["b"]], [["O"], ["O"]], ["f:1", "f:2"])
    with pytest.raises(MtstError, match="split.stratify is for sentence labels"):
        split_examples(words, SplitSpec(stratify=True))


# ---- format inference --------------------------------------------------------------------------
def test_infer_format_from_name_and_spans_key(tmp_path):
    for name, fmt in [("a.csv", "csv"), ("a.TSV", "tsv"), ("a.conll", "conll"), ("a.txt", "conll"),
                      ("a.iob", "conll"), ("a.jsonl", "jsonl")]:
        assert infer_format(tmp_path / name, token_level=False) == fmt
    write_jsonl(tmp_path / "s.jsonl", [{"text": "a", "spans": []}])
    assert infer_format(tmp_path / "s.jsonl", token_level=True) == "spans"
    assert infer_format(tmp_path / "s.jsonl", token_level=False) == "jsonl"
    assert infer_format(tmp_path, token_level=True) == "hf_disk"
    with pytest.raises(MtstError, match="cannot tell the format from the name"):
        infer_format(tmp_path / "a.xlsx", token_level=False)
