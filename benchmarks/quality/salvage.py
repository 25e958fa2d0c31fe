"""Keep the dev learning curve of a run that was stopped before it finished (e.g. at a session limit).

    .venv/bin/python benchmarks/quality/salvage.py long joint-sentiment-ner-1500steps --seed 0

Reads the trainer's ``metrics.jsonl`` in the run directory under .cache/runs/ and writes
``results/<experiment>/<variant>-seed<k>-partial.json`` with the evaluations so far (dev scores only: the
test evaluation happens after training). ``report.py`` plots it with the finished runs; a finished run
with the same name is never overwritten, and rerunning ``run.py`` still trains the variant from scratch.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import RESULTS, write_result  # noqa: E402
from experiments import EXPERIMENTS, RUNS, build_config, read_metrics  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("experiment", choices=list(EXPERIMENTS))
    parser.add_argument("variant")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    variant = next((v for v in EXPERIMENTS[args.experiment] if v.name == args.variant), None)
    if variant is None:
        raise SystemExit(f"error: no variant {args.variant} in {args.experiment}")
    run_dir = RUNS / args.experiment / f"{variant.name}-seed{args.seed}"
    log = run_dir / "metrics.jsonl"
    if not log.exists():
        raise SystemExit(f"error: {log} not found; nothing to salvage")
    records = read_metrics(run_dir)
    curve = [r for r in records if "eval" in r]
    if not curve:
        raise SystemExit(f"error: {log} holds no evaluation yet")
    last = curve[-1]["step"]
    raw = build_config(args.experiment, variant, args.seed, quick=False)
    path = RESULTS / args.experiment / f"{variant.name}-seed{args.seed}-partial.json"
    write_result(path, {
        "experiment": args.experiment, "variant": f"{variant.name} (stopped at step {last})", "seed": args.seed,
        "partial": True, "note": f"stopped at step {last} of {raw['optimizer']['max_steps']}: dev scores only",
        "tasks": list(variant.tasks), "metrics": {}, "dev_curve": curve, "steps": last,
        "batch_size": raw["optimizer"]["batch_size"], "wall_s": None,
        "train_log": [r for r in records if "loss" in r], "config": raw,
    })
    print(f"wrote {path.relative_to(RESULTS)}: dev curve up to step {last}")


if __name__ == "__main__":
    main()
