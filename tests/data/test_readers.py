"""Readers, malformed files, splits, label sets, sub-token alignment and collate (mtst.data.readers)."""

from __future__ import annotations

import json

import pytest
import torch

from mtst.data.pairs import read_pairs
from mtst.data.readers import Examples, read_examples
from mtst.data.sources import DataSource, SplitSpec, TaskData
from mtst.data.splits import check_labels, infer_labels, read_task_splits, split_examples
from mtst.data.task_encoding import collate, encode_task
from mtst.errors import MtstError
from mtst.model.heads import IGNORE_INDEX
from mtst.model.tokenization import TextTokenizer
from mtst.training.config import TaskSpec

SENTENCE = "sentence_classification"
TOKEN = "token_classification"

CONLL = """-DOCSTART- -X- -X- O

John NNP B-NP B-PER
lives VBZ B-VP O
in IN B-PP O
Paris NNP B-NP B-LOC
. . O O

Mary NNP B-NP B-PER
Smith NNP I-NP I-PER
"""


def write(tmp_path, name: str, text: str | bytes):
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return path


def source(path, format: str, **options) -> DataSource:
    return DataSource(path=path, format=format, **options)


# ---- readers --------------------------------------------------------------------------------
def test_csv_with_header_and_label_map(tmp_path):
    path = write(tmp_path, "a.csv", 'label,text\n1,"good, great movie"\n\n2,"a ""bad"" film"\n')
    examples = read_examples(source(path, "csv", label_map={"1": "pos", "2": "neg"}), token=False)
    assert examples.texts == ["good, great movie", 'a "bad" film']
    assert examples.labels == ["pos", "neg"]
    assert examples.origins == [f"{path}:2", f"{path}:4"]


def test_csv_without_header_uses_indices_like_ag_news(tmp_path):
    path = write(tmp_path, "ag.csv", '"3","Title one","Stock fell."\n"1","Title two","Team won."\n')
    spec = source(path, "csv", header=False, text_column=2, label_column=0, label_map={"1": "World", "3": "Business"})
    examples = read_examples(spec, token=False)
    assert examples.texts == ["Stock fell.", "Team won."]
    assert examples.labels == ["Business", "World"]


def test_tsv_keeps_stray_quotes_and_strips_spaces(tmp_path):
    path = write(tmp_path, "sst.tsv", 'sentence\tlabel\nthe "movie is good \t1\nbad film\t0\n')
    examples = read_examples(source(path, "tsv", text_column="sentence"), token=False)
    assert examples.texts == ['the "movie is good', "bad film"]
    assert examples.labels == ["1", "0"]


def test_jsonl_sentence_and_token_rows(tmp_path):
    rows = [{"text": "good movie", "label": 1}, {"text": "bad film", "label": 0}]
    path = write(tmp_path, "s.jsonl", "\n".join(json.dumps(row) for row in rows) + "\n\n")
    assert read_examples(source(path, "jsonl"), token=False).labels == ["1", "0"]

    rows = [{"words": ["John", "lives"], "tags": [1, 0]}]
    path = write(tmp_path, "t.jsonl", json.dumps(rows[0]))
    spec = source(path, "jsonl", text_column="words", label_column="tags", label_map={"0": "O", "1": "B-PER"})
    examples = read_examples(spec, token=True)
    assert examples.texts == [["John", "lives"]]
    assert examples.labels == [["B-PER", "O"]]


def test_jsonl_float_labels_match_integer_label_map_keys(tmp_path):
    path = write(tmp_path, "f.jsonl", '{"text": "good", "label": 1.0}\n{"text": "bad", "label": 0}\n')
    examples = read_examples(source(path, "jsonl", label_map={"0": "neg", "1": "pos"}), token=False)
    assert examples.labels == ["pos", "neg"]


def test_conll_skips_docstart_and_reads_tag_column(tmp_path):
    path = write(tmp_path, "c.txt", CONLL)
    examples = read_examples(source(path, "conll"), token=True)
    assert examples.texts == [["John", "lives", "in", "Paris", "."], ["Mary", "Smith"]]
    assert examples.labels == [["B-PER", "O", "O", "B-LOC", "O"], ["B-PER", "I-PER"]]
    assert examples.origins == [f"{path}:3", f"{path}:9"]
    chunks = read_examples(source(path, "conll", tag_column=2), token=True)
    assert chunks.labels[1] == ["B-NP", "I-NP"]


