"""Few-shot classification side by side in one process (issue 30): majority class, zero-shot (label names; AG News
also with descriptions), a logistic probe on frozen embeddings, mtst's few-shot heads (prototype, logistic), SetFit's
recipe on mtst's task branch (contrastive.py) and SetFit 1.2 itself (its own environment: setfit_runner.py) on AG
News, SST-2 and SST-5 at 8 / 16 / 64 examples per class, 5 seeded draws shared by every method, 2 threads.

    make bench-fewshot                                     # = the run below, then the report
    .venv/bin/python -m benchmarks.fewshot                 # everything (hours: SetFit at 64 shots dominates)
    .venv/bin/python -m benchmarks.fewshot --quick         # AG News, 8 shots, 1 draw, 300 scored rows
    .venv/bin/python -m benchmarks.fewshot --datasets sst2 --shots 8 16 --draws 5 --methods setfit mtst-logistic
    .venv/bin/python -m benchmarks.fewshot report [--quick]   # docs/few-shot.md + docs/few-shot.png; runs nothing

One JSON per (dataset, method, shots, draw) in results/ (results/quick/ for --quick), skipped when present: a stopped
run resumes. Each records its draw's row indices (into the dataset's train part), accuracy and training seconds.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
import traceback
from pathlib import Path

from benchmarks.common import run_metadata, write_result
from benchmarks.fewshot import methods
from benchmarks.fewshot.data import DATASETS, Split, draw
from benchmarks.fewshot.methods import METHODS, SHOTLESS, Skipped
from mtst.model.cpu_paths import cpu_facts

RESULTS = Path(__file__).resolve().parent / "results"
IDLE = RESULTS.with_name("results-idle")  # the same fits re-timed with nothing else running
QUICK_ROWS = 300  # scored rows of a --quick run


def result_path(results: Path, dataset: str, method: str, shots: int, draw_index: int) -> Path:
    return results / dataset / method / f"{shots}shot-draw{draw_index}.json"


def run_one(dataset, method: str, shots: int, draw_index: int, test: Split, command: str) -> dict:
    started, load_before = time.time(), os.getloadavg()
    rows = draw(dataset.train.labels, shots, draw_index) if shots else []
    texts, labels = [dataset.train.texts[i] for i in rows], [dataset.train.labels[i] for i in rows]
    predicted, seconds, extra = METHODS[method](dataset, texts, labels, test, draw_index)
    accuracy = 100 * sum(p == g for p, g in zip(predicted, test.labels, strict=True)) / len(test.labels)
    return {"dataset": dataset.name, "method": method, "shots": shots, "draw": draw_index, "seed": draw_index,
            "accuracy": round(accuracy, 3), "train_seconds": round(seconds, 3), "scored_rows": len(test.labels),
            "rows": rows, "extra": extra, "cpu_flags": cpu_facts()["flags"],
            **run_metadata(command, started, load_before, methods.THREADS)}


def run(args: argparse.Namespace, results: Path) -> None:
    """Shot-less methods first, then by shots (all datasets at 8 before any at 64), draw, method: the cheap
    side-by-side comparisons are complete early in a run of hours."""
    command = "python -m benchmarks.fewshot " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    jobs = [(name, method, 0, 0) for name in args.datasets for method in args.methods if method in SHOTLESS]
    jobs += [(name, method, shots, d) for shots in args.shots for name in args.datasets for d in range(args.draws)
             for method in args.methods if method not in SHOTLESS]
    loaded, skipped = {}, set()
    for name, method, shots, draw_index in jobs:
        path = result_path(results, name, method, shots, draw_index)
        if path.exists() or (name, method) in skipped:
            continue
        if name not in loaded:
            data, cut = DATASETS[name](), slice(QUICK_ROWS if args.quick else None)
            loaded[name] = data, Split(data.test.texts[cut], data.test.labels[cut])
        dataset, test = loaded[name]
        try:
            result = run_one(dataset, method, shots, draw_index, test, command)
        except Skipped as exc:
            print(f"skip {method} on {name}: {exc}", flush=True)
            skipped.add((name, method))
            continue
        except Exception:  # one broken fit must not stop hours of others
            traceback.print_exc()
            print(f"FAILED {name} {method} {shots} shots draw {draw_index}", flush=True)
            continue
        write_result(path, {**result, "quick": args.quick})
        print(f"{name} {method} {shots} shots draw {draw_index}: {result['accuracy']:.1f}% "
              f"({result['train_seconds']:.2f} s)", flush=True)


def main() -> None:
    import torch

    from benchmarks.fewshot import report

    parser = argparse.ArgumentParser(prog="python -m benchmarks.fewshot", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", nargs="?", choices=["run", "report"], default="run")
    parser.add_argument("--quick", action="store_true", help="AG News, 8 shots, 1 draw, 300 scored rows")
    parser.add_argument("--datasets", nargs="+", choices=list(DATASETS))
    parser.add_argument("--shots", nargs="+", type=int, help="examples per class (default 8 16 64)")
    parser.add_argument("--draws", type=int, help="seeded draws per number of shots (default 5)")
    parser.add_argument("--methods", nargs="+", choices=list(METHODS), default=list(METHODS))
    parser.add_argument("--idle", action="store_true", help=f"a re-timing on an idle machine: results go to "
                        f"{IDLE.name}/, which the report shows as its own table")
    parser.add_argument("--threads", type=int, default=methods.THREADS,
                        help=f"torch threads for every method, SetFit's too (default {methods.THREADS})")
    args = parser.parse_args()
    results = RESULTS / "quick" if args.quick else RESULTS
    if args.command == "report":  # the main table, and the idle re-timing's beside it
        return report.main(results, quick=args.quick, idle_dir=IDLE)
    results = IDLE if args.idle else results
    args.datasets = args.datasets or (["ag_news"] if args.quick else list(DATASETS))
    args.shots = args.shots or ([8] if args.quick else [8, 16, 64])
    args.draws = args.draws or (1 if args.quick else 5)
    methods.THREADS = args.threads  # SetFit's subprocess reads it too
    torch.set_num_threads(args.threads)
    run(args, results)


if __name__ == "__main__":
    main()
