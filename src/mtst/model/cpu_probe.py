"""The probe behind mtst.model.cpu_paths: a few seconds on the shipped calibration sentences, timing ``encode`` and
``predict(include_embedding=True)`` for every candidate (kernels x precision x batch size) in alternating rounds,
then the parity gate against fp32 torch, the choice, and the cache. Run on demand only (``choose_cpu_path``)."""

from __future__ import annotations

import os
from importlib import resources

import numpy as np
import torch

from mtst.errors import MtstError
from mtst.model.cpu_paths import (
    BATCHINGS,
    QUICK_BATCHINGS,
    CpuPath,
    as_batching,
    batching_label,
    choose,
    cpu_facts,
    key_for,
    library_versions,
    native_bf16,
    parity,
    passes,
    remember,
)
from mtst.model.onednn import kernels_from_environment, onednn_bf16_usable, onednn_usable
from mtst.model.predictor import as_predictor
from mtst.model.timing import alternating_rounds
from mtst.model.tokenization import map_batches

RACE_BATCHING = (256, 2048)  # the kernels race at a token budget: at 64 rows the fixed cost per pass decides more
QUICK_SENTENCES = 200  # quick probe (first use): the gate's sentences (one flipped label in 200 still passes)


def calibration_sentences() -> list[str]:
    """The shipped calibration sentences (mtst/inference/calibration.txt: package data read as a file, not an
    import, so mtst.model stays below mtst.inference)."""
    text = resources.files("mtst").joinpath("inference", "calibration.txt").read_text(encoding="utf-8")
    return [line.strip() for line in text.splitlines() if line.strip()]


def candidates(flags: list[str], onednn: bool, onednn_bf16: bool = False) -> list[tuple[str, str]]:
    """(kernels, precision) worth timing here: oneDNN where usable, bf16 where native (oneDNN's packed bf16
    weights where its bf16 op works, ``onednn_bf16``)."""
    kinds = [("torch", "fp32")] + ([("onednn", "fp32")] if onednn else [])
    if not native_bf16(flags):
        return kinds
    return kinds + [("torch", "bf16")] + ([("onednn", "bf16")] if onednn and onednn_bf16 else [])


def outputs(model, texts: list[str], batch_size: int = 64) -> tuple[np.ndarray, list[dict]]:
    """What the gate compares: ``encode``'s embeddings (N, H) and, per row, each head's best labels. ``model``: a
    MultiTaskModel or a Predictor over any runtime (the export probe gates OpenVINO's precisions with it)."""
    predictor = as_predictor(model)
    vectors = predictor.encode(texts, batch_size=batch_size, show_progress_bar=False)
    runtime = predictor.runtime
    tasks = list(runtime.heads)

    def labels(batch: dict, items: list, batch_texts: list[str]) -> list[dict]:
        logits = runtime.run(batch, tasks, include_embedding=False)["logits"]
        with runtime.decoding():
            best = {task: runtime.heads[task].best_labels(logits[task].float(), items) for task in tasks}
        return [{task: best[task][row] for task in tasks} for row in range(len(items))]

    with runtime.running():
        rows = map_batches(predictor.tokenizer, texts, batch_size, predictor.max_tokens, False, labels)
    return vectors, rows