def test_max_examples_keeps_the_first_rows(tmp_path):
    path = write(tmp_path, "c.txt", CONLL)
    assert len(read_examples(source(path, "conll", max_examples=1), token=True)) == 1


def test_hf_disk_dataset_with_class_labels(tmp_path):
    datasets = pytest.importorskip("datasets")
    features = datasets.Features({
        "tokens": datasets.Sequence(datasets.Value("string")),
        "ner_tags": datasets.Sequence(datasets.ClassLabel(names=["O", "B-PER", "I-PER"])),
    })
    dataset = datasets.Dataset.from_dict({"tokens": [["Mary", "Smith", "won"]], "ner_tags": [[1, 2, 0]]},
                                         features=features)
    splits = datasets.DatasetDict({"train": dataset, "test": dataset})
    splits.save_to_disk(str(tmp_path / "dd"))
    spec = source(tmp_path / "dd" / "train", "hf_disk", text_column="tokens", label_column="ner_tags")
    examples = read_examples(spec, token=True)
    assert examples.labels == [["B-PER", "I-PER", "O"]]
    with pytest.raises(MtstError, match="DatasetDict with splits"):
        read_examples(source(tmp_path / "dd", "hf_disk", text_column="tokens", label_column="ner_tags"), token=True)


def test_read_pairs_sts_layout(tmp_path):
    text = "g\tMSRvid\t2012\t1\t2.500\tA cat sat.\tA dog sat.\ng\tx\t2012\t2\t4.0\tA man.\tThe man.\textra\tmore\n"
    path = write(tmp_path, "sts.csv", text)
    spec = source(path, "tsv", header=False, text_column=5, text_pair_column=6, label_column=4)
    first, second, scores, origins = read_pairs(spec)
    assert (first, second, scores) == (["A cat sat.", "A man."], ["A dog sat.", "The man."], [2.5, 4.0])
    assert origins[1] == f"{path}:2"


def test_read_pairs_errors(tmp_path):
    path = write(tmp_path, "sts.csv", "g\tx\t2012\t1\t2.5\ta\tb\ng\tx\t2012\t2\tn/a\tc\td\n")
    with pytest.raises(MtstError, match="sts.csv:2: score 'n/a' is not a number"):
        read_pairs(source(path, "tsv", header=False, text_column=5, text_pair_column=6, label_column=4))
    with pytest.raises(MtstError, match="sentence pairs need text_pair_column"):
        read_pairs(source(path, "tsv", header=False, text_column=5, label_column=4))
    spec = source(path, "tsv", header=False, text_column=5, text_pair_column=6, label_column=4)
    with pytest.raises(MtstError, match="text_pair_column is for pair tasks"):
        read_examples(spec, token=False)


# ---- malformed files ------------------------------------------------------------------------
@pytest.mark.parametrize(("name", "content", "format", "options", "message"), [
    ("missing.csv", None, "csv", {}, r"missing.csv: file not found"),
    ("empty.csv", "\n \n", "csv", {}, r"empty.csv: file is empty"),
    ("latin.csv", b"text,label\ngood,1\ncaf\xe9,0\n", "csv", {}, r"latin.csv:3: not valid UTF-8"),
    ("nocol.csv", "sentence,label\ngood,1\n", "csv", {}, r"nocol.csv:1: no column 'text'"),
    ("short.tsv", "a\tb\t1\nc\t0\n", "tsv", {"header": False, "text_column": 1, "label_column": 2},
     r"short.tsv:2: row has 2 column\(s\)"),
    ("header.csv", "text,label\n", "csv", {}, r"header.csv: no examples below the header"),
    ("nolabel.csv", "text,label\ngood,1\nbad,\n", "csv", {}, r"nolabel.csv:3: empty label"),
    ("map.csv", "text,label\ngood,1\nbad,7\n", "csv", {"label_map": {"1": "pos"}},
     r"map.csv:3: label '7' has no entry in label_map"),
    ("named.csv", "good,1\n", "csv", {"header": False}, r"named.csv: with header: false, columns are 0-based"),
    ("bad.jsonl", '{"text": "a", "label": 1}\n{"text": "b", "label": \n', "jsonl", {}, r"bad.jsonl:2: invalid JSON"),
    ("key.jsonl", '{"text": "a", "label": 1}\n{"txt": "b", "label": 1}\n', "jsonl", {},
     r"key.jsonl:2: no key 'text'"),
    ("notext.jsonl", '{"text": "", "label": 1}\n', "jsonl", {}, r"notext.jsonl:1: text must be a non-empty string"),
])
def test_sentence_readers_name_file_line_and_problem(tmp_path, name, content, format, options, message):
    path = tmp_path / name if content is None else write(tmp_path, name, content)
    with pytest.raises(MtstError, match=message):
        read_examples(source(path, format, **options), token=False)


