"""``mtst bench``'s measurement: in one process and one run, sentence-transformers (when installed) against every mtst
path available here (torch fp32 / bf16 x kernels, the path mtst chose, ONNX Runtime and OpenVINO exports), timing
``encode`` and ``predict(include_embedding=True)`` as medians of alternating rounds (mtst.model.timing).

A plain-transformers baseline row (``BASELINE``: ``transformers.AutoModel`` on the same backbone directory, texts
sorted by token length, batch 64, mean pooling + L2 normalisation, fp32) is the few lines a user could write
instead; the bar is that mtst's chosen path is never slower (``verdict``).

A ratio is a path's sentences/s over sentence-transformers' ``encode`` (batch 32) in the same run: for ``predict``
it is what answering every task *and* the embedding costs against the embedding alone elsewhere.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.util import find_spec
from pathlib import Path

import numpy as np

from mtst.model.cpu_paths import CpuPath, batching_label, cpu_facts, library_versions
from mtst.model.cpu_probe import calibration_sentences, candidates
from mtst.model.onednn import onednn_bf16_usable, onednn_usable
from mtst.model.predictor import as_predictor
from mtst.model.timing import alternating_rounds

REFERENCE = "sentence-transformers"
TORCH_FP32 = "torch fp32"
BASELINE = "plain transformers fp32"
CHOSEN = "mtst chose: "  # the chosen path's row name starts with this
EXPORTS = {"onnx": "onnxruntime", "openvino": "openvino"}  # export format -> the package that runs it


@dataclass
class BenchPath:
    """One row of the table: how to encode and (optionally) predict with the embedding, on a list of sentences."""

    name: str
    encode: Callable[[list[str]], object]
    predict: Callable[[list[str]], object] | None = None
    note: str = ""


@dataclass
class BenchResult:
    sentences: int
    rounds: int
    cpu: dict
    versions: dict
    chosen: str
    load_average: tuple[float, ...]
    rows: dict[str, dict] = field(default_factory=dict)  # name -> {"encode": /s, "predict": /s, ratios, note}


def torch_paths(model) -> list[BenchPath]:
    """Each torch candidate at batch 64 (encode) / 32 (predict), then the path mtst chose, called as a user calls
    it (no ``batch_size``: the batching it measured fastest, else 32)."""
    chosen, runtime = model.cpu_path, as_predictor(model).runtime
    paths = []
    for kind in candidates(cpu_facts()["flags"], onednn_usable(), onednn_bf16_usable()):
        name = f"torch {kind[1]}" if kind[0] == "torch" else f"torch {kind[0]} {kind[1]}"  # "torch onednn fp32"
        paths.append(_torch_path(model, CpuPath(*kind), name))
    rows = {call: batching_label(runtime.batching(call)) for call in ("encode", "predict")}
    paths.append(_torch_path(model, chosen, f"{CHOSEN}{chosen.name}",
                             f"batch {rows['encode']} / {rows['predict']}, {model.cpu_path_source}", by_default=True))
    model.use_cpu_path(chosen)
    return paths


def _torch_path(model, path: CpuPath, name: str, note: str = "", by_default: bool = False) -> BenchPath:
    """``path`` at its batch sizes, or (``by_default``) with no batch size given."""
    encode_rows, predict_rows = (None, None) if by_default else (path.encode_batch_size, path.predict_batch_size)

    def encode(texts: list[str]):
        model.use_cpu_path(path)
        return model.encode(texts, batch_size=encode_rows)

    def predict(texts: list[str]):
        model.use_cpu_path(path)
        return model.predict(texts, batch_size=predict_rows, include_embedding=True)

    return BenchPath(name, encode, predict, note)


def reference_path(model) -> BenchPath | None:
    """sentence-transformers on the model's backbone (its embedding path), batch 32 as its default; None when
    sentence-transformers is not installed."""
    if find_spec("sentence_transformers") is None:
        return None
    from sentence_transformers import SentenceTransformer

    from mtst.model.encoder import default_backbone_path

    backbone = model.config.encoder.backbone
    st = SentenceTransformer(str(default_backbone_path() if backbone in ("default", "") else backbone), device="cpu")
    normalize = model.config.encoder.normalize
    return BenchPath(REFERENCE, lambda texts: st.encode(texts, batch_size=32, normalize_embeddings=normalize))


def baseline_path(model, backbone_dir: Path) -> BenchPath:
    """The plain-transformers baseline on ``backbone_dir`` (the model's encoder): a few lines, no mtst."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(backbone_dir), local_files_only=True)
    encoder = AutoModel.from_pretrained(str(backbone_dir), local_files_only=True).eval()
    settings = model.config.encoder
    max_length = settings.embedding_max_seq_length or settings.max_seq_length

    def encode(texts: list[str]):
        lengths = [len(ids) for ids in tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]]
        order = sorted(range(len(texts)), key=lengths.__getitem__)
        out = [None] * len(texts)
        with torch.inference_mode():
            for start in range(0, len(order), 64):
                rows = order[start:start + 64]
                batch = tokenizer([texts[i] for i in rows], padding=True, truncation=True, max_length=max_length,
                                  return_tensors="pt")
                tokens = encoder(**batch).last_hidden_state  # (B, T, H)
                mask = batch["attention_mask"].unsqueeze(-1).to(tokens.dtype)  # (B, T, 1)
                mean = (tokens * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                for i, row in zip(rows, torch.nn.functional.normalize(mean, dim=-1), strict=True):
                    out[i] = row
        return torch.stack(out).numpy()

    return BenchPath(BASELINE, encode, note="AutoModel, sorted, batch 64, mean + L2")


def verdict(result: BenchResult) -> str | None:
    """One line: mtst's chosen path against the plain-transformers baseline (the issue's bar: never slower)."""
    chosen = next((row for name, row in result.rows.items() if name.startswith(CHOSEN)), None)
    baseline = result.rows.get(BASELINE)
    if not chosen or not baseline or not chosen.get("encode") or not baseline.get("encode"):
        return None
    ratio = chosen["encode"] / baseline["encode"]
    meets = "meets the bar" if ratio >= 1 else "SLOWER: misses the bar"
    return (f"mtst's default encode ({result.chosen}) vs the plain-transformers baseline: {ratio:.2f}x ({meets}, "
            f"never slower)")


def export_paths(model_dir: Path | None, work: Path, int8: bool,
                 probe_texts: list[str] | None = None) -> list[BenchPath]:
    """ONNX Runtime and OpenVINO exports of ``model_dir`` (None: the shipped model) made in ``work``, for each
    runtime that is installed; fp32 weights (OpenVINO picks bf16 itself where native), and int8 with ``int8``.
    ``probe_texts``: first measure each OpenVINO export's fastest lossless precision and batch sizes on them
    (mtst.inference.export_probe; cached for the same graph on this CPU) and time it with that choice."""
    from mtst.inference.backends import load_predictor
    from mtst.inference.export import export_model
    from mtst.inference.export_probe import choose_export_path

    paths = []
    for format, package in EXPORTS.items():
        if find_spec(package) is None or find_spec("onnx") is None:
            continue
        for quantize in (None, "int8") if int8 else (None,):
            out = work / f"{format}-{quantize or 'fp32'}"
            export_model(model_dir, out, format=format, quantize=quantize)
            probed = bool(probe_texts) and format == "openvino"
            choice = choose_export_path(out, sentences=probe_texts)["path"] if probed else None
            predictor = load_predictor(out)  # precision auto: the probe's choice, when it ran
            runtime = predictor.runtime  # OpenVINO says what it runs (bf16 where native), else the export's own
            precision = getattr(runtime, "runtime_precision", None) or getattr(runtime, "precision", "?")
            rows = (None, None) if choice else (64, 64)  # None: the measured batching, as a user's call gets it
            note = f"runs {precision}"
            if choice:
                batchings = [batching_label(runtime.batching(call)) for call in ("encode", "predict")]
                note += f"; probe chose {choice['precision']}, batch {batchings[0]} / {batchings[1]}"
            paths.append(BenchPath(f"{format} {quantize or 'fp32'}", _batched(predictor.encode, rows[0]),
                                   _batched(predictor.predict, rows[1], include_embedding=True), note))
    return paths


def _batched(call, batch_size: int | None, **options):
    return lambda texts: call(texts, batch_size=batch_size, **options)


def run_bench(model, texts: list[str], paths: list[BenchPath], rounds: int) -> BenchResult:
    """Time every path's encode and predict in alternating rounds; rows keep sentences/s and the ratios."""
    calls, outputs = {}, {}
    for path in paths:
        calls[(path.name, "encode")] = _keeping(outputs, path.name, path.encode, texts)
        if path.predict is not None:
            calls[(path.name, "predict")] = lambda call=path.predict: call(texts)
    for path in paths:  # warm-up: first-call allocations, graph compilation
        path.encode(texts[:16])
    took = alternating_rounds(calls, rounds)
    result = BenchResult(len(texts), rounds, cpu_facts(), library_versions(), model.cpu_path.name,
                         tuple(round(x, 2) for x in os.getloadavg()))
    reference = took.get((REFERENCE, "encode"))
    first = outputs.get(TORCH_FP32)  # cosines against fp32 torch
    for path in paths:
        row: dict = {"note": path.note}
        for call in ("encode", "predict"):
            if (path.name, call) in took:
                row[call] = round(len(texts) / took[(path.name, call)], 1)
                row[f"{call}_vs_reference"] = round(reference / took[(path.name, call)], 2) if reference else None
        if first is not None and path.name in outputs:
            row["min_cosine"] = _min_cosine(first, outputs[path.name])
        result.rows[path.name] = row
    return result


def _keeping(outputs: dict, name: str, call, texts: list[str]):
    def run():
        outputs[name] = call(texts)

    return run


def _min_cosine(a, b) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    cosine = (a * b).sum(-1) / np.maximum(np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1), 1e-12)
    return round(float(cosine.min()), 6)


def bench(model_dir: Path | None = None, texts: list[str] | None = None, rounds: int = 3, exports: bool = True,
          int8: bool = False, probe: bool = False) -> BenchResult:
    """Load the model (None: the shipped one), optionally probe its CPU path first (``probe``: cached for later
    loads; the OpenVINO exports' precision too), and time sentence-transformers, the plain-transformers baseline,
    every torch path and (``exports``) ONNX / OpenVINO exports."""
    from mtst.model.multitask import MultiTaskModel

    model = MultiTaskModel.load(model_dir)
    texts = texts or calibration_sentences()
    if probe:  # on the sentences timed below
        model.choose_cpu_path(texts)
    from mtst.model.encoder import default_backbone_path
    from mtst.model.storage import read_model_dir

    reference = reference_path(model)
    backbone_dir = read_model_dir(model_dir).encoder_source or default_backbone_path()
    paths = ([reference] if reference else []) + [baseline_path(model, backbone_dir)] + torch_paths(model)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="mtst-bench-") as work:
        if exports:
            paths += export_paths(model_dir, Path(work), int8, texts if probe else None)
        result = run_bench(model, texts, paths, rounds)
    result.rows["_"] = {"seconds": round(time.perf_counter() - started, 1)}
    return result
