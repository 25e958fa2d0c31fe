"""``mtst evaluate --model DIR --config CONFIG``: a saved model's metrics on a training config's data."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from mtst.errors import MtstError


def write_json_atomic(path: Path, data: dict) -> None:
    """Write to a temp file beside ``path``, then rename, so a crash never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            json.dump(data, stream, indent=2)
            stream.write("\n")
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def run_evaluate(model_dir: Path, config_path: Path, split: str = "test", output: Path | None = None) -> str:
    """Load, read data, evaluate; returns the markdown table (and writes JSON when ``output`` is set)."""
    from mtst.evaluate import evaluate_all, markdown_table
    from mtst.model import MultiTaskModel
    from mtst.train_config import load_train_config

    if split not in ("train", "dev", "test"):
        raise MtstError(f"unknown split '{split}'; choose train, dev or test")
    config = load_train_config(config_path)
    if not Path(model_dir).is_dir():
        raise MtstError(f"model directory not found: {model_dir}")
    model = MultiTaskModel.load(model_dir)
    metrics = evaluate_all(model, config, split=split)
    if output is not None:
        write_json_atomic(Path(output), {"split": split, "model": str(model_dir), "metrics": metrics})
    return markdown_table(metrics)


def register(app: typer.Typer) -> None:
    """Add the ``evaluate`` command to the mtst CLI."""

    @app.command("evaluate")
    def evaluate(
        model: Annotated[Path, typer.Option("--model", help="A saved mtst model directory.")],
        config: Annotated[Path, typer.Option("--config", help="Training config YAML whose tasks' data to use.")],
        split: Annotated[str, typer.Option("--split", help="Which split: test, dev or train.")] = "test",
        output: Annotated[Path | None, typer.Option("--output", help="Also write the metrics as JSON here.")] = None,
    ) -> None:
        """Evaluate a saved model on the data of a training config; prints a markdown table."""
        try:
            table = run_evaluate(model, config, split, output)
        except MtstError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from exc
        typer.echo(table)
