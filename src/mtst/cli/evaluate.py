"""``mtst evaluate``: a saved model's metrics on files (``--data task=PATH[:FORMAT]``, no config needed: the model
knows its tasks and labels) or on a training config's data (``--config``), with per-class reports, confusion
matrices and every row's prediction on request.

User errors are raised as MtstError; the CLI group (mtst.cli.app.MtstGroup) prints them as one line. Everything is
computed before anything is written, so an error leaves no file behind.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from mtst.cli.app import DeviceOpt, PrecisionOpt, ThreadsOpt
from mtst.cli.io import task_argument
from mtst.errors import MtstError

if TYPE_CHECKING:
    from mtst.data.sources import DataSource
    from mtst.model.multitask import MultiTaskModel

SPLIT_NAMES = ("train", "dev", "test")


def parse_data(argument: str, model: MultiTaskModel) -> tuple[str, DataSource]:
    """``--data task=PATH[:FORMAT]`` of a task the model has -> (task, its DataSource); the format follows the file
    name (and the task's kind) unless given."""
    from mtst.data.sources import DataSource, infer_format
    from mtst.model.tasks import task_type

    task, path, fmt = task_argument(argument, "--data", "intent=test.csv")
    if task not in model.config.heads:
        raise MtstError(f"--data '{argument}': task '{task}' is not in the model; its tasks are: "
                        f"{', '.join(model.tasks) or 'none'}")
    token = task_type(model.config.heads[task].type).token_level
    return task, DataSource(path=path, format=fmt or infer_format(path, token))


def run_evaluate(model_dir: Path, config_path: Path | None = None, split: str = "test", output: Path | None = None,
                 data: list[str] | None = None, predictions: Path | None = None, device: str | None = None,
                 precision: str = "auto") -> str:
    """Load, read the data, evaluate; returns the markdown report. ``output`` ending in .json: the metrics as JSON
    (as before); any other ``output``: a folder with metrics.json, report.md and confusion-<task>.png."""
    from mtst.data.splits import read_task_splits
    from mtst.files import write_text
    from mtst.model.multitask import MultiTaskModel
    from mtst.training.config import load_train_config
    from mtst.training.evaluation import evaluate_all, markdown_table
    from mtst.training.report_files import report_json, report_markdown, write_predictions, write_report_dir
    from mtst.training.reports import evaluate_files, report_task

    if (config_path is None) == (not data):
        raise MtstError("give either --data TASK=PATH (one per task) or --config CONFIG")
    if split not in SPLIT_NAMES:
        raise MtstError(f"unknown split '{split}'; choose one of {', '.join(SPLIT_NAMES)}")
    for path in (predictions, output if output is not None and output.suffix == ".json" else None):
        if path is not None and not Path(path).parent.is_dir():  # checked first: a late failure would waste the run
            raise MtstError(f"output folder not found: {Path(path).parent}; create it first")
    config = load_train_config(config_path) if config_path is not None else None
    if not Path(model_dir).is_dir():
        raise MtstError(f"model directory not found: {model_dir}")
    model = MultiTaskModel.load(model_dir, precision=precision, device=device)
    if config is None:
        sources = dict(parse_data(argument, model) for argument in data)
        if len(sources) < len(data):
            raise MtstError("--data names a task twice; give one file per task")
        metrics, reports = evaluate_files(model, sources, batch_size=64)
        header = {"model": str(model_dir), "data": {task: str(source.path) for task, source in sources.items()}}
    else:
        metrics = evaluate_all(model, config, split=split)  # the totals exactly as before
        reports = []
        if predictions is not None or (output is not None and output.suffix != ".json"):
            for task in config.tasks:  # tasks with predictions and this split get a report too
                examples = read_task_splits(task.name, task.type, task.data).get(split)
                if examples is not None and task.name in model.heads:
                    reports.append(report_task(model, task.name, examples, config.evaluation.batch_size))
        header = {"model": str(model_dir), "config": str(config_path), "split": split}
    if output is not None and output.suffix == ".json":
        write_text(Path(output), json.dumps(report_json(header, metrics, reports), indent=2) + "\n")
    elif output is not None:
        write_report_dir(Path(output), header, metrics, reports)
    if predictions is not None:
        write_predictions(Path(predictions), reports)
    return report_markdown(metrics, reports) if reports else markdown_table(metrics)


def register(app: typer.Typer) -> None:
    """Add the ``evaluate`` command to the mtst CLI."""

    @app.command("evaluate")
    def evaluate(
        model: Annotated[Path, typer.Option("--model", "-m", help="A saved mtst model directory.")],
        data: Annotated[list[str] | None, typer.Option(
            "--data", help="TASK=PATH[:FORMAT], once per task; format from the file name (.csv .tsv .jsonl "
                           ".conll .txt .iob) unless given.")] = None,
        config: Annotated[Path | None, typer.Option(
            "--config", help="Instead of --data: a training config YAML whose tasks' data to use.")] = None,
        split: Annotated[str, typer.Option("--split", help="With --config: test, dev or train.")] = "test",
        output: Annotated[Path | None, typer.Option(
            "--output", "-o", help="A folder for metrics.json, report.md and confusion PNGs (a .json name: the "
                                   "metrics only).")] = None,
        predictions: Annotated[Path | None, typer.Option(
            "--predictions", help="Write every row's prediction beside its gold label (JSON lines).")] = None,
        threads: ThreadsOpt = None,
        device: DeviceOpt = None,
        precision: PrecisionOpt = "auto",
    ) -> None:
        """Evaluate a saved model: totals, per-class tables and confusion matrices (percent), as markdown."""
        from mtst.cli.loading import torch_threads
        from mtst.extras import check

        check("train", "mtst evaluate")  # the metrics come from the train extra's libraries
        torch_threads(threads)
        typer.echo(run_evaluate(model, config, split, output, data, predictions, device, precision))
