"""Embedding anchor: keep the sentence embeddings near the starting encoder's while heads train.

Fine-tuning the shared encoder for classification or NER pulls its pooled sentence embeddings away
from what made them good for similarity search (STS-B Spearman drops: docs/training-guide.md).
The anchor is self-distillation from the encoder as it was before training: the *teacher* embedding
of every training example is computed once at setup (eval mode, no grad, length-sorted batches, the
model's own pooling and normalisation), and each training batch adds
``weight * loss(student, teacher[indices])`` to the combined loss. It costs one encoder pass over
the training set at setup and nothing per step: the student embedding comes from the forward pass
the heads already need.

On resume the recipe builds the starting model again (``model.backbone`` / ``model.init_from``)
before it loads the checkpoint, so the teacher is recomputed from the same weights, batch for batch.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import torch
from torch import nn

from mtst.data.task_encoding import EncodedTask
from mtst.model.modes import eval_mode
from mtst.progress import progress_bar

logger = logging.getLogger("mtst")


def cosine_anchor(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """mean(1 - cos(student, teacher)) over the batch; 0 when every direction is kept."""
    return (1.0 - nn.functional.cosine_similarity(student, teacher, dim=-1)).mean()


def mse_anchor(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Mean squared error over every (B, H) element (sentence-transformers' distillation MSELoss).
    For unit vectors this is (2 - 2 cos) / H on average: give it an H/2 times larger weight than cosine."""
    return nn.functional.mse_loss(student, teacher)


ANCHOR_LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "cosine": cosine_anchor,
    "mse": mse_anchor,
}


@torch.no_grad()
def sentence_embeddings(model: nn.Module, data: EncodedTask, batch_size: int = 64,
                        advance: Callable[[int], None] = lambda n: None) -> torch.Tensor:
    """(N, H) float32 pooled embeddings of already tokenized examples, via the model's own forward
    (padding zeroed, pooling, normalisation) so teacher and student are computed the same way."""
    device = next(model.parameters()).device
    out = torch.zeros((len(data), model.config.encoder.hidden_size), device=device)  # (N, H)
    with eval_mode(model):
        for indices, features in model.tokenizer.sorted_batches(data.items, batch_size):
            features = {k: features[k].to(device) for k in ("input_ids", "attention_mask")}
            out[indices] = model(features, tasks=[])["sentence_embedding"].float()  # (B, H)
            advance(len(indices))
    return out


class EmbeddingAnchor:
    """Teacher embeddings of every task's training examples; ``loss(task, indices, student)`` -> () tensor."""

    def __init__(self, model: nn.Module, encoded: dict[str, EncodedTask], loss: str = "cosine",
                 batch_size: int = 64, show_progress: bool = False):
        self.loss_fn = ANCHOR_LOSSES[loss]
        total = sum(len(data) for data in encoded.values())
        start = time.perf_counter()
        with progress_bar(total, "embedding anchor: encoding training data once", show_progress) as advance:
            self.teacher = {task: sentence_embeddings(model, data, batch_size, advance)
                            for task, data in encoded.items()}  # task -> (N_task, H)
        logger.info("embedding_anchor: teacher embeddings of %d training examples in %.1f s",
                    total, time.perf_counter() - start)

    def loss(self, task: str, indices: list[int], student: torch.Tensor) -> torch.Tensor:
        """Unweighted anchor loss of one batch; ``student`` (B, H) are the sentence embeddings of ``indices``."""
        student = student.float()  # bf16 under mixed precision: the anchor is compared in fp32
        teacher = self.teacher[task][indices]  # (B, H), float32 like the student now
        return self.loss_fn(student, teacher)


def build_anchor(model: nn.Module, encoded: dict[str, EncodedTask], section, cached: bool, batch_size: int,
                 show_progress: bool) -> EmbeddingAnchor | None:
    """The teacher embeddings of the starting model; None when the anchor is off (``section`` None or weight 0) or
    cannot matter (``cached``: the embedding path does not train)."""
    if section is None or section.weight == 0:
        return None
    if cached:
        logger.info("embedding_anchor skipped: the embedding path does not train (a frozen encoder or a "
                    "task branch), so the embeddings cannot move")
        return None
    sentences = {task: data for task, data in encoded.items() if task not in model.objectives}
    return EmbeddingAnchor(model, sentences, section.loss, batch_size, show_progress=show_progress)
