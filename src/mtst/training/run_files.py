"""The plain files of a run directory, written by the main process only:

    config.yaml     the resolved config (inferred labels written in)
    metrics.jsonl   one JSON object per log line and per evaluation
    summary.json    what the run's TrainResult holds
    indices.rank<r>.jsonl   the example indices each rank trained on (only with MTST_DEBUG_INDICES=1, for tests)
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from mtst.errors import MtstError
from mtst.files import write_text

if TYPE_CHECKING:
    import torch

DEBUG_INDICES = "MTST_DEBUG_INDICES"  # "1": every rank logs the example indices it trained on (tests)


@dataclass
class TrainResult:
    output_dir: str
    steps: int  # optimizer steps done
    total_steps: int
    metric: str  # the selection metric, e.g. "mean/main"
    best_metric: float | None = None
    best_step: int | None = None
    best_metrics: dict[str, float] = field(default_factory=dict)  # the best evaluation, all keys
    stopped_early: bool = False
    interrupted: bool = False  # stop_after_steps reached (tests): no final/ written
    wall_seconds: float = 0.0



class RunFiles:
    def __init__(self, run_dir: Path, main: bool, rank: int):
        self.run_dir, self.main, self.rank = run_dir, main, rank
        self.metrics = run_dir / "metrics.jsonl"
        self.debug = os.environ.get(DEBUG_INDICES) == "1"
        self.listener: Callable[[dict], None] | None = None  # sees every logged record (the progress lines)

    def check_new_run(self, resuming: bool) -> None:
        """A new run never writes into an earlier run's directory."""
        if not resuming and self.metrics.exists():
            raise MtstError(f"{self.run_dir} already holds a run; resume it with --resume {self.run_dir} "
                            "or choose another --output-dir")

    def log(self, record: dict) -> None:
        if self.main:
            with self.metrics.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(record) + "\n")
            if self.listener is not None:
                self.listener(record)

    def keep_until(self, step: int) -> None:
        """Forget what an interrupted run logged after its last checkpoint (``step``)."""
        if self.main and self.metrics.exists():
            lines = [line for line in self.metrics.read_text(encoding="utf-8").splitlines() if line.strip()]
            kept = [line for line in lines if json.loads(line)["step"] <= step]
            write_text(self.metrics, "".join(line + "\n" for line in kept))

    def write_config(self, data: dict) -> None:
        if self.main:
            write_text(self.run_dir / "config.yaml", yaml.safe_dump(data, sort_keys=False, allow_unicode=True))

    def write_summary(self, data: dict) -> None:
        if self.main:
            write_text(self.run_dir / "summary.json", json.dumps(data, indent=2) + "\n")

    def debug_indices(self, step: int, task: str, indices: list[int]) -> None:
        if self.debug:
            with (self.run_dir / f"indices.rank{self.rank}.jsonl").open("a", encoding="utf-8") as handle:
                handle.write(json.dumps({"step": step, "task": task, "indices": indices}) + "\n")


def _number(value: float | torch.Tensor) -> float:
    return value.item() if hasattr(value, "item") else float(value)  # float() warns on a tensor that requires grad


class LossWindow:
    """Per-task training losses (and auxiliary ones: the unweighted anchor, the weighted distillation loss) since
    the last log line, and the speed."""

    def __init__(self, examples_per_step: int):
        self.examples_per_step = examples_per_step
        self._reset()

    def _reset(self) -> None:
        self.losses: dict[str, list[float]] = {}
        self.auxiliary: dict[str, dict[str, list[float]]] = {}  # name -> task -> values
        self.steps, self.seconds = 0, 0.0

    def add(self, task: str, loss: float | torch.Tensor, **auxiliary: float | torch.Tensor | None) -> None:
        """``auxiliary``: the batch's extra losses by name (anchor=..., distillation=...), None where off; floats or
        0-dim tensors."""
        self.losses.setdefault(task, []).append(_number(loss))
        for name, value in auxiliary.items():
            if value is not None:
                self.auxiliary.setdefault(name, {}).setdefault(task, []).append(_number(value))

    def add_time(self, seconds: float) -> None:
        """One optimizer step took ``seconds`` (evaluation and checkpoints excluded)."""
        self.steps, self.seconds = self.steps + 1, self.seconds + seconds

    @property
    def examples_per_s(self) -> float:
        return self.steps * self.examples_per_step / self.seconds if self.seconds else 0.0  # batch: all ranks

    def recent(self, last: int = 20) -> dict[str, float]:
        """Each task's mean loss over its last ``last`` batches (the progress bar)."""
        return {task: sum(v[-last:]) / len(v[-last:]) for task, v in self.losses.items()}

    def flush(self) -> dict:
        """The log fields (``examples_per_s``, ``loss`` and each auxiliary loss seen: ``anchor``,
        ``distillation``); starts a new window."""
        record: dict = {"examples_per_s": round(self.examples_per_s, 1),
                        "loss": {task: sum(v) / len(v) for task, v in self.losses.items()}}
        for name, per_task in self.auxiliary.items():
            record[name] = {task: sum(v) / len(v) for task, v in per_task.items()}
        self._reset()
        return record
