"""Token states -> one sentence vector: mean (mask-aware), cls or max. L2 norm lives in the model."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from mtst.errors import MtstError


def mean_pool(token_embeddings: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    mask = attention_mask.unsqueeze(-1).to(token_embeddings.dtype)  # (B, T, 1)
    summed = (token_embeddings * mask).sum(dim=1)  # (B, H)
    return summed / mask.sum(dim=1).clamp(min=1e-9)


def cls_pool(token_embeddings: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    return token_embeddings[:, 0]


def max_pool(token_embeddings: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    # Padding must never win the max, so it is pushed to the dtype's minimum.
    padded = token_embeddings.masked_fill(attention_mask.unsqueeze(-1) == 0, torch.finfo(token_embeddings.dtype).min)
    return padded.max(dim=1).values


POOLINGS: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "mean": mean_pool,
    "cls": cls_pool,
    "max": max_pool,
}


class Pooling(nn.Module):
    """Reads ``token_embeddings`` (B, T, H) + ``attention_mask`` (B, T), returns (B, H)."""

    def __init__(self, mode: str = "mean"):
        super().__init__()
        if mode not in POOLINGS:
            raise MtstError(f"unknown pooling '{mode}'; choose one of {', '.join(POOLINGS)}")
        self.mode = mode

    def forward(self, token_embeddings: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return POOLINGS[self.mode](token_embeddings, attention_mask)
