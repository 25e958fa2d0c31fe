"""Progress: a Rich bar on a terminal; without one (nohup, CI, a notebook) one plain stderr line per log record."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn


@contextmanager
def progress_bar(total: int, description: str, enabled: bool = True) -> Iterator[Callable[[int], None]]:
    """Yields ``advance(n)``; draws on stderr so stdout stays clean for data."""
    if not enabled or total == 0:
        yield lambda n: None
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task(description, total=total)
        yield lambda n: progress.advance(task, n)


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


def progress_line(record: dict, total: int, elapsed: float, steps_done: int) -> str:
    """One plain line for a training log record (step/total, loss per task, examples/s, elapsed, ETA) or an
    evaluation record (its metrics); ``steps_done``: steps this process ran (the ETA's pace)."""
    step = record["step"]
    if "eval" in record:
        return f"eval step {step}/{total}: " + " ".join(f"{k}={v:.2f}" for k, v in record["eval"].items())
    losses = " ".join(f"{task}={value:.4f}" for task, value in record.get("loss", {}).items())
    eta = elapsed / steps_done * (total - step) if steps_done else 0.0
    return (f"step {step}/{total} loss {losses} | {record.get('examples_per_s', 0.0):.1f} ex/s | "
            f"elapsed {_duration(elapsed)} | eta {_duration(eta)}")


class TrainingProgress:
    """A Rich bar with per-task running loss and examples/s on a terminal; plain lines on stderr without one
    (``record``); nothing when disabled (processes other than the main one)."""

    def __init__(self, total: int, done: int, enabled: bool, tty: bool | None = None):
        self.total, self.done, self.enabled = total, done, enabled
        self.tty = sys.stderr.isatty() if tty is None else tty
        self.start = time.perf_counter()

    def record(self, record: dict) -> None:
        """A metrics.jsonl record was written: without a terminal, print it as one line."""
        if self.enabled and not self.tty:
            line = progress_line(record, self.total, time.perf_counter() - self.start, record["step"] - self.done)
            print(line, file=sys.stderr, flush=True)

    def __enter__(self) -> TrainingProgress:
        self.start = time.perf_counter()
        self.enabled_bar = self.enabled and self.tty
        if self.enabled_bar:
            self.progress = Progress(TextColumn("training"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                                     TextColumn("{task.fields[info]}"), console=Console(stderr=True))
            self.progress.__enter__()
            self.task = self.progress.add_task("train", total=self.total, completed=self.done, info="")
        return self

    def update(self, step: int, losses: dict[str, float], examples_per_s: float) -> None:
        if self.enabled_bar:
            info = " ".join(f"{t}={v:.3f}" for t, v in losses.items()) + f" | {examples_per_s:.0f} ex/s"
            self.progress.update(self.task, completed=step, info=info)

    def __exit__(self, *exc) -> None:
        if self.enabled_bar:
            self.progress.__exit__(*exc)
