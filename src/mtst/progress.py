"""A Rich progress bar that costs nothing when disabled."""

from __future__ import annotations

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


class TrainingProgress:
    """A Rich bar with per-task running loss and examples/s; a no-op when disabled (not a TTY)."""

    def __init__(self, total: int, done: int, enabled: bool):
        self.total, self.done, self.enabled = total, done, enabled

    def __enter__(self) -> TrainingProgress:
        if self.enabled:
            self.progress = Progress(TextColumn("training"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                                     TextColumn("{task.fields[info]}"), console=Console(stderr=True))
            self.progress.__enter__()
            self.task = self.progress.add_task("train", total=self.total, completed=self.done, info="")
        return self

    def update(self, step: int, losses: dict[str, float], examples_per_s: float) -> None:
        if self.enabled:
            info = " ".join(f"{t}={v:.3f}" for t, v in losses.items()) + f" | {examples_per_s:.0f} ex/s"
            self.progress.update(self.task, completed=step, info=info)

    def __exit__(self, *exc) -> None:
        if self.enabled:
            self.progress.__exit__(*exc)
