"""Encoder outputs of every training example, computed once when the encoder is frozen.

A fully frozen encoder runs in eval mode (no dropout), so its output for an example never changes:
running it again at every step would only burn CPU. The cache encodes each training example once
(length-sorted batches, fixed composition, so a resumed run gets the very same tensors) and the
heads then train on the stored features. Sentence heads store the pooled ``sentence_embedding``
(H,), token heads the ``token_embeddings`` (T_i, H) of each example.
"""

from __future__ import annotations

import torch
from torch import nn

from mtst.data.task_encoding import EncodedTask
from mtst.progress import progress_bar


def encoder_frozen(model: nn.Module) -> bool:
    return not any(p.requires_grad for p in model.encoder.parameters())


class FeatureCache:
    """``batch(task, indices)`` -> the head's input: (B, H) sentence embeddings or (B, T, H) token states."""

    def __init__(self, model: nn.Module, encoded: dict[str, EncodedTask], batch_size: int = 64,
                 show_progress: bool = False):
        self.rows: dict[str, list[torch.Tensor]] = {}
        self.reads = {task: model.heads[task].reads for task in encoded}
        was_training = model.encoder.training
        model.encoder.eval()
        total = sum(len(e) for e in encoded.values())
        with torch.no_grad(), progress_bar(total, "encoding training data once", show_progress) as advance:
            for task, data in encoded.items():
                self.rows[task] = self._encode(model, data, self.reads[task] == "token_embeddings", batch_size,
                                               advance)
        model.encoder.train(was_training)

    @staticmethod
    def _encode(model: nn.Module, data: EncodedTask, token: bool, batch_size: int, advance) -> list[torch.Tensor]:
        device = next(model.parameters()).device
        rows: list[torch.Tensor] = [torch.empty(0)] * len(data)
        for indices, features in model.tokenizer.sorted_batches(data.items, batch_size):
            mask = features["attention_mask"].to(device)
            states = model.encoder(features["input_ids"].to(device), mask)  # (B, T, H)
            if not token:
                states = model.pooling(states, mask)  # (B, H)
                if model.config.encoder.normalize:
                    states = nn.functional.normalize(states, p=2, dim=-1)
            for row, index in enumerate(indices):
                length = len(data.items[index].input_ids)
                rows[index] = (states[row, :length] if token else states[row]).clone()
            advance(len(indices))
        return rows

    def batch(self, task: str, indices: list[int]) -> torch.Tensor:
        rows = [self.rows[task][i] for i in indices]
        if self.reads[task] != "token_embeddings":
            return torch.stack(rows)  # (B, H)
        longest = max(row.shape[0] for row in rows)
        out = rows[0].new_zeros((len(rows), longest, rows[0].shape[-1]))  # (B, T, H), padding never labelled
        for i, row in enumerate(rows):
            out[i, : row.shape[0]] = row
        return out