@pytest.mark.parametrize(("content", "options", "message"), [
    ("John NNP B-PER\nlives VBZ\n", {}, r":2: expected 3 columns \(as on line 1\), got 2"),
    ("John\nlives\n", {}, r":1: expected 'word ... tag' columns"),
    ("John B-PER\n\nParis LOC\n", {}, r":3: tag 'LOC' is not BIO"),
    ("John NNP B-PER\n", {"tag_column": 5}, r":1: tag_column 5 is not a tag column"),
])
def test_conll_errors_name_the_line(tmp_path, content, options, message):
    path = write(tmp_path, "bad.conll", content)
    with pytest.raises(MtstError, match=str(path).replace("\\", "\\\\") + message):
        read_examples(source(path, "conll", **options), token=True)


def test_jsonl_token_rows_need_one_tag_per_word(tmp_path):
    path = write(tmp_path, "t.jsonl", json.dumps({"text": ["a", "b"], "label": ["O"]}))
    with pytest.raises(MtstError, match=r"t.jsonl:1: needs one tag per word \(2 words\)"):
        read_examples(source(path, "jsonl"), token=True)


def test_format_must_fit_the_task_kind(tmp_path):
    conll = write(tmp_path, "c.txt", CONLL)
    with pytest.raises(MtstError, match="use it for a token task"):
        read_examples(source(conll, "conll"), token=False)
    csv_path = write(tmp_path, "a.csv", "text,label\na,b\n")
    with pytest.raises(MtstError, match="token tasks read conll, jsonl or hf_disk"):
        read_examples(source(csv_path, "csv"), token=True)


def test_check_labels_names_origin_and_label_set():
    examples = Examples(texts=[["a"], ["b"]], labels=[["O"], ["B-XYZ"]], origins=["f.txt:1", "f.txt:3"])
    with pytest.raises(MtstError, match=r"f.txt:3: label 'B-XYZ' not in the label set \['O', 'B-PER', 'I-PER'\]"):
        check_labels(examples, ["O", "B-PER", "I-PER"])
    check_labels(Examples(["a"], ["pos"], ["g:1"]), ["neg", "pos"])  # no error


def test_read_task_splits_prefixes_errors_with_the_task(tmp_path):
    task = TaskSpec(name="ner", type=TOKEN, data={"train": {"path": str(tmp_path / "no.txt"), "format": "conll"}})
    with pytest.raises(MtstError, match=r"task 'ner': .*no.txt: file not found"):
        read_task_splits(task.name, task.type, task.data)


# ---- splits ---------------------------------------------------------------------------------
def make_examples(n: int) -> Examples:
    return Examples([f"text {i}" for i in range(n)], ["a" if i % 2 else "b" for i in range(n)],
                    [f"f.csv:{i + 1}" for i in range(n)])


