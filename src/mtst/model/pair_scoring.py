"""Scoring sentence pairs on embeddings: the pair tasks' training objective and their Spearman metric (ranks, Spearman),
used by mtst.model.tasks' pair task types and by evaluation's STS check."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from mtst.errors import MtstError


class PairObjective:
    """Not a head: no parameters and no per-sentence prediction. Its loss on the two sides' sentence embeddings
    (B, H) trains the embedding path. The loss comes from sentence-transformers (its losses work on embeddings
    alone) and is imported on first use: sentence-transformers takes seconds to import and only training needs it.
    """

    def __init__(self, loss_name: str):
        self.loss_name = loss_name
        self._loss: nn.Module | None = None

    def loss(self, first: torch.Tensor, second: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        if self._loss is None:
            from sentence_transformers.sentence_transformer import losses

            self._loss = getattr(losses, self.loss_name)(None)  # scale 20
        return self._loss.compute_loss_from_embeddings([first.float(), second.float()], scores)


def own_ranks(left: torch.Tensor, right: torch.Tensor, second: list[str]) -> torch.Tensor:
    """(N,) rank of each first sentence's own second sentence among every unique second sentence, by the cosine of
    unit embeddings (N, H) x (N, H); 1 = best, ties count against it."""
    candidates = list(dict.fromkeys(second))
    index = {text: i for i, text in enumerate(candidates)}
    pool = right[[second.index(text) for text in candidates]]  # (M, H), one row per unique candidate
    similarity = left @ pool.T  # (N, M)
    own = similarity[torch.arange(len(second)), [index[text] for text in second]]  # (N,)
    return (similarity >= own[:, None]).sum(dim=1).float()


def spearman(left: torch.Tensor, right: torch.Tensor, scores: Sequence[float], where: str) -> float:
    """Spearman x 100 between the cosines of unit vectors (N, H) x (N, H) and gold scores."""
    import math

    import numpy as np
    from scipy.stats import spearmanr

    cosine = (left * right).sum(dim=-1).numpy()  # (N,)
    value = spearmanr(cosine, np.asarray(scores)).statistic
    if math.isnan(value):
        raise MtstError(f"{where}: Spearman is undefined (constant scores or embeddings); check the data")
    return 100 * float(value)
