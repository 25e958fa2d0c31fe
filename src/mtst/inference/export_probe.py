"""Which precision and batch sizes run an OpenVINO export fastest on *this* CPU without loss: chosen by measurement,
as mtst.model.cpu_probe does for torch (the same cache file, parity gate and choice: mtst.model.cpu_paths).

OpenVINO runs an fp32 export at bf16 by itself where the CPU has AVX512-BF16 / AMX (fastest on AMD Zen5, where it
passed the gate), but what wins depends on the CPU. ``choose_export_path`` (or ``mtst bench --probe``) loads the
export at f32 and, where bf16 is native, at bf16; gates bf16 against f32 on the calibration sentences (embedding
cosines, every head's labels); times ``encode`` and ``predict(include_embedding=True)`` at each of
mtst.model.cpu_paths.BATCHINGS in alternating rounds; and caches the fastest that passed per CPU model, CPU flags,
library versions (openvino too) and graph file. ``load_predictor(export, precision="auto")`` applies the cached
precision, and its batching where the caller gives no batch size; nothing is probed on load.

Not probed: ONNX Runtime has no precision to choose (an export runs at the precision it was exported with: fp32, or
int8 for a quantized export); nor streams, because the Predictor runs one request at a time and OpenVINO's
THROUGHPUT hint splits 2 cores into two slower single-thread streams (measured: OpenVINORuntime).
"""

from __future__ import annotations

import hashlib
import re
from functools import partial
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from mtst.errors import MtstError
from mtst.inference.export import read_export_info
from mtst.model.cpu_paths import (
    BATCHINGS,
    QUICK_BATCHINGS,
    CpuPath,
    as_batching,
    batching_label,
    cache_key,
    cached_entry,
    choose,
    cpu_facts,
    describe,
    library_versions,
    native_bf16,
    parity,
    passes,
    path_of,
    remember,
    warn_if_bf16_is_emulated,
)
from mtst.model.cpu_probe import QUICK_SENTENCES, calibration_sentences, outputs, under_budget
from mtst.model.timing import alternating_rounds

HINTS = {"fp32": "f32", "bf16": "bf16"}  # mtst's precision -> OpenVINO's INFERENCE_PRECISION_HINT
KERNELS = "openvino"  # CpuPath.kernels of an export's choice (the cache holds torch's choices beside it)
LAYER_NAME = re.compile(rb' name="[^"]*"')  # OpenVINO numbers layers from a process-wide counter: not structure


def _openvino_info(directory: Path) -> dict:
    info = read_export_info(directory)
    if info is None:
        raise MtstError(f"{directory} is not an exported model (no export.json); export it first: "
                        f"mtst export --model MODEL_DIR --format openvino --out {directory}")
    if info["format"] != "openvino":
        raise MtstError(f"{directory} is a {info['format']} export: ONNX Runtime runs it at the precision it was "
                        "exported with (fp32, or int8), so there is nothing to choose; probe an OpenVINO export")
    return info


def graph_sha256(graph: Path) -> str:
    """SHA-256 of the IR file less its layer names: two exports of one model differed only there (so ``mtst bench``'s
    temporary export measures for the user's own). Weights (the .bin) are left out, as torch's key leaves them out."""
    return hashlib.sha256(LAYER_NAME.sub(b"", graph.read_bytes())).hexdigest()


def export_key(directory: str | Path) -> str:
    """Changes with the CPU model, its flags, the library versions (openvino's too) and the graph file's hash."""
    directory = Path(directory)
    graph = graph_sha256(directory / _openvino_info(directory)["graph"])
    try:
        openvino = version("openvino")
    except PackageNotFoundError:
        openvino = "?"
    return cache_key(cpu_facts(), {**library_versions(), "openvino": openvino}, f"openvino-graph-{graph}")


def cached_export_path(directory: str | Path) -> dict | None:
    """The cached choice for an OpenVINO export on this CPU ({"path": {"kernels": "openvino", "precision",
    "encode_batch_size", "predict_batch_size"}, "measured_utc", "timings", "parity", ...}); None when not measured
    here, or for an ONNX export (nothing to choose)."""
    directory = Path(directory)
    info = read_export_info(directory)
    if info is None or info["format"] != "openvino" or not (directory / info["graph"]).is_file():
        return None
    return cached_entry(export_key(directory))


def measured_choice(directory: str | Path) -> CpuPath | None:
    """The cached choice for this export on this CPU (precision and batching), else None."""
    return path_of(cached_export_path(directory))


