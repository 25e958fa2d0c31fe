"""The quality harness: train variants (experiments.py), score them with mtst's own evaluation, tabulate and plot.

    .venv/bin/python -m benchmarks.quality run joint --seeds 0 1 2        # one JSON per (variant, seed)
    .venv/bin/python -m benchmarks.quality run llrd --quick               # a few steps, to check the plumbing
    .venv/bin/python -m benchmarks.quality run joint --only single-ner --print-config   # the YAML for `mtst train`
    .venv/bin/python -m benchmarks.quality evaluate MODEL_DIR EXPERIMENT VARIANT [--note TEXT]
    .venv/bin/python -m benchmarks.quality report                         # results/report.md + results/plots/

A run writes ``results/<experiment>/<variant>-seed<k>.json`` and is skipped when that file exists, so a stopped
queue (queue.sh: everything, in the order it ran) resumes. Scores: every head of the model on its task's test split
and STS-B test, by ``mtst.training.evaluation.evaluate_all``: each task's main metric (accuracy, strict IOB2 entity
F1; NER results from before this harness used seqeval's default mode).
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
import traceback
from pathlib import Path

from benchmarks.common import hardware, stsb, write_result
from benchmarks.quality.experiments import EXPERIMENTS, RESULTS, Variant, build_config, find_variant, merge, task_specs


def result_path(experiment: str, variant: str, seed: int, quick: bool = False) -> Path:
    return RESULTS / experiment / f"{'quick-' if quick else ''}{variant}-seed{seed}.json"


def evaluate_model(model, limit: int | None = None) -> dict[str, float]:
    """``task/<main metric>`` of every head on its task's test split (the first ``limit`` examples) and
    ``sts/spearman`` on STS-B test, x 100: the standard task data, read as the model's head type reads it."""
    from mtst.model.tasks import task_type
    from mtst.training.config import TrainConfig
    from mtst.training.evaluation import STS_KEY, evaluate_all

    specs, tasks = task_specs(), []
    for name in model.tasks:
        spec = merge(specs[name], {"type": model.config.heads[name].type})
        spec["data"]["source" if "source" in spec["data"] else "test"]["max_examples"] = limit
        tasks.append(spec)
    config = TrainConfig.model_validate({"tasks": tasks, "optimizer": {"max_steps": 1},
                                         "evaluation": {"sts": stsb(max_examples=limit)}})
    metrics = evaluate_all(model, config, split="test")
    keys = [f"{name}/{task_type(model.config.heads[name].type).main_metric}" for name in model.tasks] + [STS_KEY]
    return {key: round(metrics[key], 3) for key in keys}


def run_variant(experiment: str, variant: Variant, seed: int, quick: bool) -> dict:
    """Train one variant (or evaluate its finished run), then evaluate every head the model has + STS-B test."""
    from mtst import MultiTaskModel
    from mtst.data.splits import read_task_splits
    from mtst.training.config import TrainConfig
    from mtst.training.recipe import train
    from mtst.training.run_files import TrainResult

    raw = build_config(experiment, variant, seed, quick)
    if variant.init_from is not None and not Path(raw["model"]["init_from"]).exists():
        raise RuntimeError(f"{variant.name} starts from {variant.init_from} (same seed): run that first")
    config = TrainConfig.model_validate(raw)
    run_dir, resume = Path(raw["run"]["output_dir"]), None
    finished = (run_dir / "summary.json").exists() and (run_dir / "final").exists()
    if variant.eval_every and variant.keep_model and finished:
        # training finished but its evaluation did not (or the harness changed): evaluate the saved model
        result = TrainResult(**json.loads((run_dir / "summary.json").read_text(encoding="utf-8")))
        train_seconds = result.wall_seconds  # wall time of the trainer's own (last) call
    else:
        resume = run_dir if (run_dir / "checkpoint").exists() else None  # a stopped long run
        if resume is None:
            shutil.rmtree(run_dir, ignore_errors=True)  # a half-finished earlier attempt
        started = time.perf_counter()
        result = train(config, resume=resume)
        train_seconds = time.perf_counter() - started
    model = MultiTaskModel.load(run_dir / "final", precision="fp32")  # scores never depend on the CPU
    started = time.perf_counter()
    metrics = evaluate_model(model, limit=100 if quick else None)
    curve = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    payload = {
        "experiment": experiment, "variant": variant.name, "seed": seed, "quick": quick, "note": variant.note,
        "tasks": list(variant.tasks), "metrics": metrics,
        "train_sizes": {task.name: (task.data.train and task.data.train.max_examples)
                        or len(read_task_splits(task.name, task.type, task.data)["train"]) for task in config.tasks},
        "steps": raw["optimizer"]["max_steps"], "wall_s": round(train_seconds, 1),
        "resumed": resume is not None,  # wall_s then covers only the part after the last checkpoint
        "batch_size": raw["optimizer"]["batch_size"], "dev_metrics": dict(result.best_metrics or {}),
        "dev_curve": [record for record in curve if "eval" in record] if variant.eval_every else [],
        "eval_wall_s": round(time.perf_counter() - started, 1),
        "parameters": sum(p.numel() for p in model.parameters()),
        "head_parameters": {t: sum(p.numel() for p in model.heads[t].parameters()) for t in model.tasks},
        "config": raw,
    }
    if not variant.keep_model:
        shutil.rmtree(run_dir, ignore_errors=True)
    return payload


