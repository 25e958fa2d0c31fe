"""``mtst calibrate``: fit each named sentence head's temperature on dev data (``--data task=dev.csv``), then
(``--method isotonic``, the default) a curve for its top probability that keeps the arg-max, optionally set an
abstention threshold, print the expected calibration error before and after, and save the calibrated model
to a new directory (the input directory is never changed). Method: mtst.training.calibration. A multi-label task
gets its per-label thresholds tuned instead (mtst.training.thresholds).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mtst.cli.app import DeviceOpt, PrecisionOpt, ThreadsOpt
from mtst.errors import MtstError


def run_calibrate(model_dir: Path, data: list[str], output: Path, threshold: float | None = None,
                  method: str = "isotonic", device: str | None = None, precision: str = "auto") -> str:
    """Load, calibrate every ``--data`` task, save to ``output``; returns a markdown table of the results."""
    from mtst.cli.evaluate import parse_data
    from mtst.data.readers import read_examples
    from mtst.model.multitask import MultiTaskModel
    from mtst.model.tasks import task_type
    from mtst.training.calibration import METHODS, calibrate
    from mtst.training.reports import read_task_file
    from mtst.training.thresholds import tune_thresholds

    if not data:
        raise MtstError("give --data TASK=PATH (dev data, one per task to calibrate)")
    if not Path(model_dir).is_dir():
        raise MtstError(f"model directory not found: {model_dir}")
    if Path(output).resolve() == Path(model_dir).resolve():
        raise MtstError("--output must be a new directory, not the model being calibrated")
    if threshold is not None and not 0.0 <= threshold <= 1.0:
        raise MtstError(f"--threshold must be a probability in [0, 1], got {threshold}")
    if method not in METHODS:
        raise MtstError(f"--method must be one of {', '.join(METHODS)}, got '{method}'")
    model = MultiTaskModel.load(model_dir, precision=precision, device=device)
    sources = dict(parse_data(argument, model) for argument in data)
    if len(sources) < len(data):
        raise MtstError("--data names a task twice; give one file per task")
    multi = {task for task in sources if task_type(model.config.heads[task].type).multi_label}
    tuned = {task: tune_thresholds(model, task, read_examples(sources[task], False, multi_label=True))
             for task in multi}
    results = {task: calibrate(model, task, read_task_file(model, task, source), threshold, method)
               for task, source in sources.items() if task not in multi}
    model.save(output)
    if not results:
        return "\n".join(f"{task}: thresholds {thresholds}" for task, thresholds in tuned.items()) + \
            f"\n\nsaved to {output}"
    lines = ["| task | examples | temperature | curve knots | ECE before | ECE after | NLL before | NLL after |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for task, r in results.items():
        lines.append(f"| {task} | {int(r['examples'])} | {r['temperature_before']:.4g} -> {r['temperature']:.4g} | "
                     f"{int(r['knots'])} | {r['ece_before']:.4f} | {r['ece_after']:.4f} | {r['nll_before']:.4f} | "
                     f"{r['nll_after']:.4f} |")
    lines.append("\nECE / NLL after: on the data just fitted (optimistic); score held-out data with `mtst evaluate`.")
    lines += [f"\n{task}: thresholds {thresholds}" for task, thresholds in tuned.items()]
    return "\n".join(lines) + f"\n\nsaved to {output}"


def register(app: typer.Typer) -> None:
    """Add the ``calibrate`` command to the mtst CLI."""

    @app.command("calibrate")
    def calibrate(
        model: Annotated[Path, typer.Option("--model", "-m", help="A saved mtst model directory.")],
        output: Annotated[Path, typer.Option("--output", "-o", help="Where to save the calibrated model.")],
        data: Annotated[list[str] | None, typer.Option(
            "--data", help="TASK=PATH[:FORMAT] of dev data (not test), once per sentence task to calibrate.")] = None,
        threshold: Annotated[float | None, typer.Option(
            "--threshold", help="Also answer \"label\": null below this probability (those tasks).")] = None,
        method: Annotated[str, typer.Option(
            "--method", help="temperature: one T per head; isotonic: T, then a curve for the top probability; "
                             "bagged-isotonic: the mean of 50 bootstrap curves (all keep the arg-max).")] = "isotonic",
        threads: ThreadsOpt = None,
        device: DeviceOpt = None,
        precision: PrecisionOpt = "auto",
    ) -> None:
        """Calibrate sentence heads on dev data; print ECE (15 bins) before and after; save a copy."""
        from mtst.cli.loading import torch_threads
        from mtst.extras import check

        check("train", "mtst calibrate")  # reading data files needs the train extra's libraries
        torch_threads(threads)
        typer.echo(run_calibrate(model, data or [], output, threshold, method, device, precision))
