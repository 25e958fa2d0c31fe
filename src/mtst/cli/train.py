"""``mtst train [CONFIG] [--task NAME=PATH[:TYPE]]... [--set KEY=VALUE]... [--dry-run] [--resume RUN_DIR]
[--num-processes N] [--output DIR] [--mixed-precision no|bf16]``.

A thin layer: build and validate the config (mtst.training.api.build_config: the YAML if given, the tasks, the
dotted overrides, the recipe's defaults for the rest), print the plan (--dry-run) or call
``mtst.training.recipe.train`` (or spawn N CPU processes), print a summary. User errors are MtstError; the CLI
group prints them as one line, exit code 1.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, get_args

import typer
from rich.console import Console
from rich.table import Table

from mtst.cli.app import ThreadsOpt


def parse_tasks(items: list[str]) -> dict[str, str]:
    """``["intent=data/x.csv", ...]`` -> ``{"intent": "data/x.csv"}``."""
    from mtst.errors import MtstError

    tasks: dict[str, str] = {}
    for item in items:
        name, sep, spec = item.partition("=")
        if not sep or not name or not spec:
            raise MtstError(f"--task takes NAME=PATH[:TYPE] (e.g. intent=data/intents.csv), got '{item}'")
        tasks[name.strip()] = spec
    return tasks


def build_run_config(config_path: Path | None, tasks: list[str], sets: list[str], output_dir: Path | None = None,
                     mixed_precision: str | None = None):
    """The validated TrainConfig of a command line."""
    from mtst.errors import MtstError
    from mtst.training.api import build_config, parse_set
    from mtst.training.config import RunSection

    if config_path is None and not tasks:
        raise MtstError("give a config file or --task NAME=PATH (e.g. mtst train --task intent=data/intents.csv)")
    overrides = parse_set(sets)
    if output_dir is not None:
        overrides["run.output_dir"] = str(output_dir)
    config = build_config(parse_tasks(tasks), config_path, overrides)
    if output_dir is not None:
        config.run.output_dir = output_dir
    if mixed_precision is not None:
        allowed = get_args(RunSection.model_fields["mixed_precision"].annotation)
        if mixed_precision not in allowed:
            raise MtstError(f"--mixed-precision takes {' or '.join(allowed)}, got {mixed_precision!r}")
        config.run.mixed_precision = mixed_precision
    return config


def run_train(config_path: Path | None, resume: Path | None = None, num_processes: int = 1,
              output_dir: Path | None = None, mixed_precision: str | None = None, tasks: list[str] = (),
              sets: list[str] = ()):
    """Validate the config, apply the command-line overrides, train; returns a TrainResult."""
    from mtst.errors import MtstError
    from mtst.training.launch import launch_local
    from mtst.training.plan import with_run_dir
    from mtst.training.recipe import train
    from mtst.training.run_files import TrainResult

    config = build_run_config(config_path, list(tasks), list(sets), output_dir, mixed_precision)
    if resume is not None and not Path(resume).is_dir():
        raise MtstError(f"run directory not found: {resume}; --resume takes the output directory of a run")
    if num_processes > 1:  # every process must write into the same, decided, run directory
        return TrainResult(**launch_local(with_run_dir(config).model_dump(mode="json"), resume, num_processes))
    if num_processes < 1:
        raise MtstError(f"--num-processes must be at least 1, got {num_processes}")
    return train(config, resume)


def summary_table(result) -> Table:
    table = Table(title=f"training finished: {result.output_dir}", show_header=True)
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_row("optimizer steps", f"{result.steps} / {result.total_steps}")
    table.add_row("wall time", f"{result.wall_seconds:.0f} s")
    if result.stopped_early:
        table.add_row("early stopping", "yes")
    if result.best_metric is not None:
        table.add_row(f"best {result.metric}", f"{result.best_metric:.2f} (step {result.best_step})")
        for key, value in result.best_metrics.items():
            table.add_row(f"  {key}", f"{value:.2f}")
    table.add_row("best model", f"{result.output_dir}/best")
    table.add_row("final model", f"{result.output_dir}/final")
    return table


def register(app: typer.Typer) -> None:
    """Add the ``train`` command to the mtst CLI."""

    @app.command("train")
    def train_command(
        config: Annotated[Path | None, typer.Argument(help="Training config YAML (see configs/ and docs/training.md); "
                                                      "optional with --task.")] = None,
        task: Annotated[list[str] | None, typer.Option("--task", help="NAME=PATH[,dev=PATH][,test=PATH][:TYPE]: a "
                                                       "task from a file (type inferred: .conll/.txt -> tokens, "
                                                       "csv/tsv/jsonl -> sentences; without dev=, a 10 % dev split "
                                                       "is cut). Repeat per task.")] = None,
        set_: Annotated[list[str] | None, typer.Option("--set", help="KEY=VALUE: any config key, dotted "
                                                       "(optimizer.epochs=3, tasks.ner.crf=false).")] = None,
        dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan (examples, steps, estimated time "
                                              "from a short timed probe) and write nothing.")] = False,
        resume: Annotated[Path | None, typer.Option("--resume", help="Continue the run in this directory "
                                                    "from its last checkpoint.")] = None,
        num_processes: Annotated[int, typer.Option("--num-processes", help="Data-parallel CPU processes (gloo); "
                                                   "on GPUs use `accelerate launch`.")] = 1,
        output: Annotated[Path | None, typer.Option("--output", "-o", help="Run directory "
                                                    "(overrides run.output_dir).")] = None,
        output_dir: Annotated[Path | None, typer.Option("--output-dir", hidden=True)] = None,  # the old --output
        mixed_precision: Annotated[str | None, typer.Option("--mixed-precision", help="no | bf16: bf16 autocast "
                                                            "of the training forward passes (overrides "
                                                            "run.mixed_precision).")] = None,
        threads: ThreadsOpt = None,
        device: Annotated[str | None, typer.Option("--device", help="auto | cpu | cuda: where training and its "
                                                   "evaluations run (overrides run.device).")] = None,
    ) -> None:
        """Train task heads (and a task branch) on one shared encoder with the measured recipe; writes a run directory
        (runs/<date>-<time>-<n> unless --output)."""
        from mtst.cli.loading import torch_threads
        from mtst.errors import MtstError
        from mtst.extras import check

        check("train", "mtst train")  # first: the training modules import the extra's libraries
        if num_processes > 1 and threads is not None:
            raise MtstError("--threads is for one process; with --num-processes N the processes share the cores")
        torch_threads(threads)
        output_dir = output or output_dir
        set_ = [*(set_ or []), *([f"run.device={device}"] if device is not None else [])]
        if dry_run:
            from mtst.training.dry_run import plan_run

            run_config = build_run_config(config, task or [], set_ or [], output_dir, mixed_precision)
            for line in plan_run(run_config).lines(run_config):
                typer.echo(line)
            return
        result = run_train(config, resume, num_processes, output_dir, mixed_precision, task or [], set_ or [])
        Console().print(summary_table(result))
