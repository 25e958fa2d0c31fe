"""Examples tokenized once for training: label ids aligned to sub-tokens, and padded (B, T) batches of them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from mtst.data.readers import Examples
from mtst.data.splits import check_labels
from mtst.model.tasks import TaskType, task_type
from mtst.model.tokenization import TextTokenizer, Tokenized


@dataclass
class EncodedTask:
    """A split tokenized once (unpadded), with each example's training target (``TaskType.target``): a label id,
    label ids per sub-token (IGNORE_INDEX where unlabelled) or a pair's score."""

    kind: TaskType
    items: list[Tokenized]
    label_ids: list
    second: list[Tokenized] | None = None  # pair tasks: the second sentence of each pair

    def __len__(self) -> int:
        return len(self.items)


def encode_task(tokenizer: TextTokenizer, examples: Examples, labels: Sequence[str], head_type: str) -> EncodedTask:
    """Check labels, tokenize every example once and turn its label into the task type's target (pair tasks: both
    sentences, the scores as they are)."""
    kind = task_type(head_type)
    if kind.example == "pair":
        items = tokenizer([first for first, _ in examples.texts])
        second = tokenizer([second for _, second in examples.texts])
    else:
        check_labels(examples, labels)
        items, second = tokenizer(examples.texts, is_split_into_words=kind.token_level), None
    index = {name: i for i, name in enumerate(labels)}
    label_ids = [kind.target(label, index, item) for label, item in zip(examples.labels, items, strict=True)]
    return EncodedTask(kind=kind, items=items, label_ids=label_ids, second=second)


def collate(tokenizer: TextTokenizer, encoded: EncodedTask, indices: Sequence[int]
            ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Features (input_ids, attention_mask, word_ids: (B, T)) and targets: (B,) or (B, T) padded with -100."""
    features = tokenizer.collate([encoded.items[i] for i in indices])
    return features, encoded.kind.collate_targets([encoded.label_ids[i] for i in indices], features)


def collate_pairs(tokenizer: TextTokenizer, encoded: EncodedTask, indices: Sequence[int]
                  ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], torch.Tensor]:
    """Both sides' features (each padded to its own longest) and the (B,) float scores of a pair batch."""
    first = tokenizer.collate([encoded.items[i] for i in indices])
    second = tokenizer.collate([encoded.second[i] for i in indices])
    return first, second, encoded.kind.collate_targets([encoded.label_ids[i] for i in indices], first)
