"""Per-label decision thresholds for multi-label heads, tuned on dev data.

A multi-label head (mtst.model.heads.MultiLabelHead) predicts a label when sigmoid(logit) reaches that label's
threshold. The default, 0.5 for every label, suits frequent labels; rare labels usually want a lower one. For each
label on its own, ``tune_thresholds`` picks the threshold in the grid 0.05, 0.10, ..., 0.95 that maximises that
label's F1 on dev (ties: the one nearest 0.5), and stores them in the head's config (``thresholds``), which
``model.save`` keeps and every runtime decodes with. Tune on dev, never on test.
"""

from __future__ import annotations

import torch

from mtst.data.readers import Examples
from mtst.errors import MtstError
from mtst.model.multitask import MultiTaskModel
from mtst.model.tasks import task_type
from mtst.training.calibration import sentence_logits

GRID = [round(0.05 * step, 2) for step in range(1, 20)]  # 0.05 .. 0.95


def label_f1(scores: torch.Tensor, truth: torch.Tensor, threshold: float) -> float:
    """F1 of one label: (N,) probabilities at ``threshold`` against (N,) 0/1 gold; 0 when neither side has it."""
    guess = scores >= threshold
    hits = float((guess & truth).sum())
    denominator = float(guess.sum()) + float(truth.sum())
    return 2 * hits / denominator if denominator else 0.0


def best_threshold(scores: torch.Tensor, truth: torch.Tensor) -> float:
    """The grid threshold with the highest F1 for one label; ties go to the one nearest 0.5."""
    return max(GRID, key=lambda threshold: (label_f1(scores, truth, threshold), -abs(threshold - 0.5)))


def tune_thresholds(model: MultiTaskModel, task: str, examples: Examples, batch_size: int = 64) -> list[float]:
    """Tune ``task``'s per-label thresholds on ``examples`` (dev data), store them in the model's head config and
    return them (in label order)."""
    config = model.config.heads.get(task)
    if config is None:
        raise MtstError(f"task '{task}' is not in the model; its tasks are: {', '.join(model.tasks) or 'none'}")
    if not task_type(config.type).multi_label:
        raise MtstError(f"task '{task}' is a {config.type} task; thresholds are tuned for multi-label heads")
    if len(examples) < 2:
        raise MtstError(f"task '{task}': tuning thresholds needs dev examples, got {len(examples)}")
    head = model.heads[task]
    unknown = sorted({name for names in examples.labels for name in names} - set(head.labels))
    if unknown:
        raise MtstError(f"task '{task}': gold labels {unknown} are not among the model's labels {head.labels}")
    scores = head.probabilities(sentence_logits(model, task, list(examples.texts), batch_size))  # (N, C)
    truth = torch.tensor([[label in names for label in head.labels] for names in examples.labels])  # (N, C)
    thresholds = [best_threshold(scores[:, column], truth[:, column]) for column in range(len(head.labels))]
    config.thresholds = thresholds
    head.config.thresholds = thresholds  # the same object unless a caller copied it
    return thresholds
