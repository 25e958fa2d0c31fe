"""Frozen encoder outputs of every training example, computed once.

What never trains runs in eval mode (no dropout), so its output for an example never changes: running it again
at every step would only burn CPU. The cache encodes each training example once (length-sorted batches, fixed
composition, so a resumed run gets the very same tensors) and training runs only what trains:

- a task branch (``branch_at``): the shared bottom's states (T_i, H) of each example; the branch and the heads
  train on them (mtst.model.branch: the bottom is part of the frozen backbone);
- a fully frozen encoder without a branch: each head's input, the pooled ``task_embedding`` (H,) for sentence
  heads and the ``token_embeddings`` (T_i, H) for token heads.

A side network (``side_reduction``, mtst.model.side) is never cached: it reads every backbone state h_0..h_L, so
its cache would hold (L + 1) x T_i x H floats per example, 7x a branch's on a 6-layer backbone (several GB for
the 8,000-step three-task run, in memory). Each step runs the frozen backbone without an autograd graph
(mtst.model.side.backbone_states) and only the side network and the heads with one.
"""

from __future__ import annotations

import torch
from torch import nn

from mtst.data.task_encoding import EncodedTask
from mtst.model.modes import eval_mode
from mtst.model.tokenization import Tokenized
from mtst.progress import progress_bar


def encoder_frozen(model: nn.Module) -> bool:
    return not any(p.requires_grad for p in model.encoder.parameters())


def cacheable(model: nn.Module, gradual_unfreezing: bool) -> bool:
    """Whether training can start from cached features: a branch's bottom is always frozen; a plain encoder
    must be frozen for the whole run (gradual unfreezing changes it); a side network is never cached (above)."""
    if model.side is not None:
        return False
    return model.branch is not None or (encoder_frozen(model) and not gradual_unfreezing)


SECOND = ":second"  # cache key suffix for the second sentences of a pair task


class FeatureCache:
    """``batch(key, indices)`` -> padded shared states (B, T, H) with a branch; else the head's input,
    (B, H) task embeddings or (B, T, H) token states. Keys are task names, and ``task + SECOND`` for the
    second sentences of a pair task."""

    def __init__(self, model: nn.Module, encoded: dict[str, EncodedTask], batch_size: int = 64,
                 show_progress: bool = False):
        groups = {task: data.items for task, data in encoded.items()}
        groups.update({task + SECOND: data.second for task, data in encoded.items() if data.second is not None})
        kinds = {key: encoded[key.removesuffix(SECOND)].kind for key in groups}
        reads = {key: kind.reads for key, kind in kinds.items()}
        self.tokens = {key: model.branch is not None or kind.token_level for key, kind in kinds.items()}
        self.rows: dict[str, list[torch.Tensor]] = {}
        total = sum(len(items) for items in groups.values())
        with eval_mode(model), torch.no_grad(), progress_bar(total, "encoding training data once",
                                                             show_progress) as advance:
            for key, items in groups.items():
                self.rows[key] = self._encode(model, items, reads[key], self.tokens[key], batch_size, advance)

    @staticmethod
    def _encode(model: nn.Module, items: list[Tokenized], reads: str, tokens: bool, batch_size: int,
                advance) -> list[torch.Tensor]:
        device = next(model.parameters()).device
        rows: list[torch.Tensor] = [torch.empty(0)] * len(items)
        for indices, features in model.tokenizer.sorted_batches(items, batch_size):
            ids, mask = features["input_ids"].to(device), features["attention_mask"].to(device)
            if model.branch is not None:
                states = model.shared_states(ids, mask)  # (B, T, H)
            else:
                states = model({"input_ids": ids, "attention_mask": mask}, tasks=[])[reads]  # (B, T, H) or (B, H)
            for row, index in enumerate(indices):
                length = len(items[index].input_ids)
                rows[index] = (states[row, :length] if tokens else states[row]).clone()
            advance(len(indices))
        return rows

    def batch(self, key: str, indices: list[int]) -> torch.Tensor:
        rows = [self.rows[key][i] for i in indices]
        if not self.tokens[key]:
            return torch.stack(rows)  # (B, H)
        return pad_rows(rows)  # (B, T, H), padding never labelled


def pad_rows(rows: list[torch.Tensor]) -> torch.Tensor:
    """Per-example (T_i, ...) tensors stacked into (B, T, ...), zero-padded to the longest."""
    longest = max(row.shape[0] for row in rows)
    out = rows[0].new_zeros((len(rows), longest, *rows[0].shape[1:]))
    for i, row in enumerate(rows):
        out[i, : row.shape[0]] = row
    return out