def run(experiment: str, seeds: list[int], quick: bool, only: str | None) -> None:
    for variant in [find_variant(experiment, only)] if only else EXPERIMENTS[experiment]:
        for seed in seeds[: variant.max_seeds]:
            path = result_path(experiment, variant.name, seed, quick)
            if path.exists():
                print(f"skip {path.relative_to(RESULTS)} (exists)")
                continue
            try:
                result = run_variant(experiment, variant, seed, quick)
            except Exception:  # one broken variant must not stop a night of runs
                traceback.print_exc()
                print(f"FAILED {experiment}/{variant.name} seed {seed}", flush=True)
                continue
            write_result(path, {**result, "machine": hardware()})
            print(f"wrote {path.relative_to(RESULTS)}: {result['metrics']} ({result['wall_s']} s)", flush=True)


def print_config(experiment: str, only: str | None, seed: int) -> None:
    """The YAML that ``mtst train`` takes, with the data directory written as ${MTST_DATA_DIR}."""
    import yaml

    from benchmarks.common import DATA

    if only is None:
        raise SystemExit("error: --print-config needs --only VARIANT")
    raw = build_config(experiment, find_variant(experiment, only), seed, quick=False)
    raw["run"]["output_dir"] = f"runs/{experiment}/{only}-seed{seed}"
    print(f"# .venv/bin/mtst train THIS.yaml   (written by: python -m benchmarks.quality run {experiment} --only "
          f"{only} --print-config)")
    print(yaml.safe_dump(raw, sort_keys=False).replace(str(DATA), "${MTST_DATA_DIR}"), end="")


def evaluate_dir(model_dir: Path, experiment: str, variant: str, note: str) -> None:
    """A model trained elsewhere (the shipped default, ``mtst train`` with a config) scored like every variant."""
    from mtst import MultiTaskModel

    model, started = MultiTaskModel.load(model_dir, precision="fp32"), time.perf_counter()
    metrics = evaluate_model(model)
    path = result_path(experiment, variant, 0)
    write_result(path, {"experiment": experiment, "variant": variant, "seed": 0, "note": note, "tasks": model.tasks,
                        "metrics": metrics, "model": str(model_dir), "trained_here": False, "machine": hardware(),
                        "eval_wall_s": round(time.perf_counter() - started, 1),
                        "branch_at": model.config.encoder.branch_at})
    print(f"wrote {path}: {metrics}")


def main() -> None:
    import os

    import torch

    from benchmarks.quality import report

    parser = argparse.ArgumentParser(prog="python -m benchmarks.quality", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    runs = commands.add_parser("run", help="train and score the variants of one experiment")
    runs.add_argument("experiment", choices=[*EXPERIMENTS, "all"])
    runs.add_argument("--seeds", type=int, nargs="+", default=[0])
    runs.add_argument("--quick", action="store_true", help="tiny step budget; results marked quick-")
    runs.add_argument("--only", default=None, help="run one variant of the experiment")
    runs.add_argument("--print-config", action="store_true", help="print the variant's config as YAML and exit")
    scored = commands.add_parser("evaluate", help="score an existing model directory like a trained variant")
    scored.add_argument("model", type=Path)
    scored.add_argument("experiment")
    scored.add_argument("variant")
    scored.add_argument("--note", default="")
    tables = commands.add_parser("report", help="tables and plots from the result files; runs nothing")
    tables.add_argument("--out", type=Path, default=RESULTS, help="where report.md and plots/ go")
    args = parser.parse_args()
    if args.command == "report":
        return report.main(args.out)
    torch.set_num_threads(int(os.environ.get("MTST_BENCH_THREADS", "2")))
    if args.command == "evaluate":
        return evaluate_dir(args.model, args.experiment, args.variant, args.note)
    if args.print_config:
        return print_config(args.experiment, args.only, args.seeds[0])
    for experiment in EXPERIMENTS if args.experiment == "all" else [args.experiment]:
        run(experiment, args.seeds, args.quick, args.only)


if __name__ == "__main__":
    main()
