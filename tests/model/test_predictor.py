"""One Predictor over any runtime: torch and an ONNX export give the same rows, one task check, one ModelSpec."""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import export_test_model
from mtst import MtstError, MultiTaskModel
from mtst.inference.backends import ModelSpec, load_predictor
from mtst.inference.export import export_model
from mtst.model.predictor import Predictor, TorchRuntime, as_predictor

SENTENCES = ["John Smith visited Paris.", "a", "Stock fell!",
             "Mary works at Acme Corp in London, and John lives in Paris with a cat and a dog."]
NER_LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]


@pytest.fixture(scope="module", params=[None, 1], ids=["plain", "branch1-shapes-crf"])
def saved(tiny_st_dir, tmp_path_factory, request) -> tuple[Path, Path]:
    """(a saved model, its ONNX export): topic + NER, and with a branch an NER head reading word shapes + a CRF."""
    model_dir = export_test_model(tiny_st_dir, tmp_path_factory.mktemp("saved"), request.param, NER_LABELS)
    return model_dir, export_model(model_dir, tmp_path_factory.mktemp("export") / "onnx", format="onnx")


def test_torch_and_onnx_give_the_same_rows(saved):
    model_dir, onnx_dir = saved
    on_torch, on_onnx = load_predictor(model_dir), load_predictor(onnx_dir)
    assert type(on_torch) is type(on_onnx) is Predictor
    assert (on_torch.backend, on_onnx.backend) == ("torch", "onnx")
    assert on_torch.tasks == on_onnx.tasks == ["topic", "ner"] and on_torch.config == on_onnx.config
    torch_rows = on_torch.predict(SENTENCES, include_embedding=True, batch_size=2)
    onnx_rows = on_onnx.predict(SENTENCES, include_embedding=True, batch_size=2)
    assert [set(row) for row in torch_rows] == [{"text", "topic", "ner", "embedding"}] * len(SENTENCES)
    for ours, theirs in zip(torch_rows, onnx_rows, strict=True):
        assert ours["text"] == theirs["text"] and ours["topic"]["label"] == theirs["topic"]["label"]
        assert ours["topic"]["score"] == pytest.approx(theirs["topic"]["score"], abs=1e-4)
        spans = [{k: v for k, v in entity.items() if k != "score"} for entity in ours["ner"]]
        assert spans == [{k: v for k, v in entity.items() if k != "score"} for entity in theirs["ner"]]
        np.testing.assert_allclose(ours["embedding"], theirs["embedding"], atol=1e-4)
    np.testing.assert_allclose(on_torch.encode(SENTENCES), on_onnx.encode(SENTENCES), atol=1e-4)


def test_a_model_answers_through_its_predictor(tiny_model):
    predictor = Predictor(TorchRuntime(tiny_model))
    assert tiny_model.predict(SENTENCES, include_embedding=True) == predictor.predict(SENTENCES, include_embedding=True)
    assert np.array_equal(tiny_model.encode(SENTENCES), predictor.encode(SENTENCES))
    assert as_predictor(tiny_model).tasks == tiny_model.tasks and as_predictor(predictor) is predictor


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_the_same_surface_on_every_runtime(saved, backend):
    predictor = load_predictor(saved[0] if backend == "torch" else saved[1])
    vectors = predictor.encode(SENTENCES, convert_to_tensor=True)
    assert isinstance(vectors, torch.Tensor) and vectors.dtype == torch.float32 and vectors.shape == (4, 32)
    as_numpy = predictor.encode(SENTENCES)
    assert as_numpy.dtype == np.float32 and np.array_equal(as_numpy, vectors.numpy())
    assert predictor.encode([]).shape == (0, 32) and predictor.predict([]) == []
    assert predictor.predict("a", tasks=["topic"]).keys() == {"text", "topic"}  # one string: one row
    assert predictor.encode("a").shape == (32,)  # one string: one vector
    for call, error in ((lambda: predictor.encode(["a"], precision="float16"), "unknown precision 'float16'"),
                        (lambda: predictor.encode([1]), "sentences must be strings, got int"),
                        (lambda: predictor.predict(["a"], batch_size=0), "batch_size must be at least 1")):
        with pytest.raises(MtstError, match=error):
            call()


