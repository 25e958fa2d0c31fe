"""One benchmark variant, measured in its own process so peak RSS is its own.

    .venv/bin/python benchmarks/speed/variants.py --variant onnx-int8 --work /tmp/mtst-bench-speed --threads 2

Writes <work>/results/<variant>.json (speeds, latency, RSS) and <work>/results/<variant>.stsb.npy
(embeddings of the STS-B sentences; the parent computes Spearman and agreement from them), plus
<variant>.labels.json with task predictions on a sample when the variant can predict.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

LATENCY_SAMPLE = 100  # sentences timed one at a time
AGREEMENT_SAMPLE = 300  # sentences whose task predictions are compared with torch


# ---- runners: texts -> embeddings (N, H) -------------------------------------------------------
def _sorted_batches(lengths: list[int], batch_size: int) -> list[list[int]]:
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def hand_openvino(xml: Path, threads: int, batch_size: int = 64) -> Callable[[list[str]], np.ndarray]:
    """The encoder alone in OpenVINO; tokenisation, length sorting and mean pooling done here in numpy."""
    import openvino as ov
    from transformers import AutoTokenizer

    from mtst.model.encoder import default_backbone_path

    tokenizer = AutoTokenizer.from_pretrained(str(default_backbone_path()))
    core = ov.Core()
    compiled = core.compile_model(core.read_model(str(xml)), "CPU",
                                  {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": threads})
    request = compiled.create_infer_request()

    def encode(texts: list[str]) -> np.ndarray:
        ids = tokenizer(texts, truncation=True, max_length=256)["input_ids"]
        out = np.zeros((len(texts), 384), dtype=np.float32)
        for batch in _sorted_batches([len(x) for x in ids], batch_size):
            longest = max(len(ids[i]) for i in batch)
            input_ids = np.zeros((len(batch), longest), dtype=np.int64)
            mask = np.zeros_like(input_ids)
            for row, i in enumerate(batch):
                input_ids[row, : len(ids[i])] = ids[i]
                mask[row, : len(ids[i])] = 1
            tokens = np.asarray(request.infer({"input_ids": input_ids, "attention_mask": mask})[0])  # (B, T, H)
            pooled = (tokens * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)  # (B, H)
            out[batch] = pooled / np.linalg.norm(pooled, axis=-1, keepdims=True)
        return out

    return encode


def build(variant: str, work: Path, threads: int) -> tuple[Callable[[list[str]], object], object | None]:
    """(timed function, predictor used for the task-agreement sample or None)."""
    import torch

    torch.set_num_threads(threads)
    model_dir = Path((work / "model_dir.txt").read_text().strip())
    if variant.startswith("st-fp32"):
        from sentence_transformers import SentenceTransformer

        from mtst.model.encoder import default_backbone_path

        st = SentenceTransformer(str(default_backbone_path()), device="cpu")
        return (lambda texts: st.encode(texts, batch_size=32, convert_to_numpy=True)), None
    if variant.startswith("hand-ov"):
        xml = work / "hand-ov" / ("encoder-int8.xml" if variant.endswith("int8") else "encoder.xml")
        return hand_openvino(xml, threads), None
    from mtst.inference.backends import load_predictor

    if variant in ("torch-fp32", "torch-predict"):
        model = load_predictor(model_dir, "torch", threads=threads)
        if variant == "torch-fp32":
            return (lambda texts: model.encode(texts, batch_size=64)), model
        return (lambda texts: model.predict(texts, batch_size=64)), model
    if variant == "separate-models":
        return separate_models(model_dir, threads), None
    backend, precision = variant.split("-", 1)[0], variant.rsplit("-", 1)[-1]
    batch_size = _batch_size(variant)
    if precision == "predict":  # all heads from the fp32 export
        predictor = load_predictor(work / f"{backend}-fp32", backend, threads=threads)
        return (lambda texts: predictor.predict(texts, batch_size=batch_size)), predictor
    predictor = load_predictor(work / f"{backend}-{precision}", backend, threads=threads)
    return (lambda texts: predictor.encode(texts, batch_size=batch_size)), predictor


def _batch_size(variant: str) -> int:
    return 128 if variant.startswith("onnx") else 64  # the faster batch size for each runtime here (FACTS.md)


def separate_models(model_dir: Path, threads: int) -> Callable[[list[str]], object]:
    """Embedding model + one separate full model per task: what mtst replaces (N+1 encoder passes)."""
    from mtst.inference.backends import load_predictor

    embedder = load_predictor(model_dir, "torch", threads=threads)
    per_task = {task: load_predictor(model_dir, "torch", threads=threads) for task in embedder.tasks}

    def run(texts: list[str]) -> object:
        vectors = embedder.encode(texts, batch_size=64)
        return vectors, [model.predict(texts, tasks=[task], batch_size=64) for task, model in per_task.items()]

    return run


def peak_rss_mb() -> float:
    """This process's own peak resident memory. Not getrusage's ru_maxrss: Linux carries that over
    exec from the parent, so every child would report at least the parent's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)  # kB -> MB
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _best_of(fn: Callable[[list[str]], object], texts: list[str], repeats: int) -> tuple[float, object]:
    """Fastest of ``repeats`` timed calls (the machine may be shared: the minimum is the least disturbed)."""
    best, first = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn(texts)
        best = min(best, time.perf_counter() - start)
        first = out if first is None else first
    return best, first


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--variant", required=True)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs over STS-B; the fastest counts")
    args = parser.parse_args()
    sets = json.loads((args.work / "sentences.json").read_text())
    started = time.perf_counter()
    fn, predictor = build(args.variant, args.work, args.threads)
    embed_fn = None
    if args.variant.endswith("-predict"):
        embed_fn = lambda texts: predictor.encode(texts, batch_size=_batch_size(args.variant))  # noqa: E731
    load_s = time.perf_counter() - started
    fn(sets["stsb"][:64])  # warm-up: first-call allocations, graph compilation
    result: dict = {"variant": args.variant, "threads": args.threads, "load_s": round(load_s, 2), "sets": {}}
    for name in ("stsb", "short", "long"):
        if name != "stsb" and args.variant in ("torch-predict", "separate-models", "onnx-predict"):
            continue  # the task comparisons are made on STS-B only, to keep the run short
        texts = sets[name]
        repeats = args.repeats if name == "stsb" and embed_fn is None and args.variant != "separate-models" else 1
        seconds, out = _best_of(fn, texts, repeats)
        result["sets"][name] = {"sentences": len(texts), "seconds": round(seconds, 3), "repeats": repeats,
                                "sentences_per_s": round(len(texts) / seconds, 1)}
        if name == "stsb" and isinstance(out, np.ndarray):
            np.save(args.work / "results" / f"{args.variant}.stsb.npy", out.astype(np.float32))
    if embed_fn is not None:  # all heads vs embeddings only, alternating in this process: robust to load
        predict_s = embed_s = float("inf")
        for _ in range(args.repeats):
            predict_s = min(predict_s, _best_of(fn, sets["stsb"], 1)[0])
            embed_s = min(embed_s, _best_of(embed_fn, sets["stsb"], 1)[0])
        result["predict_vs_encode_same_process"] = {"predict_s": round(predict_s, 3), "encode_s": round(embed_s, 3),
                                                    "ratio": round(predict_s / embed_s, 3)}
        row = result["sets"]["stsb"]
        row["seconds"] = round(min(row["seconds"], predict_s), 3)
        row["sentences_per_s"] = round(row["sentences"] / row["seconds"], 1)
        row["repeats"] = 1 + args.repeats
    latencies, alone = [], []
    for text in sets["stsb"][:LATENCY_SAMPLE]:
        start = time.perf_counter()
        out = fn([text])
        latencies.append(time.perf_counter() - start)
        if isinstance(out, np.ndarray):
            alone.append(out[0])
    result["latency_ms"] = {"p50": round(float(np.percentile(latencies, 50)) * 1e3, 2),
                            "p95": round(float(np.percentile(latencies, 95)) * 1e3, 2)}
    if alone:
        np.save(args.work / "results" / f"{args.variant}.alone.npy", np.stack(alone).astype(np.float32))
    result["peak_rss_mb"] = peak_rss_mb()
    if predictor is not None and predictor.tasks:  # arg-max labels; token tasks one tag per word
        from mtst.inference.agreement import predicted_labels

        result["labels"] = predicted_labels(predictor, sets["stsb"][:AGREEMENT_SAMPLE], batch_size=64)
    if getattr(predictor, "runtime_precision", None):
        result["openvino_runtime_precision"] = predictor.runtime_precision
    (args.work / "results" / f"{args.variant}.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
