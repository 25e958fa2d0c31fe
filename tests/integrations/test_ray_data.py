"""MtstPredictor called in this process, as a Ray actor calls it: columns kept, the same floats as the model's own
encode / predict for the same batch composition, one-line errors. No Ray cluster needed."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from mtst import MtstError
from mtst.integrations.ray_data import EMBEDDING, ROW, ModelSpec, MtstPredictor, PredictOptions

TEXTS = ["john smith lives in paris", "the cat sat on the mat", "", "stock fell today", "mary visited london"]


@pytest.fixture
def model_dir(tiny_model, tmp_path):
    return tiny_model.save(tmp_path / "model")


def test_embeddings_equal_encode_and_columns_are_kept(tiny_st_dir, bare_model):
    predictor = MtstPredictor(ModelSpec(backbone=str(tiny_st_dir)), PredictOptions(batch_size=2), threads=1)
    out = predictor(pa.table({"id": [10, 11, 12, 13, 14], "text": TEXTS}))
    assert out.column_names == ["id", "text", EMBEDDING, "truncated"]
    assert out.column("id").to_pylist() == [10, 11, 12, 13, 14]
    vectors = np.array(out.column(EMBEDDING).to_pylist(), dtype=np.float32)
    assert np.array_equal(vectors, bare_model.encode(TEXTS, batch_size=2))


def test_numbered_rows_are_encoded_chunk_by_chunk(tiny_st_dir, bare_model):
    options = PredictOptions(chunk_size=2)
    batch = {"text": np.array(TEXTS, dtype=object), ROW: np.arange(4, 9)}  # chunks 2: [4, 5], 3: [6, 7], 4: [8]
    out = MtstPredictor(ModelSpec(backbone=str(tiny_st_dir)), options)(batch)
    expected = np.concatenate([bare_model.encode(part) for part in (TEXTS[:2], TEXTS[2:4], TEXTS[4:])])
    assert np.array_equal(np.array(out.column(EMBEDDING).to_pylist(), dtype=np.float32), expected)


def test_every_head_predicts_as_the_model_does(model_dir, tiny_model):
    options = PredictOptions(tasks=None, embedding=True)
    out = MtstPredictor(ModelSpec(model=str(model_dir)), options)(pa.table({"text": TEXTS}))
    assert out.column_names == ["text", "topic", "ner", EMBEDDING, "truncated"]
    rows = tiny_model.predict(TEXTS, include_embedding=True)
    for got, want in zip(out.to_pylist(), rows, strict=True):
        assert got["topic"] == want["topic"] and got["ner"] == want["ner"]
        assert np.array_equal(np.float32(got[EMBEDDING]), np.float32(want[EMBEDDING]))
    schema = out.schema
    assert schema.field("topic").type.field("distribution").type.names == ["world", "sports", "business"]
    assert pa.types.is_list(schema.field("ner").type)


def test_one_task_without_embedding(model_dir):
    out = MtstPredictor(ModelSpec(model=str(model_dir)), PredictOptions(tasks=("ner",), embedding=False))(
        pa.table({"text": ["john smith lives in paris"]}))
    assert out.column_names == ["text", "ner", "truncated"]
    assert {entity["label"] for entity in out.column("ner")[0].as_py()} <= {"PER", "LOC", "ORG"}


@pytest.mark.parametrize(("options", "batch", "fragment"), [
    (PredictOptions(), pa.table({"sentence": ["a"]}), "no column 'text'"),
    (PredictOptions(text_column="n"), pa.table({"n": [1]}), "holds int64, not text"),
    (PredictOptions(), pa.table({"text": ["a", None], ROW: [0, 1]}), "row 1 has no text"),
    (PredictOptions(), pa.table({"text": ["a"], EMBEDDING: [1]}), "already has a column 'embedding'"),
])
def test_bad_batches_are_one_line_errors(tiny_st_dir, options, batch, fragment):
    predictor = MtstPredictor(ModelSpec(backbone=str(tiny_st_dir)), options)
    with pytest.raises(MtstError, match=fragment):
        predictor(batch)


@pytest.mark.parametrize(("make", "fragment"), [
    (lambda d: ModelSpec(model=d, backbone=d), "backbone cannot be combined"),
    (lambda d: ModelSpec(backbone=d, backend="onnx"), "needs a model directory"),
    (lambda d: ModelSpec(backend="tpu"), "unknown backend 'tpu'"),
    (lambda d: PredictOptions(embedding=False), "nothing to compute"),
    (lambda d: PredictOptions(batch_size=0), "batch_size must be at least 1"),
    (lambda d: MtstPredictor(ModelSpec(model=d), PredictOptions(tasks=("nope",))), "unknown task 'nope'"),
])
def test_bad_settings_are_one_line_errors(model_dir, make, fragment):
    with pytest.raises(MtstError, match=fragment):
        make(str(model_dir))


def test_a_head_less_model_cannot_predict_tasks_only(tiny_st_dir):
    with pytest.raises(MtstError, match="no heads; ask for the embedding"):
        MtstPredictor(ModelSpec(backbone=str(tiny_st_dir)), PredictOptions(tasks=None, embedding=False))


def test_rows_say_which_texts_a_sentence_task_read_cut(model_dir):
    out = MtstPredictor(ModelSpec(model=str(model_dir)), PredictOptions(tasks=("topic",), embedding=False))(
        pa.table({"text": ["the cat sat on the mat " * 20, "the cat sat"]}))
    assert out.column("truncated").to_pylist() == [True, False]


def test_embedding_rows_say_which_texts_were_cut_at_the_embedding_limit(tiny_st_dir):
    out = MtstPredictor(ModelSpec(backbone=str(tiny_st_dir)), PredictOptions())(
        pa.table({"text": ["the cat sat on the mat " * 20, "the cat sat"]}))
    assert out.column_names == ["text", EMBEDDING, "truncated"]
    assert out.column("truncated").to_pylist() == [True, False]


def test_a_multi_label_head_gets_label_lists_and_per_label_scores(tiny_st_dir, tmp_path):
    from mtst import MultiTaskModel

    model = MultiTaskModel.from_backbone(tiny_st_dir)
    model.add_head("tags", "multi_label_classification", ["animal", "finance", "sport"], hidden_dim=8)
    model.config.heads["tags"].thresholds = [0.0, 1.0, 0.5]  # animal always, finance never
    options = PredictOptions(tasks=("tags",), embedding=False)
    out = MtstPredictor(ModelSpec(model=str(model.save(tmp_path / "model"))), options)(pa.table({"text": TEXTS}))
    kind = out.schema.field("tags").type
    assert kind.names == ["labels", "scores"] and kind.field("labels").type == pa.list_(pa.string())
    assert kind.field("scores").type.names == ["animal", "finance", "sport"]
    rows = model.predict(TEXTS, tasks=["tags"])
    assert out.column("tags").to_pylist() == [row["tags"] for row in rows]
    assert all(row["tags"]["labels"][:1] == ["animal"] and "finance" not in row["tags"]["labels"] for row in rows)
