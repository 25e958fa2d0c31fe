"""Masked copies of the training sentences for distillation (Tang et al. 2019, "Distilling task-specific knowledge
from BERT into simple neural networks"): the teacher labels each copy too, so the student learns from a larger
transfer set than the gold data.

A copy keeps its original's length, special tokens and gold label; each real word-piece is replaced by the
tokenizer's mask token with probability p, and at least one always is, so no copy is a plain duplicate. The copies
come from a local generator seeded by the run's seed: a resumed run rebuilds the same ones, and the global random
stream (new heads' first weights) is untouched.
"""

from __future__ import annotations

import logging
import random
from dataclasses import replace

from mtst.data.task_encoding import EncodedTask
from mtst.errors import MtstError
from mtst.model.multitask import MultiTaskModel
from mtst.model.tokenization import NO_WORD, Tokenized

logger = logging.getLogger("mtst")


def _masked(item: Tokenized, probability: float, mask_id: int, rng: random.Random) -> Tokenized:
    real = [i for i, word in enumerate(item.word_ids) if word != NO_WORD]  # special tokens belong to no word
    chosen = [i for i in real if rng.random() < probability]
    if real and not chosen:
        chosen = [rng.choice(real)]
    input_ids = list(item.input_ids)
    for i in chosen:
        input_ids[i] = mask_id
    return replace(item, input_ids=input_ids)


def mask_copies(data: EncodedTask, copies: int, probability: float, mask_id: int, seed: int) -> EncodedTask:
    """``data`` followed by ``copies`` masked copies of every example, each with its original's label: item
    ``k * n + i`` (k >= 1, n = len(data)) is the k-th copy of item i. The items need their ``word_ids`` (training
    encoding keeps them): tokens outside any word (CLS, SEP) are never masked."""
    rng = random.Random(seed)
    masked = [_masked(item, probability, mask_id, rng) for _ in range(copies) for item in data.items]
    return replace(data, items=[*data.items, *masked], label_ids=list(data.label_ids) * (copies + 1))


def augmented_tasks(model: MultiTaskModel, encoded: dict[str, EncodedTask]) -> list[str]:
    """The tasks the teacher distils per sentence: one text per example, a head that reads the task path (token
    tasks keep one tag per word; pair tasks and heads on the embedding are not distilled)."""
    return [task for task, data in encoded.items()
            if data.kind.example == "text" and task in model.heads and model.heads[task].reads != "sentence_embedding"]


def with_masked_copies(model: MultiTaskModel, encoded: dict[str, EncodedTask], section, seed: int
                             ) -> dict[str, EncodedTask]:
    """``encoded`` with ``section.augment`` masked copies added to each of ``augmented_tasks``; ``encoded`` itself
    when distillation (``section``) is off or asks for none."""
    if section is None or not section.augment:
        return encoded
    mask_id = model.tokenizer.tokenizer.mask_token_id
    if mask_id is None:
        raise MtstError("distillation.augment needs a mask token and this backbone's tokenizer has none; set "
                        "distillation.augment: 0")
    encoded = dict(encoded)
    for position, task in enumerate(augmented_tasks(model, encoded)):
        original = len(encoded[task])
        encoded[task] = mask_copies(encoded[task], section.augment, section.mask_probability, mask_id,
                                    seed * 1_000_003 + position)  # each task its own stream
        logger.info("distillation: %d masked copies of %d %s examples (p=%g)", len(encoded[task]) - original,
                    original, task, section.mask_probability)
    return encoded
