"""An evaluation report as files: ``report.md`` (totals, per-class tables, confusion matrices), ``metrics.json``,
one ``confusion-<task>.png`` per sentence task, and a predictions JSONL. Every file is written atomically."""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from pathlib import Path

from mtst.errors import MtstError
from mtst.files import write_atomic, write_text
from mtst.training.evaluation import markdown_table
from mtst.training.reports import TaskReport

COLUMNS = ("precision", "recall", "f1", "support")


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def per_class_table(report: TaskReport) -> str:
    """One row per label (or entity type), then the averages; two decimals, support as a count."""
    lines = [_row(["label", *COLUMNS]), _row(["---"] * (len(COLUMNS) + 1))]
    for name, values in report.per_class.items():
        lines.append(_row([name, *(f"{values[c]:.2f}" for c in COLUMNS[:-1]), str(values["support"])]))
    return "\n".join(lines)


def confusion_table(report: TaskReport) -> str:
    """Rows: gold label; columns: predicted label; cells: counts."""
    lines = [_row(["gold \\ predicted", *report.labels]), _row(["---"] * (len(report.labels) + 1))]
    lines += [_row([label, *map(str, counts)]) for label, counts in zip(report.labels, report.confusion, strict=True)]
    return "\n".join(lines)


def report_markdown(metrics: dict[str, float], reports: Sequence[TaskReport], images: bool = False) -> str:
    """The totals table, then per task its per-class table and (sentence tasks) its confusion matrix; ``images``
    links each confusion PNG written beside the report."""
    parts = ["## Totals (percent)", markdown_table(metrics)]
    for report in reports:
        kind = "entity type" if not report.labels else "class"
        parts += [f"## {report.task}: per {kind} (percent; support = count)", per_class_table(report)]
        if report.labels:
            parts += [f"### {report.task}: confusion matrix", confusion_table(report)]
            if images:
                parts.append(f"![confusion matrix of {report.task}](confusion-{report.task}.png)")
    return "\n\n".join(parts) + "\n"


def confusion_png(report: TaskReport) -> bytes:
    """The confusion matrix as a PNG heat map with counts in the cells (Agg backend: no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    size = max(4.0, 0.6 * len(report.labels) + 2)
    fig, axis = plt.subplots(figsize=(size, size))
    axis.imshow(report.confusion, cmap="Blues")
    ticks = range(len(report.labels))
    axis.set_xticks(ticks, report.labels, rotation=45, ha="right")
    axis.set_yticks(ticks, report.labels)
    axis.set(title=f"{report.task}: confusion matrix", xlabel="predicted", ylabel="gold")
    peak = max((max(row) for row in report.confusion), default=0)
    for gold, counts in enumerate(report.confusion):
        for predicted, count in enumerate(counts):
            axis.text(predicted, gold, str(count), ha="center", va="center",
                      color="white" if peak and count > peak / 2 else "black")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return buffer.getvalue()


def report_json(header: dict, metrics: dict[str, float], reports: Sequence[TaskReport]) -> dict:
    """``header`` (model, data or config + split), the flat metrics, per-class tables and confusion matrices."""
    return {**header, "metrics": metrics,
            "per_class": {report.task: report.per_class for report in reports},
            "confusion": {report.task: {"labels": report.labels, "matrix": report.confusion}
                          for report in reports if report.labels}}


def write_report_dir(directory: Path, header: dict, metrics: dict[str, float], reports: Sequence[TaskReport]
                     ) -> list[Path]:
    """metrics.json, report.md and confusion-<task>.png in ``directory`` (created); returns the paths written."""
    if directory.exists() and not directory.is_dir():
        raise MtstError(f"--output {directory} is a file; give a folder (or a .json file name for the metrics only)")
    images = {directory / f"confusion-{report.task}.png": confusion_png(report) for report in reports if report.labels}
    directory.mkdir(parents=True, exist_ok=True)
    write_text(directory / "metrics.json", json.dumps(report_json(header, metrics, reports), indent=2) + "\n")
    write_text(directory / "report.md", report_markdown(metrics, reports, images=True))
    for path, data in images.items():
        write_atomic(path, lambda handle, data=data: handle.write(data))
    return [directory / "metrics.json", directory / "report.md", *images]


def write_predictions(path: Path, reports: Sequence[TaskReport]) -> None:
    """One JSON line per example: its task, origin, text (or words), gold and predicted label (or tags), and for
    sentence tasks the predicted label's probability."""
    lines = [json.dumps({"task": report.task, **row}, ensure_ascii=False) for report in reports for row in report.rows]
    write_text(path, "\n".join(lines) + "\n")
