"""``mtst evaluate --model DIR --config CONFIG``: a saved model's metrics on a training config's data.

User errors are raised as MtstError; the CLI group (mtst.cli.app.MtstGroup) prints them as one line.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from mtst.errors import MtstError

SPLIT_NAMES = ("train", "dev", "test")


def run_evaluate(model_dir: Path, config_path: Path, split: str = "test", output: Path | None = None) -> str:
    """Load, read the config's data, evaluate; returns the markdown table and writes JSON when ``output`` is set."""
    from mtst.files import write_atomic
    from mtst.model.multitask import MultiTaskModel
    from mtst.training.config import load_train_config
    from mtst.training.evaluation import evaluate_all, markdown_table

    if split not in SPLIT_NAMES:
        raise MtstError(f"unknown split '{split}'; choose one of {', '.join(SPLIT_NAMES)}")
    config = load_train_config(config_path)
    if not Path(model_dir).is_dir():
        raise MtstError(f"model directory not found: {model_dir}")
    model = MultiTaskModel.load(model_dir)
    metrics = evaluate_all(model, config, split=split)
    if output is not None:
        report = {"model": str(model_dir), "config": str(config_path), "split": split, "metrics": metrics}
        data = (json.dumps(report, indent=2) + "\n").encode("utf-8")
        write_atomic(Path(output), lambda handle: handle.write(data))
    return markdown_table(metrics)


def register(app: typer.Typer) -> None:
    """Add the ``evaluate`` command to the mtst CLI."""

    @app.command("evaluate")
    def evaluate(
        model: Annotated[Path, typer.Option("--model", "-m", help="A saved mtst model directory.")],
        config: Annotated[Path, typer.Option("--config", help="Training config YAML whose tasks' data to use.")],
        split: Annotated[str, typer.Option("--split", help="Which split: test, dev or train.")] = "test",
        output: Annotated[Path | None, typer.Option("--output", "-o", help="Also write the metrics as JSON.")] = None,
    ) -> None:
        """Evaluate a saved model on the data of a training config; prints a markdown table (percent)."""
        typer.echo(run_evaluate(model, config, split, output))