def test_a_graph_that_normalises_cannot_encode_unnormalised(saved):
    on_torch, on_onnx = load_predictor(saved[0]), load_predictor(saved[1])
    raw = on_torch.encode(SENTENCES, normalize=False)  # mtst's own keyword: the raw pooled vectors
    assert not np.allclose(np.linalg.norm(raw, axis=-1), 1.0)  # torch pools the backbone itself: either way works
    with pytest.raises(MtstError, match="L2-normalises its embeddings; encode with normalize=None or True"):
        on_onnx.encode([], normalize=False)  # before any batch runs
    np.testing.assert_allclose(on_onnx.encode(SENTENCES, normalize_embeddings=True), on_torch.encode(SENTENCES),
                               atol=1e-4)


def test_torch_runtime_restores_training_mode(tiny_model):
    tiny_model.train()
    Predictor(TorchRuntime(tiny_model)).predict(SENTENCES[:2])
    assert tiny_model.training
    tiny_model.eval()
    Predictor(TorchRuntime(tiny_model)).encode(SENTENCES[:2])
    assert not tiny_model.training


# ---- the one task check ----------------------------------------------------------------------------
def test_one_unknown_task_error_on_every_surface(saved, tiny_st_dir):
    model_dir, onnx_dir = saved
    model = MultiTaskModel.load(model_dir)
    expected = "unknown task 'sentiment'; this model's tasks are: topic, ner"
    calls = [lambda: model.predict(["a"], tasks=["topic", "sentiment"]),
             lambda: model(model.tokenizer.collate(model.tokenizer(["a"])), tasks=["sentiment"]),
             lambda: load_predictor(model_dir).check_tasks(["sentiment"]),
             lambda: load_predictor(onnx_dir).predict(["a"], tasks=["sentiment"])]
    for call in calls:
        with pytest.raises(MtstError) as info:
            call()
        assert str(info.value) == expected
    bare = MultiTaskModel.from_backbone(tiny_st_dir)
    bare.add_head("sts", "scored_pairs", [])
    with pytest.raises(MtstError, match="'sts' is a pair task: it has no per-sentence prediction"):
        as_predictor(bare).check_tasks(["sts"])
    with pytest.raises(MtstError, match=r"unknown task 'x'; this model's tasks are: none \(this model has no heads\)"):
        as_predictor(bare).predict(["a"], tasks=["x"])
    assert as_predictor(bare).check_tasks(None) == []


def test_the_unknown_task_message_is_written_once():
    package = Path(__file__).resolve().parents[2] / "src" / "mtst"
    sites = [str(path.relative_to(package)) for path in package.rglob("*.py")
             for _ in re.finditer(r"this model's tasks are", path.read_text(encoding="utf-8"))]
    assert sites == ["model/predictor.py"]


# ---- ModelSpec: plain values that travel, then load ------------------------------------------------
def test_model_spec_pickles_and_loads(saved, tiny_st_dir):
    spec = ModelSpec(backbone=str(tiny_st_dir), pooling="cls", max_seq_length=32, threads=1)
    copy = pickle.loads(pickle.dumps(spec))
    assert copy == spec and hash(copy) == hash(spec)
    predictor = copy.load()
    assert isinstance(predictor, Predictor) and predictor.backend == "torch"
    assert predictor.config.encoder.pooling == "cls" and predictor.config.encoder.max_seq_length == 32
    expected = MultiTaskModel.from_backbone(tiny_st_dir, pooling="cls", max_seq_length=32).encode(SENTENCES)
    assert np.array_equal(predictor.encode(SENTENCES), expected)
    exported = pickle.loads(pickle.dumps(ModelSpec(str(saved[1]), "onnx", threads=1))).load()
    assert exported.backend == "onnx" and exported.runtime.threads == 1 and exported.tasks == ["topic", "ner"]


@pytest.mark.parametrize(("values", "error"), [
    ({"model": "m", "pooling": "cls"}, "pooling cannot be combined with a model directory"),
    ({"backend": "openvino"}, "backend openvino needs a model directory"),
    ({"backend": "tpu"}, "unknown backend 'tpu'"),
    ({"threads": 0}, "threads must be at least 1, got 0"),
])
def test_model_spec_checks_its_values(values, error):
    with pytest.raises(MtstError, match=error):
        ModelSpec(**values)