def test_split_is_deterministic_by_seed_with_ratios_and_no_overlap():
    examples = make_examples(200)
    first = split_examples(examples, SplitSpec(train=0.7, dev=0.2, test=0.1, seed=1))
    again = split_examples(examples, SplitSpec(train=0.7, dev=0.2, test=0.1, seed=1))
    other = split_examples(examples, SplitSpec(train=0.7, dev=0.2, test=0.1, seed=2))
    assert {name: part.texts for name, part in first.items()} == {name: part.texts for name, part in again.items()}
    assert first["dev"].texts != other["dev"].texts
    assert {name: len(part) for name, part in first.items()} == {"train": 140, "dev": 40, "test": 20}
    seen = [text for part in first.values() for text in part.texts]
    assert sorted(seen) == sorted(examples.texts)  # every example exactly once
    numbers = [int(origin.split(":")[1]) for origin in first["train"].origins]
    assert numbers == sorted(numbers)  # file order kept inside a split


def test_zero_ratio_split_is_left_out_and_tiny_data_raises():
    parts = split_examples(make_examples(10), SplitSpec(train=0.9, dev=0.1, test=0.0))
    assert set(parts) == {"train", "dev"}
    with pytest.raises(MtstError, match="too few to split"):
        split_examples(make_examples(2), SplitSpec(train=0.5, dev=0.25, test=0.25))


def test_read_task_splits_from_one_source_applies_max_examples_per_split(tmp_path):
    path = write(tmp_path, "a.csv", "text,label\n" + "".join(f"t{i},{i % 3}\n" for i in range(50)))
    task = TaskSpec(name="topic", type=SENTENCE, data={
        "source": {"path": str(path), "format": "csv", "max_examples": 4}, "split": {"train": 0.6, "dev": 0.4,
                                                                                    "test": 0.0, "seed": 3}})
    parts = read_task_splits(task.name, task.type, task.data)
    assert {name: len(part) for name, part in parts.items()} == {"train": 4, "dev": 4}
    assert not set(parts["train"].texts) & set(parts["dev"].texts)


def test_read_task_splits_from_separate_files(tmp_path):
    train = write(tmp_path, "train.txt", CONLL)
    test = write(tmp_path, "test.txt", "Mary B-PER\n")
    task = TaskSpec(name="ner", type=TOKEN, data={"train": {"path": str(train), "format": "conll"},
                                                  "test": {"path": str(test), "format": "conll"}})
    parts = read_task_splits(task.name, task.type, task.data)
    assert set(parts) == {"train", "test"}
    assert parts["test"].labels == [["B-PER"]]


# ---- label sets -----------------------------------------------------------------------------
def test_infer_labels_orders_sentence_and_token_labels():
    assert infer_labels(Examples(["a", "b", "c"], ["sports", "world", "business"], ["x"] * 3), SENTENCE) == [
        "business", "sports", "world"]
    tags = [["B-PER", "I-PER", "O"], ["B-LOC", "B-ORG", "I-ORG"], ["I-MISC"]]
    assert infer_labels(Examples([["w"]] * 3, tags, ["x"] * 3), TOKEN) == [
        "O", "B-LOC", "I-LOC", "B-MISC", "I-MISC", "B-ORG", "I-ORG", "B-PER", "I-PER"]


def test_infer_labels_needs_two_labels():
    with pytest.raises(MtstError, match="at least two"):
        infer_labels(Examples(["a", "b"], ["pos", "pos"], ["f.csv:2", "f.csv:3"]), SENTENCE)


def test_an_unknown_task_type_is_rejected_before_any_file_is_read(tmp_path):
    data = TaskData(train=DataSource(path=tmp_path / "absent.csv", format="csv"))
    with pytest.raises(MtstError, match="unknown task type 'regression'"):
        read_task_splits("t", "regression", data)


# ---- encoding and collate -------------------------------------------------------------------
NER_LABELS = ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]


def test_first_subtoken_gets_the_label_others_and_specials_ignored(tiny_model):
    examples = Examples([["John", "unbelievable", "Paris"]], [["B-PER", "O", "B-LOC"]], ["f:1"])
    encoded = encode_task(tiny_model.tokenizer, examples, NER_LABELS, TOKEN)
    tokens = tiny_model.tokenizer.tokenizer.convert_ids_to_tokens(encoded.items[0].input_ids)
    assert tokens == ["[CLS]", "john", "un", "##believ", "##able", "paris", "[SEP]"]
    assert encoded.label_ids == [[IGNORE_INDEX, 3, 0, IGNORE_INDEX, IGNORE_INDEX, 1, IGNORE_INDEX]]