def inference_precision(directory: str | Path, precision: str) -> str | None:
    """OpenVINO's precision hint for ``precision``: "fp32" -> "f32", "bf16" -> "bf16" (with torch's warning where
    the CPU has no native bf16), "auto" -> the cached choice here, else None (OpenVINO's own default)."""
    if precision == "auto":
        entry = cached_export_path(directory)
        return HINTS.get(entry["path"].get("precision")) if entry else None
    if precision == "bf16":
        warn_if_bf16_is_emulated()
    return HINTS[precision]


def describe_choice(directory: str | Path) -> str:
    """One line for ``mtst info``: the cached choice, else OpenVINO's default."""
    entry = cached_export_path(directory)
    if entry is None:
        return "OpenVINO's default precision (not measured on this CPU: mtst bench --probe)"
    return describe(entry)


def choose_export_path(directory: str | Path, threads: int | None = None, quick: bool = False,
                       sentences: list[str] | None = None, rounds: int = 3) -> dict:
    """Measure an OpenVINO export here (seconds) and cache the fastest precision and batch sizes that pass the
    parity gate against f32: later ``load_predictor(directory)`` calls (precision "auto") run at that precision.

    Args:
        directory: an OpenVINO export (``mtst export --format openvino``).
        threads: CPU threads for OpenVINO (default: every core this process may use).
        quick: the gate on QUICK_SENTENCES, then QUICK_BATCHINGS timed on them, fastest of 2 rounds.
        sentences: gate and time on these (default: the shipped calibration sentences).
        rounds: alternating rounds; each figure is the fastest (other jobs only ever add time).
    Returns:
        The cached entry: {"path": {"kernels": "openvino", "precision", batch sizes}, "measured_utc", "cpu",
        "versions", "runs" (what OpenVINO ran per precision), "timings" (sentences/s), "parity"}.
    """
    from mtst.inference.runtimes import OpenVINORuntime
    from mtst.model.predictor import Predictor

    directory = Path(directory)
    _openvino_info(directory)
    if rounds < 1:
        raise MtstError(f"rounds must be at least 1, got {rounds}")
    texts = list(sentences or calibration_sentences()[: QUICK_SENTENCES if quick else None])
    rounds, batchings = (2, QUICK_BATCHINGS) if quick else (rounds, BATCHINGS)
    cpu = cpu_facts()
    precisions = ["fp32"] + (["bf16"] if native_bf16(cpu["flags"]) else [])  # elsewhere bf16 is emulated: slow
    predictors = {p: Predictor(OpenVINORuntime(directory, threads, HINTS[p])) for p in precisions}
    reference = outputs(predictors["fp32"], texts)  # also compiles each graph before anything is timed
    reports = {}
    for precision, predictor in predictors.items():
        report = parity(reference, reference if precision == "fp32" else outputs(predictor, texts))
        reports[precision] = {**report, "passed": precision == "fp32" or passes(report)}  # fp32: the reference
    passed = [precision for precision in precisions if reports[precision]["passed"]]
    took = alternating_rounds(_calls(predictors, texts, passed, batchings), rounds, summary=min)
    path = choose(took, {(KERNELS, precision) for precision in passed})
    details = {"cpu": cpu, "versions": {**library_versions(), "openvino": version("openvino")},
               "runs": {p: predictor.runtime.runtime_precision for p, predictor in predictors.items()},
               "timings": {f"{k}-{p} {c} {batching_label(s)}": round(len(texts) / t, 1)
                           for (k, p, c, s), t in took.items()},
               "parity": {f"{KERNELS}-{p}": report for p, report in reports.items()}}
    key = export_key(directory)
    remember(key, path, details)
    return cached_entry(key)


def _calls(predictors: dict, texts: list[str], precisions: list[str], batchings) -> dict:
    """(KERNELS, precision, "encode" | "predict", (rows, token budget)) -> a call timing it."""
    calls = {}
    for precision in precisions:
        predictor = predictors[precision]
        for batching in batchings:
            rows, tokens = as_batching(batching)
            encode = partial(predictor.encode, texts, batch_size=rows, show_progress_bar=False)
            predict = partial(predictor.predict, texts, batch_size=rows, include_embedding=True,
                              show_progress_bar=False)
            calls[(KERNELS, precision, "encode", batching)] = under_budget(predictor, tokens, encode)
            calls[(KERNELS, precision, "predict", batching)] = under_budget(predictor, tokens, predict)
    return calls
