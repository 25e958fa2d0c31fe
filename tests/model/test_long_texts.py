"""Long texts: token tasks tagged in overlapping windows, the embedding at the backbone's limit, truncation flags."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mtst.model.predictor import Predictor, TorchRuntime
from mtst.model.windows import cut_windows

SENTENCE = "John Smith visited Paris. "
TAGS = {"john": "B-PER", "smith": "I-PER", "paris": "B-LOC"}  # every other word: O


def word_tagger(model):
    """A Predictor whose NER logits are fixed by each token's word: a head that tags by word, window or not."""
    runtime = TorchRuntime(model)
    labels = model.config.heads["ner"].labels
    vocab = {index: token for token, index in model.tokenizer.tokenizer.get_vocab().items()}
    run = runtime.run

    def fixed(batch, tasks, include_embedding):
        out = run(batch, tasks, include_embedding)
        ids = batch["input_ids"]
        logits = torch.zeros(*ids.shape, len(labels))
        for (row, position), token in np.ndenumerate(ids.numpy()):
            logits[row, position, labels.index(TAGS.get(vocab[int(token)], "O"))] = 10.0
        out["logits"]["ner"] = logits
        return out

    runtime.run = fixed
    return Predictor(runtime)


def expected_entities(text: str) -> list[tuple[str, int, int, str]]:
    found, start = [], 0
    while (start := text.find("John Smith", start)) >= 0:
        found.append(("PER", start, start + 10, "John Smith"))
        paris = text.index("Paris", start)
        found.append(("LOC", paris, paris + 5, "Paris"))
        start = paris
    return found


def entities(row: dict) -> list[tuple[str, int, int, str]]:
    return [(e["label"], e["start"], e["end"], e["text"]) for e in row["ner"]]


@pytest.mark.parametrize("stride", [None, 0, 1, 5, 17, 40])
def test_ner_covers_the_whole_text_at_any_stride(tiny_model, stride):
    text = SENTENCE * 30  # 150 tokens, window 48
    row = word_tagger(tiny_model).predict(text, tasks=["ner"], stride=stride)
    assert entities(row) == expected_entities(text)  # 60 entities, exact offsets, none split by a window edge
    assert "truncated" not in row  # nothing a token task reads was cut


def test_windows_overlap_and_end_at_word_boundaries(tiny_model):
    item = tiny_model.tokenizer([SENTENCE * 30], max_length=0)[0]
    windows = cut_windows(item, 48, 8)
    assert windows[0].start == 1 and windows[-1].end == len(item.input_ids) - 1
    for before, after in zip(windows, windows[1:]):
        assert after.start < before.end  # they overlap
        assert item.word_ids[before.end] != item.word_ids[before.end - 1]  # a window ends before a word starts
        assert before.end - before.start <= 46


def test_a_word_longer_than_the_window_keeps_the_words_after_it(tiny_model):
    text = "John Smith visited Paris " + "un" + "s" * 80 + " John Smith visited Paris."
    row = word_tagger(tiny_model).predict(text, tasks=["ner"])
    assert entities(row) == expected_entities(text)


def test_sentence_tasks_say_when_they_read_a_cut_text(tiny_model):
    rows = word_tagger(tiny_model).predict([SENTENCE * 30, SENTENCE], tasks=["topic", "ner"])
    assert rows[0]["truncated"] is True and "truncated" not in rows[1]
    assert len(rows[0]["ner"]) == 60
    short = Predictor(TorchRuntime(tiny_model)).predict(SENTENCE, tasks=["topic", "ner"])
    assert short["topic"] == rows[1]["topic"]


def test_encode_reads_up_to_the_backbones_limit_not_the_heads(tiny_st_dir):
    st = pytest.importorskip("sentence_transformers")
    from mtst import MultiTaskModel

    model = MultiTaskModel.from_backbone(tiny_st_dir, max_seq_length=16)  # the heads' window: 16 tokens
    model.config.encoder.embedding_max_seq_length = 48  # the backbone's (sentence_bert_config.json)
    text = "the cat sat on the mat and the dog sat on the mat " * 3  # ~39 tokens: above 16, below 48
    ours = model.encode([text])[0]
    theirs = st.SentenceTransformer(str(tiny_st_dir), device="cpu").encode([text])[0]
    assert float(np.dot(ours, theirs) / np.linalg.norm(ours) / np.linalg.norm(theirs)) >= 0.9999


def test_the_server_counts_cut_texts_and_its_rows_say_so(tiny_model):
    from fastapi.testclient import TestClient

    from mtst.serving.app import ServeSettings, create_app

    app = create_app(tiny_model, ServeSettings(max_chars=2000))
    long, short = "the cat sat on the mat " * 20, "the cat sat"  # 122 tokens: cut at 48
    with TestClient(app) as http:
        rows = http.post("/v1/predict", json={"sentences": [long, short], "tasks": ["topic", "ner"]}).json()
        http.post("/v1/embed", json={"sentences": [long, short, long]})
    assert rows["predictions"][0]["truncated"] is True and "truncated" not in rows["predictions"][1]
    value = app.state.metrics.registry.get_sample_value
    assert value("mtst_truncated_texts_total", {"op": "predict"}) == 1
    assert value("mtst_truncated_texts_total", {"op": "embed"}) == 2


