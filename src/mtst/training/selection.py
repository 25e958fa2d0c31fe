"""Model selection during training: the best dev score so far, and early stopping after ``patience``
evaluations without a better one. Its state travels in training checkpoints (plain numbers, JSON)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class BestTracker:
    greater_is_better: bool = True
    patience: int | None = None  # evaluations without improvement before stopping; None: never stop
    best: float | None = None
    best_step: int | None = None
    best_metrics: dict[str, float] = field(default_factory=dict)  # the best evaluation, all keys
    bad_evals: int = 0

    def update(self, step: int, score: float, metrics: dict[str, float]) -> bool:
        """Record one evaluation; True when it is the best so far (the caller saves best/)."""
        better = self.best is None or (score > self.best if self.greater_is_better else score < self.best)
        if better:
            self.best, self.best_step, self.best_metrics, self.bad_evals = score, step, dict(metrics), 0
        else:
            self.bad_evals += 1
        return better

    @property
    def should_stop(self) -> bool:
        return self.patience is not None and self.bad_evals >= self.patience

    def state_dict(self) -> dict:
        """The checkpoint's keys (``best``, ``best_step``, ``bad_evals``, ``best_metrics``)."""
        state = asdict(self)
        del state["greater_is_better"], state["patience"]  # from the config, not the run
        return state

    def load_state_dict(self, state: dict) -> None:
        self.best, self.best_step = state["best"], state["best_step"]
        self.bad_evals, self.best_metrics = int(state["bad_evals"]), dict(state["best_metrics"])
