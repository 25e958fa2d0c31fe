"""The speed variants as data (the one-pass task paths too), and one variant measured in its own process (so its peak
RSS is its own):

    .venv/bin/python -m benchmarks.speed.variants onnx-int8 --work /tmp/mtst-bench-speed --threads 2 [--round 0]

writes <work>/results/<variant>.json: sentences/s (median of ``--repeats`` passes), batch-1 latency, peak RSS,
for predict calls the runtime's ``encode`` timed in alternation (wall and this process's CPU time); round 0 also
STS-B test Spearman (mtst's evaluation), the STS-B embeddings (<variant>.npy: cosine to the reference) and task
labels on a sample (agreement with torch); one-pass variants also trainable parameters, layer work, saved size.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from benchmarks.common import alternating_rounds, cpu_seconds, peak_rss_mb, seconds, stsb
from benchmarks.speed.prepare import backbone_model

LATENCY_SAMPLE = 100  # sentences timed one at a time
AGREEMENT_SAMPLE = 300  # sentences whose task labels are compared with torch


@dataclass(frozen=True)
class SpeedVariant:
    name: str
    runtime: str  # "sentence-transformers", "backbone" (backbone_model(path)), "backbone-openvino" (its OpenVINO
    # export), or what prepare.py built: model, onnx-fp32, ...
    call: str  # "encode", "predict" (every head, decoded), "predict+embedding", "separate" (one model per task)
    batch_size: int | None  # the faster batch size for each runtime on this machine (None: the probe's batching)
    precision: str = "fp32"  # torch variants: MultiTaskModel.use_precision, pinned; "probe": choose_cpu_path()
    path: dict = field(default_factory=dict)  # "backbone": from_backbone options of the task path (branch / side)


VARIANTS = {v.name: v for v in (
    SpeedVariant("st-fp32", "sentence-transformers", "encode", 32),  # the reference
    SpeedVariant("torch-fp32", "model", "encode", 64),
    SpeedVariant("torch-bf16", "model", "encode", 64, "bf16"),  # autocast: lossless by mtst's gate where native
    # what `encode(texts)` runs once the probe measured this machine: its kernels, precision and batching
    SpeedVariant("torch-probed", "model", "encode", None, "probe"),
    SpeedVariant("torch-probed-predict-embedding", "model", "predict+embedding", None, "probe"),
    SpeedVariant("onnx-fp32", "onnx-fp32", "encode", 128),
    SpeedVariant("onnx-int8", "onnx-int8", "encode", 128),  # dynamic int8, per-channel, reduce_range
    SpeedVariant("openvino-fp32", "openvino-fp32", "encode", 64),  # its default precision: bf16 where the CPU has it
    SpeedVariant("openvino-int8", "openvino-int8", "encode", 64),  # NNCF int8
    SpeedVariant("torch-predict", "model", "predict", 64),
    SpeedVariant("torch-predict-embedding", "model", "predict+embedding", 64),
    SpeedVariant("onnx-predict", "onnx-fp32", "predict", 128),
    SpeedVariant("openvino-predict", "openvino-fp32", "predict", 64),
    SpeedVariant("separate-models", "model", "separate", 64),  # an embedding model + one model per task
)}
REFERENCE = "st-fp32"
# One pass for the embedding and every head, per task path (issue 31): `python -m benchmarks.speed --variants one-pass`
ONE_PASS = {v.name: v for v in (
    SpeedVariant("frozen-encoder", "backbone", "predict+embedding", 64),
    *(SpeedVariant(f"branch-k{k}", "backbone", "predict+embedding", 64, path={"branch_at": k}) for k in (5, 4, 3, 2)),
    *(SpeedVariant(f"side-r{r}", "backbone", "predict+embedding", 64, path={"side_reduction": r}) for r in (8, 4, 2)),
    # slimmer branches (distilled from the k = 2 one): narrower FFNs, fewer attention heads, fewer layers above k
    *(SpeedVariant(f"branch-{name}", "backbone", "predict+embedding", 64, path=path) for name, path in (
        ("k4-ffn768", {"branch_at": 4, "branch_intermediate_size": 768}),
        ("k4-ffn384", {"branch_at": 4, "branch_intermediate_size": 384}),
        *((f"k3-ffn{m}", {"branch_at": 3, "branch_intermediate_size": m}) for m in (384, 256, 192)),
        *((f"k3-heads{a}-ffn384", {"branch_at": 3, "branch_attention_heads": a, "branch_intermediate_size": 384})
          for a in (6, 4)),
        ("k2-2layers-ffn384", {"branch_at": 2, "branch_layers": 2, "branch_intermediate_size": 384}))),
)}
ONE_PASS.update({f"{name}-openvino": SpeedVariant(f"{name}-openvino", "backbone-openvino", v.call, v.batch_size,
                                                  path=v.path) for name, v in list(ONE_PASS.items())})


def load(variant: SpeedVariant, work: Path, threads: int):
    from mtst.inference.backends import load_predictor

    if variant.runtime == "sentence-transformers":  # behind the encode signature mtst's evaluation calls
        from sentence_transformers import SentenceTransformer

        from mtst.model.encoder import default_backbone_path

        st = SentenceTransformer(str(default_backbone_path()), device="cpu")
        return SimpleNamespace(tasks=[], encode=st.encode)  # mtst's encode takes sentence-transformers' keywords
    if variant.runtime == "backbone":
        model = backbone_model(variant.path)
        model.use_precision(variant.precision)
        return model
    if variant.runtime == "backbone-openvino":  # the same task path, exported (OpenVINO's default precision)
        from mtst.inference.export import export_model

        saved = backbone_model(variant.path).save(work / f"{variant.name}-model")
        export_model(saved, work / variant.name, format="openvino")
        return load_predictor(work / variant.name, threads=threads)
    model = json.loads((work / "prepared.json").read_text())["model"] if variant.runtime == "model" else None
    predictor = load_predictor(model or work / variant.runtime, threads=threads)
    if variant.runtime == "model" and variant.precision == "probe":  # measured here (seconds, untimed), not cached
        predictor.runtime.model.choose_cpu_path(save=False)
    elif variant.runtime == "model":
        predictor.runtime.model.use_precision(variant.precision)
    return predictor


def linear_macs(module) -> int:
    import torch

    return sum(m.weight.numel() for m in module.modules() if isinstance(m, torch.nn.Linear))


def sizes(model) -> dict:
    """Trainable parameters (the task path beside the backbone, and the heads), the layer work of predict with the
    embedding over encode's (multiply-adds per token of the layers' linear maps; heads and attention scores left
    out) and the saved size without the backbone (heads + branch / side network files), fp32 and bf16."""
    tuned = model.tuned_encoder()
    parts = [model.heads] + ([] if tuned is model.encoder else [tuned])
    beside = 0 if tuned is model.encoder else linear_macs(tuned)
    out = {"trainable_parameters": sum(p.numel() for part in parts for p in part.parameters()),
           "layer_work_ratio": round(1 + beside / linear_macs(model.encoder.layers), 3)}
    with tempfile.TemporaryDirectory() as tmp:
        for dtype in ("float32", "bfloat16"):
            saved = model.save(Path(tmp) / dtype, include_encoder=False, dtype=dtype)
            out[f"saved_bytes_{dtype}"] = sum(f.stat().st_size for f in saved.glob("*.safetensors"))
    return out


def cpu_timed(call, spent: list[float]):
    """The same call, also appending its CPU seconds (user + system) to ``spent``."""
    def run() -> None:
        start = cpu_seconds()
        call()
        spent.append(cpu_seconds() - start)
    return run


def timed_call(variant: SpeedVariant, runner, work: Path, threads: int):
    """texts -> output: exactly the call the variant's figure is about."""
    size = variant.batch_size
    if variant.call == "encode":
        return lambda texts: runner.encode(texts, batch_size=size)
    if variant.call in ("predict", "predict+embedding"):
        embedding = variant.call == "predict+embedding"
        return lambda texts: runner.predict(texts, batch_size=size, include_embedding=embedding)
    per_task = [(task, load(variant, work, threads)) for task in runner.tasks]  # separate: N+1 encoder passes
    return lambda texts: (runner.encode(texts, batch_size=size),
                          [model.predict(texts, tasks=[task], batch_size=size) for task, model in per_task])


