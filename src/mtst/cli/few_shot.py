"""``mtst few-shot``: fit a zero-shot head's label vectors from a few labelled examples (``--task intent=ex.csv``)
and save the model to a new directory (the input directory is never changed). A task the model lacks is added as a
zero-shot head; an existing zero-shot task is updated, warm-started from what it knew, unless ``--from-scratch``.
Only that head's label vectors and temperature change, and with method contrastive (``--backbone``: a fresh model
whose task branch it trains) that branch. Method: mtst.training.few_shot.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from mtst.cli.app import ThreadsOpt
from mtst.errors import MtstError

if TYPE_CHECKING:
    from mtst.data.sources import DataSource

DEFAULT_MODEL = "default"  # --model default: the model shipped with mtst


def parse_task(argument: str) -> tuple[str, DataSource]:
    """``task=PATH`` or ``task=PATH:FORMAT`` (csv, tsv, jsonl, hf_disk) -> (task, its DataSource); the task need
    not be in the model yet."""
    from mtst.cli.io import task_argument
    from mtst.data.sources import DataSource, infer_format

    task, path, fmt = task_argument(argument, "--task", "intent=examples.csv")
    return task, DataSource(path=path, format=fmt or infer_format(path, False))


def read_descriptions(path: Path) -> dict[str, str]:
    """A csv / tsv / jsonl file with ``label`` and ``description`` columns -> {label: description}."""
    from mtst.data.readers import read_examples
    from mtst.data.sources import DataSource, infer_format

    source = DataSource(path=path, format=infer_format(path, False), text_column="description", label_column="label")
    rows = read_examples(source, token=False)
    found: dict[str, str] = {}
    for label, text, origin in zip(rows.labels, rows.texts, rows.origins, strict=True):
        if label in found:
            raise MtstError(f"{origin}: label '{label}' has a description already; give one per label")
        found[label] = text
    return found


def run_few_shot(model_dir: str, task_argument: str, output: Path, descriptions: Path | None = None,
                 method: str = "auto", from_scratch: bool = False, seed: int = 0, backbone: str | None = None,
                 cross_fit: bool = False) -> str:
    """Load (or build on ``backbone``), fit (or update) one task from its examples, save to ``output``; returns
    what the fit did."""
    from mtst.data.readers import read_examples
    from mtst.training.few_shot import METHODS, fit_few_shot, update_few_shot

    if backbone is not None and model_dir != DEFAULT_MODEL:
        raise MtstError("give --model (a saved mtst model) or --backbone (an encoder to start from), not both")
    source_dir = model_dir if backbone is None else backbone
    shipped = source_dir == DEFAULT_MODEL
    if not shipped and not Path(source_dir).is_dir():
        raise MtstError(f"model directory not found: {source_dir}; give a saved mtst model or 'default'"
                        if backbone is None else f"backbone directory not found: {source_dir}; give a "
                        "sentence-transformers or Hugging Face encoder directory, or 'default'")
    if not shipped and Path(output).resolve() == Path(source_dir).resolve():
        raise MtstError("--output must be a new directory, not the model being fitted")
    if method not in METHODS:
        raise MtstError(f"unknown --method '{method}'; choose one of {', '.join(METHODS)}")
    task, source = parse_task(task_argument)
    examples = read_examples(source, token=False)  # read everything before the model loads: errors come fast
    texts = read_descriptions(descriptions) if descriptions is not None else None
    model = _starting_model(None if shipped else source_dir, backbone is not None)
    warm = task in model.config.heads and not from_scratch
    if warm and (texts is not None or method != "auto" or cross_fit):
        raise MtstError(f"task '{task}' exists, so its head is updated from what it knows; --descriptions, --method "
                        "and --cross-fit-temperature apply to a fit from scratch: add --from-scratch")
    if warm:
        fit = update_few_shot(model, task, examples.texts, examples.labels, seed=seed)
    else:
        fit = fit_few_shot(model, task, examples.texts, examples.labels, descriptions=texts, method=method,
                           seed=seed, cross_fit_temperature=cross_fit)
    model.save(output)  # written beside, then swapped in: never half-written
    how = "updated" if warm else "fitted"
    return (f"{task}: {how} with method {fit.method} on {fit.examples} examples in {fit.seconds:.2f} s "
            f"(train accuracy {fit.train_accuracy:.1f} %, temperature {model.heads[task].temperature:.4g})\n"
            f"saved to {output}")


def _starting_model(path: str | None, fresh: bool):
    """A saved mtst model (None: the shipped one), or (``fresh``) an encoder with a new task branch and no heads."""
    from mtst.model.multitask import MultiTaskModel
    from mtst.training.few_shot_branch import FRESH_BRANCH_AT

    if fresh:
        return MultiTaskModel.from_backbone(path, branch_at=FRESH_BRANCH_AT, precision="fp32")
    return MultiTaskModel.load(path, precision="fp32")


def register(app: typer.Typer) -> None:
    """Add the ``few-shot`` command to the mtst CLI."""

    @app.command("few-shot")
    def few_shot(
        task: Annotated[str, typer.Option(
            "--task", help="TASK=PATH[:FORMAT]: labelled examples (text, label columns) of one sentence task.")],
        output: Annotated[Path, typer.Option("--output", "-o", help="Where to save the fitted model.")],
        model: Annotated[str, typer.Option(
            "--model", "-m", help="A saved mtst model directory, or 'default' (the shipped model).")] = DEFAULT_MODEL,
        descriptions: Annotated[Path | None, typer.Option(
            "--descriptions", help="A csv/tsv/jsonl file of label, description rows: the label texts of a new "
                                   "head.")] = None,
        backbone: Annotated[str | None, typer.Option(
            "--backbone", help="Start from this encoder instead of a saved model: a sentence-transformers or Hugging "
                               "Face directory, or 'default' (all-MiniLM-L6-v2), with a new task branch after layer 2 "
                               "that method auto then trains (contrastive).")] = None,
        method: Annotated[str, typer.Option(help="auto | prototype | logistic | contrastive.")] = "auto",
        from_scratch: Annotated[bool, typer.Option(
            "--from-scratch", help="Refit an existing zero-shot task from its label texts instead of updating it."
        )] = False,
        seed: Annotated[int, typer.Option(help="Random seed of the fit.")] = 0,
        cross_fit_temperature: Annotated[bool, typer.Option(
            "--cross-fit-temperature", help="Method contrastive: fit the temperature on examples held out of two "
                                            "half-trainings (calibrated scores, 2-3x the time).")] = False,
        threads: ThreadsOpt = None,
    ) -> None:
        """Fit a zero-shot head from a few labelled examples (adds the task, or updates it); save a copy."""
        from mtst.cli.loading import torch_threads
        from mtst.extras import check

        check("train", "mtst few-shot")  # reading data files and fitting need the train extra's libraries
        torch_threads(threads)
        typer.echo(run_few_shot(model, task, output, descriptions, method, from_scratch, seed, backbone,
                                cross_fit_temperature))
