"""Timing on a shared machine: the median of alternating rounds. The CPU-path probe (mtst.model.cpu_paths),
``mtst bench`` and benchmarks/ all time through here. It sits in mtst.model because the probe does."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def seconds(call: Callable[[], object]) -> float:
    """Wall seconds one call takes."""
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def alternating_rounds(calls: dict[str, Callable[[], object]], rounds: int,
                       summary: Callable[[list[float]], float] = statistics.median) -> dict[str, float]:
    """Median wall seconds of each call. Every round runs every call once, in turn, so a machine that another job
    slows down (2 shared cores) slows all of them alike; the median drops the rounds it hit hardest. ``summary``
    ``min``: the fastest round (other jobs only ever add time: the choice between close paths on a busy machine)."""
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(rounds):
        for name, call in calls.items():
            times[name].append(seconds(call))
    return {name: summary(values) for name, values in times.items()}