def measure(variant: SpeedVariant, work: Path, threads: int, repeats: int, quality: bool) -> dict:
    import torch

    torch.set_num_threads(threads)
    texts = json.loads((work / "sentences.json").read_text())["stsb"]
    started = time.perf_counter()
    runner = load(variant, work, threads)
    call = timed_call(variant, runner, work, threads)
    result: dict = {"variant": variant.name, "threads": threads, "load_s": round(time.perf_counter() - started, 2)}
    call(texts[:64])  # warm-up: first-call allocations, graph compilation
    calls = {"call": lambda: call(texts)}
    if variant.call.startswith("predict"):  # every head vs the embedding alone, alternating in this process
        calls["encode"] = lambda: runner.encode(texts, batch_size=variant.batch_size)
    if variant.call == "predict+embedding" and variant.runtime.startswith("backbone"):  # labels alone, too
        calls["labels"] = lambda: runner.predict(texts, batch_size=variant.batch_size)
    cpu: dict[str, list[float]] = {name: [] for name in calls}
    took = alternating_rounds({name: cpu_timed(run, cpu[name]) for name, run in calls.items()}, repeats)
    result["sets"] = {"stsb": {"sentences": len(texts), "seconds": round(took["call"], 3), "repeats": repeats,
                               "sentences_per_s": round(len(texts) / took["call"], 1)}}
    if "encode" in took:
        cpu_ratio = statistics.median(cpu["call"]) / statistics.median(cpu["encode"])
        result["predict_vs_encode_same_process"] = {
            "predict_s": round(took["call"], 3), "encode_s": round(took["encode"], 3),
            "ratio": round(took["call"] / took["encode"], 3), "cpu_ratio": round(cpu_ratio, 3)}
    if "labels" in took:  # predict without the embedding: the task path's cost when no vector is asked for
        result["predict_vs_encode_same_process"].update(labels_s=round(took["labels"], 3),
                                                        labels_ratio=round(took["labels"] / took["encode"], 3))
    latencies = [seconds(lambda text=text: call([text])) for text in texts[:LATENCY_SAMPLE]]
    result["latency_ms"] = {f"p{q}": round(float(np.percentile(latencies, q)) * 1e3, 2) for q in (50, 95)}
    result["peak_rss_mb"] = peak_rss_mb()
    if variant.runtime == "backbone":
        result.update(sizes(runner))
    elif variant.runtime == "backbone-openvino":
        result.update(sizes(backbone_model(variant.path)))
    if quality and variant.call == "encode":
        from mtst.training.evaluation import sts_spearman

        np.save(work / "results" / f"{variant.name}.npy", np.asarray(call(texts), dtype=np.float32))
        result["stsb_spearman"] = round(sts_spearman(runner, stsb(), batch_size=variant.batch_size), 2)
    if quality and runner.tasks:  # arg-max labels; token tasks one tag per word
        from mtst.inference.agreement import predicted_labels

        result["labels"] = predicted_labels(runner, texts[:AGREEMENT_SAMPLE], batch_size=64)
    if precision := getattr(getattr(runner, "runtime", None), "runtime_precision", None):  # OpenVINO: bf16 or f32
        result["openvino_runtime_precision"] = precision
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variant", choices=[*VARIANTS, *ONE_PASS])
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--repeats", type=int, default=3, help="timed passes over STS-B; the median counts")
    parser.add_argument("--round", type=int, default=0, help="round 0 also records quality and labels")
    args = parser.parse_args()
    variant = {**VARIANTS, **ONE_PASS}[args.variant]
    result = measure(variant, args.work, args.threads, args.repeats, quality=args.round == 0)
    (args.work / "results" / f"{args.variant}.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
