"""Examples tokenized once for training: label ids aligned to sub-tokens, and padded (B, T) batches of them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from mtst.data.readers import Examples
from mtst.data.splits import check_labels, token_task
from mtst.model.config import PAIR_TYPES
from mtst.model.heads import IGNORE_INDEX
from mtst.model.spans import first_subtokens
from mtst.model.tokenization import TextTokenizer, Tokenized


@dataclass
class EncodedTask:
    """A split tokenized once (unpadded); labels aligned to sub-tokens for token tasks."""

    items: list[Tokenized]
    label_ids: list  # list[int] (sentence) or list[list[int]] per sub-token, IGNORE_INDEX where unlabelled;
    # pair tasks: list[float] scores
    second: list[Tokenized] | None = None  # pair tasks: the second sentence of each pair

    def __len__(self) -> int:
        return len(self.items)


def align_labels(word_ids: Sequence[int], tag_ids: Sequence[int]) -> list[int]:
    """Word tag ids -> sub-token label ids: a word's first sub-token gets its tag, every other
    position (later sub-tokens, special tokens) IGNORE_INDEX. Words cut off by truncation vanish."""
    aligned = [IGNORE_INDEX] * len(word_ids)
    for word, position in first_subtokens(word_ids).items():
        aligned[position] = tag_ids[word]
    return aligned


def encode_task(tokenizer: TextTokenizer, examples: Examples, labels: Sequence[str], head_type: str) -> EncodedTask:
    """Check labels, tokenize every example once and map label names to ids (pair tasks: both sentences,
    the scores as they are)."""
    if head_type in PAIR_TYPES:
        return EncodedTask(items=tokenizer([first for first, _ in examples.texts]), label_ids=list(examples.labels),
                           second=tokenizer([second for _, second in examples.texts]))
    check_labels(examples, labels)
    index = {name: i for i, name in enumerate(labels)}
    if token_task(head_type):
        items = tokenizer(examples.texts, is_split_into_words=True)
        label_ids = [align_labels(item.word_ids, [index[tag] for tag in tags])
                     for item, tags in zip(items, examples.labels, strict=True)]
    else:
        items = tokenizer(examples.texts)
        label_ids = [index[label] for label in examples.labels]
    return EncodedTask(items=items, label_ids=label_ids)


def collate(tokenizer: TextTokenizer, encoded: EncodedTask, indices: Sequence[int]
            ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Features (input_ids, attention_mask, word_ids: (B, T)) and labels: (B,) or (B, T) padded with -100."""
    features = tokenizer.collate([encoded.items[i] for i in indices])
    rows = [encoded.label_ids[i] for i in indices]
    if rows and isinstance(rows[0], list):
        labels = torch.full(features["input_ids"].shape, IGNORE_INDEX, dtype=torch.long)  # (B, T)
        for row, ids in enumerate(rows):
            labels[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
    else:
        labels = torch.tensor(rows, dtype=torch.long)  # (B,)
    return features, labels


def collate_pairs(tokenizer: TextTokenizer, encoded: EncodedTask, indices: Sequence[int]
                  ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], torch.Tensor]:
    """Both sides' features (each padded to its own longest) and the (B,) float scores of a pair batch."""
    first = tokenizer.collate([encoded.items[i] for i in indices])
    second = tokenizer.collate([encoded.second[i] for i in indices])
    return first, second, torch.tensor([encoded.label_ids[i] for i in indices], dtype=torch.float32)
