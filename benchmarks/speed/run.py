"""Offline inference speed of mtst against sentence-transformers, side by side in one run.

    make bench-speed            # = .venv/bin/python benchmarks/speed/run.py
    .venv/bin/python benchmarks/speed/run.py --subsample 1000 --threads 2 --work /tmp/mtst-bench-speed

Every variant runs in its own subprocess (so its peak RSS is its own) with the same thread count on the
same sentences: STS-B test (unique sentences), a short-only set (<= 10 tokens, from STS-B) and a
long-only set (200 AG News test "title. description" texts). Writes benchmarks/speed/results/<stamp>.json
and the "## Offline inference speed" section of docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from importlib.metadata import version
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from mtst.inference.agreement import label_agreement

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))

from prepare import prepare  # noqa: E402
from report import write_docs  # noqa: E402

VARIANTS = [
    ("st-fp32", "sentence-transformers encode, fp32, batch 32 (reference)"),
    ("hand-ov-default", "hand-made OpenVINO encoder, default precision, mean pooling in numpy, batch 64"),
    ("hand-ov-int8", "hand-made OpenVINO encoder + NNCF int8, mean pooling in numpy, batch 64"),
    ("torch-fp32", "mtst torch fp32 encode, batch 64"),
    ("onnx-fp32", "mtst export ONNX Runtime fp32 encode, batch 128"),
    ("onnx-int8", "mtst export ONNX Runtime dynamic int8 (per-channel, reduce_range) encode, batch 128"),
    ("openvino-fp32", "mtst export OpenVINO, default precision encode, batch 64"),
    ("openvino-int8", "mtst export OpenVINO NNCF int8 encode, batch 64"),
    ("torch-predict", "mtst torch predict, all heads + decoding, batch 64"),
    ("onnx-predict", "mtst ONNX fp32 predict, all heads + decoding, batch 128"),
    ("separate-models", "torch: embedding model + one separate model per task (N+1 encoder passes)"),
    ("st-fp32-again", "sentence-transformers again at the end (shows the run-to-run noise)"),
]
MFLOP_PER_TOKEN = 21.2e6  # MiniLM-L6 dense layers; attention adds ~9.2 kFLOP x length per token
ATTENTION_FLOP = 9.2e3
PEAK_FLOPS = 507e9  # fp32 peak of this 2-core CPU (FACTS.md)


def run_variant(name: str, work: Path, threads: int, repeats: int) -> dict:
    command = [sys.executable, str(HERE / "variants.py"), "--variant", name, "--work", str(work),
               "--threads", str(threads), "--repeats", str(repeats)]
    started = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        print(f"  {name} failed: {' | '.join(tail)}", flush=True)
        return {"variant": name, "error": " | ".join(tail)}
    result = json.loads((work / "results" / f"{name}.json").read_text())
    result["wall_s"] = round(time.perf_counter() - started, 1)
    print(f"  {name}: {result['sets']['stsb']['sentences_per_s']} sentences/s on STS-B ({result['wall_s']} s)",
          flush=True)
    return result


def _cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))


def flops_per_sentence(tokens: list[int]) -> float:
    lengths = np.asarray(tokens, dtype=np.float64)
    return float((lengths * (MFLOP_PER_TOKEN + ATTENTION_FLOP * lengths)).mean())


def analyse(results: dict[str, dict], work: Path) -> None:
    """Adds ratios, STS-B Spearman, cosine to the reference, batch make-up dependence, agreement, FLOP use."""
    sets = json.loads((work / "sentences.json").read_text())
    pairs = np.asarray(sets["pairs"])
    a, b, gold = pairs[:, 0].astype(int), pairs[:, 1].astype(int), pairs[:, 2]
    load = lambda name, kind: np.load(work / "results" / f"{name}.{kind}.npy")  # noqa: E731
    reference = load("st-fp32", "stsb")
    ref_speed = {name: np.mean([results[v]["sets"][name]["sentences_per_s"] for v in ("st-fp32", "st-fp32-again")
                                if "sets" in results.get(v, {})]) for name in ("stsb", "short", "long")}
    torch_labels = results.get("torch-predict", {}).get("labels")
    for name, result in results.items():
        if "error" in result:
            continue
        for set_name, row in result["sets"].items():
            row["ratio_to_reference"] = round(row["sentences_per_s"] / ref_speed[set_name], 2)
            achieved = row["sentences_per_s"] * flops_per_sentence(sets["tokens"][set_name])
            row["fraction_of_fp32_peak"] = round(achieved / PEAK_FLOPS, 3)
        if (work / "results" / f"{name}.stsb.npy").exists():
            emb = load(name, "stsb")
            result["stsb_spearman"] = round(100 * float(spearmanr(_cosine_rows(emb[a], emb[b]), gold).statistic), 2)
            cos = _cosine_rows(emb, reference)
            result["cosine_to_reference"] = {"mean": round(float(cos.mean()), 6), "min": round(float(cos.min()), 6)}
            alone = load(name, "alone")
            result["batch_makeup_max_1_minus_cos"] = float(np.abs(1 - _cosine_rows(alone, emb[: len(alone)])).max())
        if torch_labels and result.get("labels") and name != "torch-predict":
            agreement = label_agreement(torch_labels, result["labels"])
            result["task_agreement_with_torch"] = {task: round(value, 4) for task, value in agreement.items()}
        result.pop("labels", None)
    for predict, embed in (("torch-predict", "torch-fp32"), ("onnx-predict", "onnx-fp32")):
        if "sets" in results.get(predict, {}) and "sets" in results.get(embed, {}):
            results[predict]["cost_vs_embeddings_only"] = round(
                results[predict]["sets"]["stsb"]["seconds"] / results[embed]["sets"]["stsb"]["seconds"], 2)
    if "sets" in results.get("separate-models", {}) and "sets" in results.get("torch-predict", {}):
        results["separate-models"]["cost_vs_mtst_predict"] = round(
            results["separate-models"]["sets"]["stsb"]["seconds"] / results["torch-predict"]["sets"]["stsb"]["seconds"],
            2)


def run_metadata(script: str, started: float, load_before: tuple[float, ...], threads: int) -> dict:
    """What every speed result file records about its run: command, start, duration, load, hardware."""
    return {
        "command": f"benchmarks/speed/{script} " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
        "started_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(started)),
        "duration_s": round(time.time() - started, 1),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "hardware": hardware(threads),
    }


def hardware(threads: int) -> dict:
    model = "unknown"
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    packages = ["torch", "onnxruntime", "openvino", "nncf", "sentence-transformers", "transformers"]
    return {"cpu": model, "logical_cores": os.cpu_count(), "cores_available": len(os.sched_getaffinity(0)),
            "threads": threads, "python": platform.python_version(),
            "versions": {name: version(name) for name in packages}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/mtst-bench-speed"))
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--subsample", type=int, default=None, help="use only the first N STS-B sentences")
    parser.add_argument("--variants", default=",".join(name for name, _ in VARIANTS))
    parser.add_argument("--no-docs", action="store_true", help="do not rewrite docs/performance.md")
    parser.add_argument("--reuse", action="store_true", help="reuse the model and exports already in --work")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes over STS-B per variant; fastest counts")
    args = parser.parse_args()
    started, load_before = time.time(), os.getloadavg()
    print(f"preparing in {args.work} ...", flush=True)
    built = prepare(args.work, args.subsample, args.reuse)
    results = {}
    for name in args.variants.split(","):
        results[name] = run_variant(name, args.work, args.threads, args.repeats)
    analyse(results, args.work)
    report = {
        **run_metadata("run.py", started, load_before, args.threads),
        "descriptions": dict(VARIANTS),
        "stsb_pairs": len(json.loads((args.work / "sentences.json").read_text())["pairs"]),
        "repeats": args.repeats,
        **built,
        "results": results,
    }
    out = HERE / "results" / f"speed-{time.strftime('%Y%m%d-%H%M', time.gmtime(started))}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {out.relative_to(ROOT)}", flush=True)
    if not args.no_docs:
        write_docs(report, ROOT / "docs" / "performance.md", out.relative_to(ROOT))


if __name__ == "__main__":
    main()
