"""The methods: ``(dataset, texts, labels, test, seed) -> (predicted test labels, training seconds, extra)`` with
the draw's examples. Training time counts embedding the examples, not loading a model. SHOTLESS methods use no
examples and run once per dataset."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from collections import Counter
from functools import cache, partial
from pathlib import Path

import numpy as np
import torch

from benchmarks.fewshot.data import Dataset, Split

REPO = Path(__file__).resolve().parents[2]
# SetFit's own environment: `make bench-fewshot` builds .venv-setfit; MTST_SETFIT_PYTHON points elsewhere
SETFIT_PYTHON = Path(os.environ.get("MTST_SETFIT_PYTHON", REPO / ".venv-setfit" / "bin" / "python"))
THREADS = 2


class Skipped(Exception):
    """A method that cannot run here (its module or environment is missing): said once, nothing written."""


def _fresh():
    from mtst import MultiTaskModel

    return MultiTaskModel.load(precision="fp32")  # the shipped default model


@cache
def _test_embeddings(texts: tuple[str, ...]) -> np.ndarray:
    return _fresh().encode(list(texts), normalize_embeddings=True, show_progress_bar=False)


def _head_predictions(model, test: Split) -> list[str]:
    """The zero-shot head's own forward on the test embeddings (what ``predict`` computes, without re-encoding)."""
    with torch.no_grad():
        logits = model.heads["fewshot"](torch.from_numpy(_test_embeddings(tuple(test.texts))))
    return [model.config.heads["fewshot"].labels[i] for i in logits.argmax(-1).tolist()]


def majority(dataset: Dataset, texts, labels, test: Split, seed: int):
    label = Counter(test.labels).most_common(1)[0][0]  # the scored split's most frequent class: the floor
    return [label] * len(test.texts), 0.0, {"label": label}


def zero_shot(dataset: Dataset, texts, labels, test: Split, seed: int, described: bool = False):
    if described and dataset.descriptions is None:
        raise Skipped(f"{dataset.name} has no label descriptions")
    model, descriptions = _fresh(), list(dataset.descriptions) if described else None
    started = time.perf_counter()
    model.add_head("fewshot", "zero_shot_classification", list(dataset.labels), descriptions=descriptions)
    return _head_predictions(model, test), time.perf_counter() - started, {"descriptions": descriptions}


def logistic_probe(dataset: Dataset, texts, labels, test: Split, seed: int):
    from sklearn.linear_model import LogisticRegression

    model, started = _fresh(), time.perf_counter()
    probe = LogisticRegression(max_iter=1000).fit(model.encode(texts, normalize_embeddings=True), labels)
    seconds = time.perf_counter() - started
    return probe.predict(_test_embeddings(tuple(test.texts))).tolist(), seconds, {}


def mtst_few_shot(dataset: Dataset, texts, labels, test: Split, seed: int, method: str = "auto",
                  described: bool = False):
    from mtst.training.few_shot import fit_few_shot

    if described and dataset.descriptions is None:
        raise Skipped(f"{dataset.name} has no label descriptions")
    descriptions = dict(zip(dataset.labels, dataset.descriptions, strict=True)) if described else None
    model = _fresh()  # a fresh copy per fit (every draw holds every label)
    fit = fit_few_shot(model, "fewshot", texts, labels, method=method, seed=seed, descriptions=descriptions)
    return _head_predictions(model, test), fit.seconds, {"method": fit.method, "descriptions": descriptions}


def contrastive(dataset: Dataset, texts, labels, test: Split, seed: int, bf16: bool = False):
    from benchmarks.fewshot import contrastive as recipe
    from mtst.model.cpu_paths import cpu_has_native_bf16

    if bf16 and not cpu_has_native_bf16():
        raise Skipped("this CPU has no native bf16 (AVX512-BF16 or AMX)")
    predicted, seconds = recipe.fit_and_predict(texts, labels, test.texts, seed, bf16)
    settings = {key: getattr(recipe, key) for key in ("BRANCH_AT", "ITERATIONS", "EPOCHS", "LR")}
    return predicted, seconds, {**settings, "bf16": bf16}


def mtst_contrastive(dataset: Dataset, texts, labels, test: Split, seed: int):
    """``fit_few_shot(method="contrastive")`` on a fresh model with a branch at 2: the library's whole fit (branch,
    then the cosine logistic head on its states), bf16 where native, scored by ``predict``."""
    from mtst import MultiTaskModel
    from mtst.model.cpu_paths import cpu_has_native_bf16
    from mtst.training import few_shot_branch
    from mtst.training.few_shot import fit_few_shot

    model = MultiTaskModel.from_backbone(None, branch_at=few_shot_branch.FRESH_BRANCH_AT, precision="fp32")
    fit = fit_few_shot(model, "fewshot", texts, labels, method="contrastive", seed=seed)
    rows = model.predict(list(test.texts), tasks=["fewshot"], batch_size=64)
    settings = {key: getattr(few_shot_branch, key) for key in ("FRESH_BRANCH_AT", "BATCH_SIZE", "EPOCHS", "LR")}
    return [row["fewshot"]["label"] for row in rows], fit.seconds, {**settings, "bf16": bool(cpu_has_native_bf16())}


def setfit(dataset: Dataset, texts, labels, test: Split, seed: int):
    """SetFit 1.2 with its defaults in its own environment (setfit_runner.py), on the same backbone directory."""
    from mtst.model.encoder import default_backbone_path

    if not SETFIT_PYTHON.exists():
        raise Skipped(f"no SetFit environment at {SETFIT_PYTHON} (set MTST_SETFIT_PYTHON)")
    job = {"model_dir": str(default_backbone_path()), "threads": THREADS, "seed": seed, "texts": texts,
           "labels": labels, "eval_texts": test.texts}
    env = {**os.environ, "OMP_NUM_THREADS": str(THREADS), "MKL_NUM_THREADS": str(THREADS), "HF_HUB_OFFLINE": "1",
           "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    with tempfile.TemporaryDirectory(prefix="mtst-setfit-") as work:  # SetFit writes checkpoints/ where it runs
        Path(work, "in.json").write_text(json.dumps(job), encoding="utf-8")
        runner = Path(__file__).with_name("setfit_runner.py")
        done = subprocess.run([str(SETFIT_PYTHON), str(runner), "in.json", "out.json"], cwd=work, env=env,
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError("SetFit failed: " + " | ".join(done.stderr.strip().splitlines()[-5:]))
        out = json.loads(Path(work, "out.json").read_text(encoding="utf-8"))
    return out["predictions"], out["seconds"], {"versions": out["versions"]}


METHODS = {"majority": majority, "zero-shot": zero_shot, "zero-shot-descriptions": partial(zero_shot, described=True),
           "logistic-probe": logistic_probe, "mtst-prototype": partial(mtst_few_shot, method="prototype"),
           "mtst-logistic": partial(mtst_few_shot, method="logistic"),
           "mtst-logistic-descriptions": partial(mtst_few_shot, method="logistic", described=True),
           "mtst-contrastive": contrastive, "mtst-contrastive-bf16": partial(contrastive, bf16=True),
           "mtst-few-shot-contrastive": mtst_contrastive, "setfit": setfit}
SHOTLESS = ("majority", "zero-shot", "zero-shot-descriptions")
# the speed ratio to SetFit is reported for these
MTST = ("mtst-prototype", "mtst-logistic", "mtst-logistic-descriptions", "mtst-contrastive", "mtst-contrastive-bf16",
        "mtst-few-shot-contrastive")