@pytest.mark.parametrize("copies", [2, 3])
def test_chunked_mode_a_text_of_identical_chunks_is_like_one_chunk(tiny_model, copies):
    chunk = "john smith sat on the mat . " * 6 + "the " * 4  # 46 tokens: one full window of 48 with [CLS], [SEP]
    predictor = Predictor(TorchRuntime(tiny_model))
    tokens = len(tiny_model.tokenizer([chunk], max_length=0)[0].input_ids)
    assert tokens == 48 == tiny_model.config.encoder.max_seq_length
    one, many = predictor.encode([chunk, chunk * copies], chunking=True, stride=0)
    assert float(np.dot(one, many)) >= 0.9999
    other = chunk + "the dog sat " * 20  # a second chunk unlike the first: chunked differs from truncated
    assert not np.allclose(predictor.encode(other, chunking=True), predictor.encode(other), atol=1e-3)
    rows = predictor.predict([chunk, chunk * copies], chunking=True, stride=0, include_embedding=True)
    assert rows[1]["topic"]["distribution"] == pytest.approx(rows[0]["topic"]["distribution"], abs=1e-5)
    assert rows[1]["embedding"] == pytest.approx(rows[0]["embedding"], abs=1e-5)
    assert "truncated" not in rows[1] and len(rows[1]["ner"]) == copies * len(rows[0]["ner"])


def test_onnx_windows_and_embedding_limit_match_torch(tiny_st_dir, tmp_path):
    pytest.importorskip("onnxruntime")
    from mtst import MultiTaskModel
    from mtst.inference.backends import load_predictor
    from mtst.inference.export import export_model

    model = MultiTaskModel.from_backbone(tiny_st_dir, max_seq_length=16)
    model.config.encoder.embedding_max_seq_length = 48
    model.add_head("topic", "sentence_classification", ["world", "sports", "business"])
    model.add_head("ner", "token_classification", ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"])
    exported = export_model(model.save(tmp_path / "model"), tmp_path / "onnx", format="onnx")
    onnx = load_predictor(exported, backend="onnx")
    text = SENTENCE * 6  # 30 tokens: 3 windows of 16, embedded whole (48)
    want, got = model.predict(text, include_embedding=True), onnx.predict(text, include_embedding=True)
    assert [(e["label"], e["start"], e["end"]) for e in got["ner"]] == [(e["label"], e["start"], e["end"])
                                                                        for e in want["ner"]]
    assert want["ner"] and got["truncated"] is want["truncated"] is True
    assert np.allclose(onnx.encode(text), model.encode(text), atol=1e-5)
    assert not np.allclose(model.encode(text), model.encode(" ".join(text.split()[:8])), atol=1e-3)


@pytest.mark.slow
def test_the_shipped_model_tags_all_90_entities_and_embeds_long_texts_like_sentence_transformers():
    from sentence_transformers import SentenceTransformer

    from mtst import MultiTaskModel
    from mtst.model.encoder import default_backbone_path

    model = MultiTaskModel.load(precision="fp32")
    sentence = "Angela Merkel met Emmanuel Macron in Paris."
    text = " ".join([sentence] * 30)  # 1,320 characters, far past the heads' 128-token window
    found = [(e["label"], e["start"], e["end"], e["text"]) for e in model.predict(text, tasks=["ner"])["ner"]]
    expected = []
    for repeat in range(30):
        start = repeat * (len(sentence) + 1)
        expected += [("PER", start, start + 13, "Angela Merkel"), ("PER", start + 18, start + 33, "Emmanuel Macron"),
                     ("LOC", start + 37, start + 42, "Paris")]
    assert found == expected

    long = " ".join(["The committee discussed the budget for the new library in great detail."] * 12)  # ~170 tokens
    assert 128 < len(model.tokenizer([long], max_length=0)[0].input_ids) <= 256
    reference = SentenceTransformer(str(default_backbone_path()), device="cpu").encode([long])[0]
    assert float(np.dot(model.encode(long), reference)) >= 0.9999


def test_from_backbone_embeds_at_the_backbones_limit_unless_told_otherwise(tiny_st_dir):
    from mtst import MultiTaskModel

    assert MultiTaskModel.from_backbone(tiny_st_dir).config.encoder.embedding_max_seq_length is None  # heads: 48
    shorter = MultiTaskModel.from_backbone(tiny_st_dir, max_seq_length=16)  # heads train at 16
    assert shorter.config.encoder.embedding_max_seq_length == 48
    text = "the cat sat on the mat and the dog sat on the mat " * 3  # ~39 tokens
    assert np.allclose(shorter.encode([text]), MultiTaskModel.from_backbone(tiny_st_dir).encode([text]), atol=1e-6)
    asked = MultiTaskModel.from_backbone(tiny_st_dir, max_seq_length=16, embedding_max_seq_length=16)
    assert asked.config.encoder.embedding_max_seq_length == 16
    assert not np.allclose(asked.encode([text]), shorter.encode([text]), atol=1e-4)


def test_info_shows_the_embedding_limit_beside_the_heads(tiny_st_dir, tmp_path):
    from mtst import MultiTaskModel
    from mtst.inference.describe import describe

    model = MultiTaskModel.from_backbone(tiny_st_dir, max_seq_length=16)
    model.add_head("topic", "sentence_classification", ["a", "b"])
    facts = describe(model.save(tmp_path / "m"))
    assert (facts["max_seq_length"], facts["embedding_max_seq_length"]) == (16, 48)
    assert describe(tiny_st_dir)["embedding_max_seq_length"] == 48
