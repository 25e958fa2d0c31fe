"""training.png from metrics.jsonl: per-task training loss (left) and dev metrics (right) vs step."""

from __future__ import annotations

import json
import os
from pathlib import Path

MAIN_SUFFIXES = ("/accuracy", "/f1", "/spearman", "mean/main")


def read_metrics(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def write_training_plot(metrics_file: Path, out_file: Path) -> Path:
    """Draw the curves with the Agg backend (no display needed) and write the PNG atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = read_metrics(metrics_file)
    losses: dict[str, list[tuple[int, float]]] = {}
    evals: dict[str, list[tuple[int, float]]] = {}
    for record in records:
        for key, value in record.get("loss", {}).items():
            losses.setdefault(key, []).append((record["step"], value))
        for key, value in record.get("eval", {}).items():
            if key.endswith(MAIN_SUFFIXES):  # precision/recall/macro-F1 would crowd the plot
                evals.setdefault(key, []).append((record["step"], value))
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for name, points in sorted(losses.items()):
        left.plot(*zip(*points, strict=True), label=name)
    left.set(title="training loss per task", xlabel="optimizer step", ylabel="loss")
    for name, points in sorted(evals.items()):
        right.plot(*zip(*points, strict=True), marker="o", label=name)
    right.set(title="dev metrics", xlabel="optimizer step", ylabel="score (%)")
    for axis in (left, right):
        if axis.get_legend_handles_labels()[0]:
            axis.legend(fontsize=7)
        axis.grid(alpha=0.3)
    fig.tight_layout()
    staging = out_file.with_name(f".{out_file.stem}.tmp.png")
    fig.savefig(staging, dpi=100)
    plt.close(fig)
    os.replace(staging, out_file)
    return out_file
