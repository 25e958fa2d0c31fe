"""Offline inference speed of mtst against sentence-transformers: encode, predict (every head) and predict with the
embedding, on torch, ONNX Runtime and OpenVINO, fp32 and int8 (the variants are data: variants.py).

    make bench-speed            # = .venv/bin/python -m benchmarks.speed   (every variant, one round)
    make bench-speed-rounds     # = ... -m benchmarks.speed --rounds 5 --variants openvino-fp32,onnx-fp32,openvino-int8
    .venv/bin/python -m benchmarks.speed --subsample 1000 --threads 2 --work WORK_DIR --reuse
    .venv/bin/python -m benchmarks.speed --variants one-pass --subsample 1000 --threads 2 --repeats 5

A round runs the reference (sentence-transformers), then every variant, each in its own process with the same threads
on the same sentences; a ratio is a variant's speed over the reference's in the same round (a shared machine's drift
cancels), the figures are medians over rounds. Writes benchmarks/speed/results/speed-<stamp>.json and its table into
the generated page docs/speed-tables.md (several rounds: rounds-<stamp>.json and the rounds block there). ``--variants
one-pass``: predict with the embedding over encode per task path (variants.ONE_PASS), one_pass-<stamp>.json and the
table printed and written beside it (.md); docs untouched.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from benchmarks.common import REPO, run_metadata, write_result
from benchmarks.speed.prepare import prepare
from benchmarks.speed.report import one_pass_table, write_docs
from benchmarks.speed.variants import ONE_PASS, REFERENCE, VARIANTS
from mtst.files import write_text

RESULTS = Path(__file__).resolve().parent / "results"


def run_variant(name: str, work: Path, threads: int, repeats: int, index: int) -> dict:
    command = [sys.executable, "-m", "benchmarks.speed.variants", name, "--work", str(work), "--threads",
               str(threads), "--repeats", str(repeats), "--round", str(index)]
    started = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
    if proc.returncode != 0:
        tail = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-3:])
        print(f"  {name} failed: {tail}", flush=True)
        return {"variant": name, "error": tail}
    result = json.loads((work / "results" / f"{name}.json").read_text())
    result["wall_s"] = round(time.perf_counter() - started, 1)
    print(f"  {name}: {result['sets']['stsb']['sentences_per_s']} sentences/s on STS-B ({result['wall_s']} s)",
          flush=True)
    return result


def analyse(rounds: list[dict[str, dict]], work: Path) -> dict[str, dict]:
    """Round 0's result per variant, with its speeds and ratios to the reference as medians over the rounds (and the
    per-round STS-B ratios), the cosine of its embeddings to the reference's, and its task agreement with torch."""
    from mtst.inference.agreement import label_agreement

    results = copy.deepcopy(rounds[0])
    labels = next((results[name]["labels"] for name in ("torch-fp32", "torch-predict") if "labels" in results.get(
        name, {})), None)
    for name, result in results.items():
        done = [r for r in rounds if "sets" in r.get(name, {}) and "sets" in r.get(REFERENCE, {})]
        for set_name, row in result["sets"].items() if done else ():
            speeds = [(r[name]["sets"][set_name]["sentences_per_s"], r[REFERENCE]["sets"][set_name]["sentences_per_s"])
                      for r in done]
            row["sentences_per_s"] = statistics.median(mine for mine, _ in speeds)
            row["ratios"] = [round(mine / ref, 3) for mine, ref in speeds]
            row["ratio_to_reference"] = round(statistics.median(row["ratios"]), 2)
        if (work / "results" / f"{name}.npy").exists() and name != REFERENCE:
            a, b = (np.load(work / "results" / f"{n}.npy") for n in (name, REFERENCE))
            cos = (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))
            result["cosine_to_reference"] = {"mean": round(float(cos.mean()), 6), "min": round(float(cos.min()), 6)}
        if labels and result.get("labels") and result["labels"] is not labels:
            result["task_agreement_with_torch"] = {task: round(value, 4) for task, value in
                                                   label_agreement(labels, result["labels"]).items()}
    for result in results.values():
        result.pop("labels", None)
    if all("sets" in results.get(name, {}) for name in ("separate-models", "torch-predict")):
        results["separate-models"]["cost_vs_mtst_predict"] = round(
            results["torch-predict"]["sets"]["stsb"]["sentences_per_s"]
            / results["separate-models"]["sets"]["stsb"]["sentences_per_s"], 2)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/mtst-bench-speed"))
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3, help="timed passes over STS-B per variant and round")
    parser.add_argument("--subsample", type=int, default=None, help="time only the first N STS-B sentences")
    parser.add_argument("--variants", default=",".join(VARIANTS),
                        help=f"comma-separated, from: {', '.join([*VARIANTS, *ONE_PASS])}; or one-pass")
    parser.add_argument("--reuse", action="store_true", help="reuse the model and exports already in --work")
    parser.add_argument("--no-docs", action="store_true", help="do not rewrite docs/speed-tables.md")
    parser.add_argument("--block", default="main", help="the table block of docs/speed-tables.md to write")
    parser.add_argument("--render", type=Path, help="only re-render this saved result file into docs/speed-tables.md")
    args = parser.parse_args()
    if args.render:
        return write_docs(json.loads(args.render.read_text()), args.render.resolve().relative_to(REPO), args.block)
    known = {**VARIANTS, **ONE_PASS}
    variants = [name for name in (",".join(ONE_PASS) if args.variants == "one-pass" else args.variants).split(",")
                if name and name != REFERENCE]
    one_pass = all(name in ONE_PASS for name in variants)  # their own report: no reference, a one_pass file
    unknown = [name for name in variants if name not in known]
    if unknown or args.rounds < 1:
        raise SystemExit(f"error: unknown variant(s) {unknown}" if unknown else "error: --rounds must be at least 1")
    started, load_before = time.time(), os.getloadavg()
    print(f"preparing in {args.work} ...", flush=True)
    built = prepare(args.work, args.subsample, {known[name].runtime for name in variants}, args.reuse)
    rounds = []
    for k in range(args.rounds):
        print(f"round {k + 1} of {args.rounds}", flush=True)
        rounds.append({name: run_variant(name, args.work, args.threads, args.repeats, k)
                       for name in ([] if one_pass else [REFERENCE]) + variants})
    command = "-m benchmarks.speed " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    report = {**run_metadata(command, started, load_before, args.threads), "rounds": args.rounds,
              "repeats": args.repeats, "variants": {name: asdict(known[name]) for name in rounds[0]}, **built,
              "results": analyse(rounds, args.work), "reference_speeds": [
                  r.get(REFERENCE, {}).get("sets", {}).get("stsb", {}).get("sentences_per_s", 0.0) for r in rounds]}
    report["summary"] = {name: {"ratios": ratios, "median": round(statistics.median(ratios), 2), "min": min(ratios),
                                "max": max(ratios)} for name, result in report["results"].items() if name != REFERENCE
                         and (ratios := result.get("sets", {}).get("stsb", {}).get("ratios"))}
    stamp = time.strftime("%Y%m%d-%H%M", time.gmtime(started))
    out = RESULTS / f"{'one_pass' if one_pass else 'rounds' if args.rounds > 1 else 'speed'}-{stamp}.json"
    write_result(out, report)
    print(f"wrote {out.relative_to(REPO)}", flush=True)
    if one_pass:
        write_text(out.with_suffix(".md"), one_pass_table(report))
        print(one_pass_table(report))
    elif not args.no_docs:
        write_docs(report, out.relative_to(REPO), args.block)


if __name__ == "__main__":
    main()