def test_truncated_words_get_no_label(tiny_model):
    short = TextTokenizer(tiny_model.tokenizer.tokenizer, max_seq_length=4)
    examples = Examples([["John", "unbelievable", "Paris"]], [["B-PER", "O", "B-LOC"]], ["f:1"])
    encoded = encode_task(short, examples, NER_LABELS, TOKEN)
    assert encoded.label_ids == [[IGNORE_INDEX, 3, 0, IGNORE_INDEX]]  # [CLS] john un [SEP]


def test_encode_task_checks_labels_first(tiny_model):
    examples = Examples(["good movie"], ["neutral"], ["s.tsv:2"])
    with pytest.raises(MtstError, match="s.tsv:2: label 'neutral' not in the label set"):
        encode_task(tiny_model.tokenizer, examples, ["neg", "pos"], SENTENCE)


def test_collate_sentence_and_token_batches(tiny_model):
    sentences = Examples(["good movie", "the cat sat on the mat"], ["pos", "neg"], ["a:1", "a:2"])
    encoded = encode_task(tiny_model.tokenizer, sentences, ["neg", "pos"], SENTENCE)
    assert len(encoded) == 2
    features, labels = collate(tiny_model.tokenizer, encoded, [1, 0])
    assert features["input_ids"].shape == features["attention_mask"].shape == features["word_ids"].shape == (2, 8)
    assert labels.tolist() == [0, 1] and labels.dtype == torch.long
    assert features["attention_mask"][1].tolist() == [1] * 4 + [0] * 4

    words = Examples([["Mary"], ["John", "lives", "in", "Paris"]], [["B-PER"], ["B-PER", "O", "O", "B-LOC"]],
                     ["c:1", "c:3"])
    encoded = encode_task(tiny_model.tokenizer, words, NER_LABELS, TOKEN)
    features, labels = collate(tiny_model.tokenizer, encoded, [0, 1])
    assert labels.shape == features["input_ids"].shape == (2, 6)
    assert labels.tolist() == [[-100, 3, -100, -100, -100, -100], [-100, 3, 0, 0, 1, -100]]


def test_yaml_label_map_with_number_keys_reads_ag_news_style_labels(tmp_path):
    import yaml

    path = write(tmp_path, "ag.csv", '"1","t","Team won."\n"2","t","Stock fell."\n')
    raw = yaml.safe_load(f"path: {path}\nformat: csv\nheader: false\ntext_column: 2\nlabel_column: 0\n"
                         "label_map: {1: World, 2: Sports}\n")
    assert read_examples(DataSource.model_validate(raw), token=False).labels == ["World", "Sports"]


def test_hf_disk_sentence_labels_and_errors(tmp_path):
    datasets = pytest.importorskip("datasets")
    features = datasets.Features({"sentence": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=["negative", "positive"])})
    datasets.Dataset.from_dict({"sentence": ["good film", "bad film"], "label": [1, 0]},
                               features=features).save_to_disk(str(tmp_path / "sst"))
    spec = source(tmp_path / "sst", "hf_disk", text_column="sentence")
    assert read_examples(spec, token=False).labels == ["positive", "negative"]  # ClassLabel names
    mapped = source(tmp_path / "sst", "hf_disk", text_column="sentence", label_map={"0": "neg", "1": "pos"})
    assert read_examples(mapped, token=False).labels == ["pos", "neg"]  # label_map wins over names
    with pytest.raises(MtstError, match=r"sst: no column 'text'; the dataset's columns are \['sentence', 'label'\]"):
        read_examples(source(tmp_path / "sst", "hf_disk"), token=False)
    with pytest.raises(MtstError, match="nowhere: directory not found"):
        read_examples(source(tmp_path / "nowhere", "hf_disk"), token=False)
    (tmp_path / "plain").mkdir()
    with pytest.raises(MtstError, match="plain: not a datasets save_to_disk directory"):
        read_examples(source(tmp_path / "plain", "hf_disk"), token=False)
