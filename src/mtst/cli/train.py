"""``mtst train CONFIG [--resume RUN_DIR] [--num-processes N] [--output-dir DIR] [--mixed-precision no|bf16]``.

A thin layer: load and validate the YAML, call ``mtst.training.recipe.train`` (or spawn N CPU processes),
print a summary. User errors are MtstError; the CLI group prints them as one line, exit code 1.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, get_args

import typer
from rich.console import Console
from rich.table import Table


def run_train(config_path: Path, resume: Path | None = None, num_processes: int = 1,
              output_dir: Path | None = None, mixed_precision: str | None = None):
    """Validate the config, apply the command-line overrides, train; returns a TrainResult."""
    from mtst.errors import MtstError
    from mtst.training.config import RunSection, load_train_config
    from mtst.training.launch import launch_local
    from mtst.training.recipe import train
    from mtst.training.run_files import TrainResult

    config = load_train_config(config_path)
    if output_dir is not None:
        config.run.output_dir = output_dir
    if mixed_precision is not None:
        allowed = get_args(RunSection.model_fields["mixed_precision"].annotation)
        if mixed_precision not in allowed:
            raise MtstError(f"--mixed-precision takes {' or '.join(allowed)}, got {mixed_precision!r}")
        config.run.mixed_precision = mixed_precision
    if resume is not None and not Path(resume).is_dir():
        raise MtstError(f"run directory not found: {resume}; --resume takes the output directory of a run")
    if num_processes > 1:
        return TrainResult(**launch_local(config.model_dump(mode="json"), resume, num_processes))
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
        config: Annotated[Path, typer.Argument(help="Training config YAML (see configs/ and docs/training.md).")],
        resume: Annotated[Path | None, typer.Option("--resume", help="Continue the run in this directory "
                                                    "from its last checkpoint.")] = None,
        num_processes: Annotated[int, typer.Option("--num-processes", help="Data-parallel CPU processes (gloo); "
                                                   "on GPUs use `accelerate launch`.")] = 1,
        output_dir: Annotated[Path | None, typer.Option("--output-dir", "-o", help="Run directory "
                                                        "(overrides run.output_dir).")] = None,
        mixed_precision: Annotated[str | None, typer.Option("--mixed-precision", help="no | bf16: bf16 autocast "
                                                            "of the training forward passes (overrides "
                                                            "run.mixed_precision).")] = None,
    ) -> None:
        """Train task heads (and optionally the encoder) on one shared encoder; writes a run directory."""
        result = run_train(config, resume, num_processes, output_dir, mixed_precision)
        Console().print(summary_table(result))