def probe(model, sentences: list[str] | None = None, rounds: int = 2, batchings=BATCHINGS,
          save: bool = True, quick: bool = False) -> dict:
    """Gate each candidate against fp32 torch, time those at RACE_BATCHING (the fastest of 3 alternating rounds:
    other jobs only add time), then the winner's ``batchings`` (rows, or rows with a token budget: ``rounds``);
    all on every gate sentence (batching needs many sentences of many lengths). Apply and (``save``) cache the
    choice.

    ``quick`` (the automatic first-use probe, ~10 s on 2 idle cores): the gate on QUICK_SENTENCES, the kernels
    timed on them, fastest of 2 rounds, then QUICK_BATCHINGS once.

    Returns {"path": the CpuPath chosen, "timings": {"kernels-precision encode|predict batching": sentences/s},
    "parity": {"kernels-precision": gate report and "passed"}, "cpu", "versions"}; the model keeps the choice.
    """
    if next(model.parameters()).device.type != "cpu":
        raise MtstError("the CPU-path probe runs on CPU models only; this model is on "
                        f"{next(model.parameters()).device}")
    texts = sentences or calibration_sentences()[: QUICK_SENTENCES if quick else None]
    if quick:
        rounds, batchings = 1, QUICK_BATCHINGS
    cpu = cpu_facts()
    kinds = candidates(cpu["flags"], onednn_usable(), onednn_bf16_usable())
    if os.environ.get("MTST_ONEDNN", "").strip():  # the user fixed the kernels: only paths on those
        kinds = [kind for kind in kinds if kind[0] == kernels_from_environment()] or [kinds[0]]
    before = model.cpu_path
    try:
        model.use_cpu_path(CpuPath())
        reference = outputs(model, texts)
        reports = {}
        for kind in kinds:
            model.use_cpu_path(CpuPath(*kind))
            report = parity(reference, outputs(model, texts))
            reports[kind] = {**report, "passed": kind == ("torch", "fp32") or passes(report)}  # fp32: the reference
        # kernels x precision at one batching, fastest of 3 rounds; then the winner's batchings
        took = alternating_rounds(_calls(model, texts, kinds, (RACE_BATCHING,)), 2 if quick else 3, summary=min)
        kind = choose(took, {kind for kind, report in reports.items() if report["passed"]})
        sizes = alternating_rounds(_calls(model, texts, [(kind.kernels, kind.precision)], batchings), rounds, min)
        path = choose(sizes, {(kind.kernels, kind.precision)})
    except BaseException:
        model.use_cpu_path(before)
        raise
    model.use_cpu_path(path)
    model.cpu_path_source = "measured"
    rates = {key: len(texts) / seconds for key, seconds in {**took, **sizes}.items()}
    result = {"path": path, "cpu": cpu, "versions": library_versions(),
              "timings": {f"{k}-{p} {c} {batching_label(s)}": round(r, 1) for (k, p, c, s), r in rates.items()},
              "parity": {f"{k}-{p}": report for (k, p), report in reports.items()}}
    if save:
        details = {key: result[key] for key in ("cpu", "versions", "timings", "parity")}
        result["cache_file"] = str(remember(key_for(model.config), path, details))
    return result


def _calls(model, texts: list[str], kinds: list[tuple[str, str]], batchings) -> dict:
    """(kernels, precision, "encode" | "predict", batching) -> a call timing it (a warm-up runs first)."""
    model.use_cpu_path(CpuPath(*kinds[0]))
    model.encode(texts[:32], show_progress_bar=False)  # first-call allocations
    calls = {}
    for kind in kinds:
        for batching in batchings:
            rows, tokens = as_batching(batching)
            calls[(*kind, "encode", batching)] = _timed(model, kind, tokens, lambda r=rows: model.encode(
                texts, batch_size=r, show_progress_bar=False))
            calls[(*kind, "predict", batching)] = _timed(model, kind, tokens, lambda r=rows: model.predict(
                texts, batch_size=r, include_embedding=True, show_progress_bar=False))
    return calls


def _timed(model, kind: tuple[str, str], max_tokens: int | None, call):
    """``call`` with the model switched to ``kind`` first (a no-op when it runs ``kind`` already) and passes cut
    at ``max_tokens`` padded tokens."""

    def run():
        model.use_cpu_path(CpuPath(*kind))
        with torch.inference_mode():
            call()

    return under_budget(model, max_tokens, run)


def under_budget(owner, max_tokens: int | None, call):
    """``call`` with ``owner.max_tokens`` (a model's or a Predictor's token budget) at ``max_tokens`` meanwhile."""

    def run():
        before, owner.max_tokens = owner.max_tokens, max_tokens
        try:
            return call()
        finally:
            owner.max_tokens = before

    return run
