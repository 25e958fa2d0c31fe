"""Devices on a CPU-only machine: "auto" picks CUDA, then MPS, then the CPU; every batch is moved to the model's
device before the forward pass (encode, predict, evaluation); load / from_backbone / encode / predict take one."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

import mtst.model.torch_runtime as torch_runtime_module
import mtst.training.evaluation as evaluation_module
from mtst import MultiTaskModel
from mtst.data.readers import Examples
from mtst.errors import MtstError
from mtst.model.devices import model_device, resolve_device, to_device
from mtst.model.predictor import Predictor, TorchRuntime
from mtst.training.evaluation import evaluate_task

TEXTS = ["john visited paris", "the cat sat on the mat", "the stock fell today"]


@pytest.mark.parametrize("cuda, mps, expected", [(True, True, "cuda"), (False, True, "mps"), (False, False, "cpu")])
def test_auto_picks_cuda_then_mps_then_cpu(monkeypatch, cuda, mps, expected):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)
    assert resolve_device("auto") == torch.device(expected)


def test_devices_that_are_not_here_or_do_not_exist_are_one_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    for device, error in (("cuda", "CUDA is not available"), ("cuda:1", "CUDA is not available"),
                          ("mps", "MPS is not available"), ("gpu", "unknown device 'gpu'")):
        with pytest.raises(MtstError, match=error):
            resolve_device(device)
    assert resolve_device("cpu") == torch.device("cpu") == resolve_device(torch.device("cpu"))


def test_to_device_moves_tensors_and_keeps_the_rest():
    batch = {"input_ids": torch.ones(2, 3, dtype=torch.long), "texts": ["a", "b"]}
    moved = to_device(batch, torch.device("cpu"))
    assert moved["input_ids"] is batch["input_ids"] and moved["texts"] is batch["texts"]  # there already: no copy


def test_a_device_on_load_from_backbone_encode_and_predict(tiny_model, tiny_st_dir, tmp_path):
    saved = tiny_model.save(tmp_path / "model")
    loaded = MultiTaskModel.load(saved, device="cpu")
    assert model_device(loaded) == torch.device("cpu")
    assert model_device(MultiTaskModel.from_backbone(tiny_st_dir, device="auto")).type in ("cpu", "cuda", "mps")
    assert np.array_equal(loaded.encode(TEXTS, device="cpu"), tiny_model.encode(TEXTS))
    assert loaded.predict(TEXTS, device="cpu") == tiny_model.predict(TEXTS)
    assert Predictor(TorchRuntime(loaded)).to("cpu").device == torch.device("cpu")


def test_exported_runtimes_run_on_the_cpu_only(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    predictor = Predictor(SimpleNamespace(backend="onnx"))
    assert predictor.device == torch.device("cpu") and predictor.to("cpu") is predictor
    with pytest.raises(MtstError, match="the onnx runtime runs on the CPU; device 'cuda' needs the torch backend"):
        predictor.to("cuda")


@pytest.fixture
def moves(monkeypatch):
    """Pretend the model sits on another device: record each batch moved there and move nothing really."""
    elsewhere = torch.device("meta")
    moved = []

    def spy(batch, device):
        moved.append((device, sorted(key for key, value in batch.items() if isinstance(value, torch.Tensor))))
        return batch

    for module in (torch_runtime_module, evaluation_module):
        monkeypatch.setattr(module, "model_device", lambda model: elsewhere)
        monkeypatch.setattr(module, "to_device", spy)
    return elsewhere, moved


def test_every_batch_goes_to_the_models_device(tiny_model, moves):
    elsewhere, moved = moves
    tiny_model.encode(TEXTS, batch_size=2)
    tiny_model.predict(TEXTS, batch_size=2)
    evaluate_task(tiny_model, "topic", Examples(TEXTS, ["world"] * 3, ["f:1"] * 3), batch_size=2)
    assert len(moved) == 6 and all(device == elsewhere for device, _ in moved)  # 2 batches for each of the 3
    assert all({"input_ids", "attention_mask"} <= set(keys) for _, keys in moved)


def test_logits_are_decoded_from_cpu_copies(tiny_model, monkeypatch):
    seen = []
    decode = type(tiny_model.heads["ner"]).decode

    def spy(head, logits, items, texts):
        seen.append(logits.device)
        return decode(head, logits, items, texts)

    monkeypatch.setattr(type(tiny_model.heads["ner"]), "decode", spy)
    tiny_model.predict(TEXTS, tasks=["ner"])
    assert seen and all(device == torch.device("cpu") for device in seen)


def test_training_evaluates_where_it_trains(tmp_path, tiny_st_dir, monkeypatch):
    """The recipe never moves the model to evaluate it (it used to go to the CPU and back for each evaluation)."""
    import mtst.training.recipe as recipe
    from helpers import make_config

    events = []
    evaluate_all, move = recipe.evaluate_all, MultiTaskModel.to
    monkeypatch.setattr(recipe, "evaluate_all", lambda model, *a, **k: (events.append("evaluate"),
                                                                         evaluate_all(model, *a, **k))[1])
    monkeypatch.setattr(MultiTaskModel, "to", lambda model, *a, **k: (events.append("move"), move(model, *a, **k))[1])
    recipe.train(make_config(tmp_path, tiny_st_dir))
    assert events.count("evaluate") == 2 and "move" not in events[events.index("evaluate"):]
