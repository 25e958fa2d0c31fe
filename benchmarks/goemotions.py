"""GoEmotions with the recipe's defaults (issue 28): a trained run's test macro-F1 with the default 0.5 thresholds
and with per-label thresholds tuned on dev (the paper's BERT-base: 0.46 over 28 emotions, 0.69 over its 4 sentiment
groups). The run itself: configs/goemotions.yaml (see its header for the command).

    MTST_DATA_DIR=../shared/data python -m benchmarks.goemotions RUN_DIR --config configs/goemotions.yaml \
        [--set tasks.emotions.data.train.path=...] --name NAME   # -> benchmarks/defaults_results/NAME.json
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from benchmarks.common import run_metadata
from mtst.files import write_text

RESULTS = Path(__file__).resolve().parent / "defaults_results"  # runs on the defaults alone (issue 28)


def main() -> None:
    from mtst import MultiTaskModel
    from mtst.data.splits import read_task_splits
    from mtst.training.api import apply_overrides, parse_set
    from mtst.training.config import TrainConfig, load_train_config
    from mtst.training.evaluation import evaluate_task
    from mtst.training.thresholds import tune_thresholds

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a run directory (its best/ model is scored)")
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--set", nargs="*", default=[], help="KEY=VALUE config overrides (as mtst train --set)")
    parser.add_argument("--name", required=True)
    args = parser.parse_args()
    started, load = time.time(), os.getloadavg()
    raw = load_train_config(args.config).model_dump(mode="json", exclude_unset=True)
    config = TrainConfig.model_validate(apply_overrides(raw, parse_set(args.set)))
    task = config.tasks[0]
    splits = read_task_splits(task.name, task.type, task.data)
    model = MultiTaskModel.load(args.run / "best", precision="fp32")
    default = evaluate_task(model, task.name, splits["test"])
    thresholds = tune_thresholds(model, task.name, splits["dev"])
    tuned = evaluate_task(model, task.name, splits["test"])
    summary = json.loads((args.run / "summary.json").read_text()) if (args.run / "summary.json").exists() else {}
    result = {"task": task.name, "labels": len(model.heads[task.name].labels), "test_default_thresholds": default,
              "test_tuned_thresholds": tuned, "thresholds": thresholds, "train_summary": summary,
              "run": run_metadata(f"-m benchmarks.goemotions {args.run} --config {args.config}", started, load, None)}
    RESULTS.mkdir(parents=True, exist_ok=True)
    write_text(RESULTS / f"{args.name}.json", json.dumps(result, indent=1))
    print(json.dumps({"default": default, "tuned": tuned}, indent=1))


if __name__ == "__main__":
    main()
