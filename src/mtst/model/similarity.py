"""Similarity of embeddings with sentence-transformers' semantics (``SentenceTransformer.similarity``).

``similarity(a, b)`` gives the (N, M) matrix of every a against every b, ``similarity_pairwise(a, b)`` the (N,)
scores of a[i] against b[i]. Inputs are numpy arrays, tensors or lists of vectors, (N, H) or one (H,) vector; the
result is a float torch tensor, as in sentence-transformers. "cosine" is the default; for a model that L2-normalises
its embeddings it equals "dot". "euclidean" and "manhattan" are negated distances (higher = more similar).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from mtst.errors import MtstError

SIMILARITY_FN_NAMES = ("cosine", "dot", "euclidean", "manhattan")


def as_matrix(vectors) -> torch.Tensor:
    """Embeddings as a float tensor (N, H): one (H,) vector becomes (1, H); lists of vectors are stacked."""
    if isinstance(vectors, list) and vectors and isinstance(vectors[0], torch.Tensor):
        vectors = torch.stack(vectors)
    tensor = torch.as_tensor(np.asarray(vectors) if not isinstance(vectors, torch.Tensor) else vectors)
    tensor = tensor if tensor.is_floating_point() else tensor.float()
    return tensor.unsqueeze(0) if tensor.dim() == 1 else tensor


def _unit(x: torch.Tensor) -> torch.Tensor:
    return nn.functional.normalize(x, p=2, dim=-1)


MATRIX: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "cosine": lambda a, b: _unit(a) @ _unit(b).T,
    "dot": lambda a, b: a @ b.T,
    "euclidean": lambda a, b: -torch.cdist(a, b, p=2.0),
    "manhattan": lambda a, b: -torch.cdist(a, b, p=1.0),
}
PAIRWISE: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "cosine": lambda a, b: (_unit(a) * _unit(b)).sum(dim=-1),
    "dot": lambda a, b: (a * b).sum(dim=-1),
    "euclidean": lambda a, b: -torch.sqrt(((a - b) ** 2).sum(dim=-1)),
    "manhattan": lambda a, b: -(a - b).abs().sum(dim=-1),
}


def check_similarity_fn(name: str) -> str:
    if name not in SIMILARITY_FN_NAMES:
        raise MtstError(f"unknown similarity_fn_name '{name}'; choose one of {', '.join(SIMILARITY_FN_NAMES)}")
    return name


def similarity(a, b, fn: str = "cosine") -> torch.Tensor:
    """(N, M) scores of every row of ``a`` against every row of ``b``."""
    return MATRIX[check_similarity_fn(fn)](as_matrix(a), as_matrix(b))


def similarity_pairwise(a, b, fn: str = "cosine") -> torch.Tensor:
    """(N,) scores of ``a[i]`` against ``b[i]``."""
    left, right = as_matrix(a), as_matrix(b)
    if left.shape != right.shape:
        raise MtstError(f"similarity_pairwise needs two equally long lists, got {left.shape[0]} and {right.shape[0]}")
    return PAIRWISE[check_similarity_fn(fn)](left, right)
