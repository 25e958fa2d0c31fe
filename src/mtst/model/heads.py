"""Task heads and their registry. Adding a head type = one class here + one HEADS entry.

A head declares the feature key it reads (``sentence_embedding`` (B, H) or ``token_embeddings``
(B, T, H)), returns logits, owns its loss, and decodes logits into plain Python predictions.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from mtst.model.config import HeadConfig
from mtst.model.spans import bio_to_entities, first_subtokens, word_spans
from mtst.model.tokenization import Tokenized

IGNORE_INDEX = -100  # label for sub-tokens after the first one, special tokens and padding


class Head(nn.Module):
    """Base class: subclasses set ``reads`` and implement forward + decode."""

    reads: str

    def __init__(self, config: HeadConfig):
        super().__init__()
        self.config = config
        self.labels = list(config.labels)

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=IGNORE_INDEX
        )

    def decode(self, logits: torch.Tensor, items: Sequence[Tokenized], texts: Sequence[str]) -> list:
        raise NotImplementedError


class SentenceClassificationHead(Head):
    """Pooled embedding -> dropout -> [hidden layer + GELU] -> label logits (B, C)."""

    reads = "task_embedding"

    def __init__(self, config: HeadConfig):
        super().__init__(config)
        layers: list[nn.Module] = [nn.Dropout(config.dropout)]
        width = config.input_dim
        if config.hidden_dim:
            layers += [nn.Linear(width, config.hidden_dim), nn.GELU(), nn.Dropout(config.dropout)]
            width = config.hidden_dim
        layers.append(nn.Linear(width, len(config.labels)))
        self.net = nn.Sequential(*layers)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(features)

    def decode(self, logits: torch.Tensor, items: Sequence[Tokenized], texts: Sequence[str]) -> list[dict]:
        probs = logits.float().softmax(dim=-1).tolist()
        out = []
        for row in probs:
            best = max(range(len(row)), key=row.__getitem__)
            out.append({
                "label": self.labels[best],
                "score": row[best],
                "distribution": dict(zip(self.labels, row, strict=True)),
            })
        return out


class TokenClassificationHead(Head):
    """Token states -> dropout -> [hidden layer + GELU + dropout] -> BIO label logits (B, T, C).

    Words are labelled on their first sub-token. Without ``hidden_dim`` the head is one linear layer,
    with the same parameter names as before, so models saved that way still load.
    """

    reads = "token_embeddings"

    def __init__(self, config: HeadConfig):
        super().__init__(config)
        self.dropout = nn.Dropout(config.dropout)
        width = config.input_dim
        self.hidden: nn.Module = nn.Identity()
        if config.hidden_dim:
            self.hidden = nn.Sequential(nn.Linear(width, config.hidden_dim), nn.GELU(), nn.Dropout(config.dropout))
            width = config.hidden_dim
        self.classifier = nn.Linear(width, len(config.labels))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.hidden(self.dropout(features)))

    def decode(self, logits: torch.Tensor, items: Sequence[Tokenized], texts: Sequence[str]) -> list[list[dict]]:
        # One max over the whole batch, then plain lists: a tiny torch op per word made decoding cost
        # as much as the encoder's forward pass in `predict`.
        scores, best = logits.float().softmax(dim=-1).max(dim=-1)  # (B, T) each
        scores, best = scores.tolist(), best.tolist()
        return [
            self._entities(scores[row], best[row], item, text)
            for row, (item, text) in enumerate(zip(items, texts, strict=True))
        ]

    def _entities(self, scores: list[float], best: list[int], item: Tokenized, text: str) -> list[dict]:
        words = word_spans(item)
        first = first_subtokens(item.word_ids)
        labelled = [(words[word], self.labels[best[token]], scores[token]) for word, token in sorted(first.items())]
        return bio_to_entities(labelled, text)


class WindowedTokenClassificationHead(TokenClassificationHead):
    """Each token sees its two neighbours on either side: one kernel-5 Conv1d + GELU over the token
    states, concatenated with the token's own state, then a linear layer -> BIO logits (B, T, C).

    A frozen encoder's single token state is a weak NER cue ("Merkel" alone vs. "Angela Merkel"); the
    window lets the head see the phrase. Only one conv layer: the model zeroes padding states before
    the heads, so the conv's zero padding and a batch's padding look the same and a sentence's logits
    do not depend on what it is batched with. A second layer would read the first's outputs at padding
    positions (bias + GELU, not zero) and break that.
    """

    KERNEL = 5
    DEFAULT_CHANNELS = 256  # when the config leaves hidden_dim unset

    def __init__(self, config: HeadConfig):
        Head.__init__(self, config)
        channels = config.hidden_dim or self.DEFAULT_CHANNELS
        self.dropout = nn.Dropout(config.dropout)
        self.conv = nn.Conv1d(config.input_dim, channels, self.KERNEL, padding=self.KERNEL // 2)
        self.activation = nn.GELU()
        self.classifier = nn.Linear(config.input_dim + channels, len(config.labels))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        states = self.dropout(features)  # (B, T, H)
        window = self.activation(self.conv(states.transpose(1, 2))).transpose(1, 2)  # (B, T, channels)
        return self.classifier(torch.cat([states, self.dropout(window)], dim=-1))  # (B, T, C)


HEADS: dict[str, type[Head]] = {
    "sentence_classification": SentenceClassificationHead,
    "token_classification": TokenClassificationHead,
    "windowed_token_classification": WindowedTokenClassificationHead,
}


def build_head(config: HeadConfig) -> Head:
    return HEADS[config.type](config)
