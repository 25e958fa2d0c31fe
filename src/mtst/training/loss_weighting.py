"""How per-task losses combine into the one loss that is back-propagated.

``static``: each task's loss times its configured ``loss_weight``. ``uncertainty`` (Kendall, Gal &
Cipolla 2018): one learned log-variance ``s_t`` per task, ``L = sum_t exp(-s_t) * w_t * L_t + s_t``;
tasks with noisy or large losses learn a large ``s_t`` and get down-weighted, while ``+ s_t`` keeps
every weight from collapsing to zero. Its parameters are saved in training checkpoints.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn


class LossWeighting(nn.Module):
    """Static weights, plus learned log-variances when ``learned`` is true (starting at 0: weight 1)."""

    def __init__(self, weights: Mapping[str, float], learned: bool = False):
        super().__init__()
        self.weights = dict(weights)
        self.learned = learned
        self.log_vars = nn.ParameterDict(
            {name: nn.Parameter(torch.zeros(())) for name in weights} if learned else {}
        )

    def forward(self, losses: Mapping[str, torch.Tensor]) -> torch.Tensor:
        terms = []
        for task, loss in losses.items():
            weighted = self.weights[task] * loss
            if self.learned:
                s = self.log_vars[task]  # () log sigma^2
                weighted = torch.exp(-s) * weighted + s
            terms.append(weighted)
        return torch.stack(terms).sum()

    def current_weights(self) -> dict[str, float]:
        """The effective multiplier of each task's loss right now (for logs)."""
        if not self.learned:
            return dict(self.weights)
        return {task: self.weights[task] * float(torch.exp(-self.log_vars[task].detach())) for task in self.weights}
