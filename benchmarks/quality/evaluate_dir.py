"""Evaluate an existing model directory the way every trained variant is evaluated (test splits + STS-B test),
without training: a result file beside the trained ones, for models trained elsewhere (the shipped default).
``--weights RUN/checkpoint`` swaps in a training checkpoint's weights (e.g. the last step of a run whose kept
model is an earlier one), so a checkpoint chosen by another rule is scored the same way.

    .venv/bin/python benchmarks/quality/evaluate_dir.py MODEL_DIR EXPERIMENT VARIANT [--weights DIR] [--note TEXT]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Timer, evaluate_model, result_path, setup_threads, write_result  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("experiment")
    parser.add_argument("variant")
    parser.add_argument("--weights", type=Path, help="a training checkpoint directory (run_dir/checkpoint)")
    parser.add_argument("--note", default="")
    args = parser.parse_args()
    from mtst import MultiTaskModel
    from mtst.training.checkpoint import WEIGHTS_FILE, load_model_weights

    if args.weights is not None and not (args.weights / WEIGHTS_FILE).is_file():
        parser.error(f"--weights {args.weights} has no {WEIGHTS_FILE}: pass a run's checkpoint/ directory")

    setup_threads()
    model = MultiTaskModel.load(args.model)
    if args.weights is not None:
        model.load_state_dict(load_model_weights(args.weights), strict=True)
    with Timer() as timer:
        metrics = evaluate_model(model, model.tasks)
    path = result_path(args.experiment, args.variant, 0)
    write_result(path, {"experiment": args.experiment, "variant": args.variant, "seed": 0, "note": args.note,
                        "tasks": model.tasks, "metrics": metrics, "model": str(args.model), "trained_here": False,
                        "weights": str(args.weights) if args.weights else None,
                        "eval_wall_s": round(timer.seconds, 1), "branch_at": model.config.encoder.branch_at})
    print(f"wrote {path}: {metrics}")


if __name__ == "__main__":
    main()
