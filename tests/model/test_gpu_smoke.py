"""GPU smoke checks: the shipped model on CUDA against the same model on the CPU. Skipped without CUDA.

    .venv/bin/python -m pytest tests/model/test_gpu_smoke.py      # on a CUDA machine
    MTST_SMOKE_DEVICE=cpu .venv/bin/python -m pytest tests/model/test_gpu_smoke.py   # dry-run the checks here

Encode parity (cosine of each pair of vectors), predict parity (the same labels and entities), evaluation on the
device (``evaluate_task`` with the model left on the device, as training evaluates) and one training step (AdamW on
every sentence head's loss: finite loss, weights moved, the model still on the device).
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from mtst import MultiTaskModel
from mtst.data.readers import Examples
from mtst.model.devices import model_device
from mtst.model.tasks import task_type
from mtst.training.evaluation import evaluate_task

DEVICE = os.environ.get("MTST_SMOKE_DEVICE", "cuda")
TEXTS = ["John Smith visited Paris last week.", "The stock market fell sharply today.", "What a great film!",
         "Acme Corp opened a new office in London.", "The team won the game in extra time.", "ok"]

pytestmark = pytest.mark.skipif(DEVICE.startswith("cuda") and not torch.cuda.is_available(),
                                reason="CUDA is not available on this machine")


@pytest.fixture(scope="module")
def cpu() -> MultiTaskModel:
    return MultiTaskModel.load()


@pytest.fixture
def gpu() -> MultiTaskModel:
    """A fresh copy on the device for each test: the training step changes its weights."""
    return MultiTaskModel.load(device=DEVICE)


def labels_of(rows: list[dict], tasks: list[str]) -> list:
    return [[row[t]["label"] if isinstance(row[t], dict) else [(e["label"], e["start"], e["end"]) for e in row[t]]
             for t in tasks] for row in rows]


def test_encode_matches_the_cpu(cpu, gpu):
    a, b = cpu.encode(TEXTS), gpu.encode(TEXTS)
    cosine = (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))
    assert cosine.min() > 0.9999, f"min cosine {cosine.min():.6f}, max |diff| {np.abs(a - b).max():.2e}"


def test_predict_gives_the_same_labels_and_entities(cpu, gpu):
    assert labels_of(gpu.predict(TEXTS), gpu.tasks) == labels_of(cpu.predict(TEXTS), cpu.tasks)


def test_evaluation_on_the_device_matches_the_cpu(cpu, gpu):
    device = model_device(gpu)
    for task in gpu.tasks:
        token = task_type(gpu.config.heads[task].type).token_level
        texts = [text.split() for text in TEXTS] if token else TEXTS
        gold = [[gpu.heads[task].labels[0]] * len(words) for words in texts] if token else \
            [gpu.heads[task].labels[0]] * len(texts)
        on_gpu, on_cpu = (evaluate_task(model, task, Examples(texts, gold, ["smoke"] * len(texts)))
                          for model in (gpu, cpu))
        assert model_device(gpu) == device, "evaluation moved the model"
        assert on_gpu.keys() == on_cpu.keys() and all(abs(on_gpu[k] - on_cpu[k]) < 1e-6 for k in on_gpu), \
            f"{task}: {on_gpu} vs {on_cpu}"


def test_one_training_step_on_the_device(gpu):
    sentence_tasks = [t for t in gpu.tasks if not task_type(gpu.config.heads[t].type).token_level]
    assert sentence_tasks, "the model has no sentence task to train"
    device = model_device(gpu)
    features = gpu.tokenizer.collate(gpu.tokenizer(TEXTS))
    features = {k: v.to(device) for k, v in features.items() if isinstance(v, torch.Tensor) and k != "word_ids"}
    labels = {t: torch.zeros(len(TEXTS), dtype=torch.long, device=device) for t in sentence_tasks}
    trainable = [p for p in gpu.parameters() if p.requires_grad]
    before = [p.detach().clone() for p in trainable]
    optimizer = torch.optim.AdamW(trainable, lr=1e-4)
    gpu.train()
    loss = gpu(features, labels=labels)["loss"]
    loss.backward()
    optimizer.step()
    gpu.eval()
    assert torch.isfinite(loss), f"loss {loss.item()}"
    assert any(not torch.equal(b, p) for b, p in zip(before, trainable, strict=True)), "no weight moved"
    assert model_device(gpu) == device
