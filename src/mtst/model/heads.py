"""Task heads: the modules a task type (mtst.model.tasks) builds. Adding a head kind = one class here + one task type.

A head declares the feature key it reads (``task_embedding`` (B, H) or ``token_embeddings`` (B, T, H)),
returns logits, owns its loss, and decodes logits into plain Python predictions. Token heads may also read
each word's shape (``shape_ids`` (B, T): ``word_shape_dim``) and decode through a BIO-constrained CRF (``crf``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from mtst.model.config import HeadConfig
from mtst.model.crf import BioCRF
from mtst.model.spans import bio_to_entities, first_subtokens, word_spans
from mtst.model.tokenization import Tokenized
from mtst.model.word_shapes import NO_SHAPE, SHAPES

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

    def forward(self, features: torch.Tensor, shape_ids: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError

    def decode(self, logits: torch.Tensor, items: Sequence[Tokenized], texts: Sequence[str]) -> list:
        raise NotImplementedError

    def best_labels(self, logits: torch.Tensor, items: Sequence[Tokenized]) -> list:
        """The predicted label name per row: what evaluation and export agreement compare with gold labels."""
        return [self.labels[i] for i in logits.argmax(dim=-1).tolist()]


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

    def forward(self, features: torch.Tensor, shape_ids: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(features)  # (B, C)

    DEFAULT_TEMPERATURE = 1.0  # when the config sets none (calibration fits one: mtst.training.calibration)

    @property
    def temperature(self) -> float:
        """Decoding's softmax(logits / T): the config's fitted T, else the head's default. Logits and arg-max
        never depend on it."""
        fitted = self.config.temperature
        return self.DEFAULT_TEMPERATURE if fitted is None else fitted

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """(B, C) calibrated probabilities: softmax(logits / temperature), in float32; with a ``confidence_curve``
        (mtst.training.calibration) the top one goes through it and the others share the rest, in proportion."""
        probs = (logits.float() / self.temperature).softmax(dim=-1)
        if self.config.confidence_curve is None:
            return probs
        knots = torch.tensor(self.config.confidence_curve, device=probs.device)  # (K, 2): confidence -> calibrated
        top, best = probs.max(dim=-1, keepdim=True)  # (B, 1)
        right = torch.searchsorted(knots[:, 0].contiguous(), top).clamp(1, len(knots) - 1)
        (x0, y0), (x1, y1) = knots[right - 1].unbind(-1), knots[right].unbind(-1)  # (B, 1) each
        mapped = y0 + (y1 - y0) * ((top - x0) / (x1 - x0).clamp_min(1e-12)).clamp(0, 1)
        others = probs.scatter(-1, best, 0.0)
        rest, second = others.sum(-1, keepdim=True), others.max(-1, keepdim=True).values
        mapped = torch.maximum(mapped, second / (rest + second).clamp_min(1e-30) + 1e-6)  # the top label stays on top
        return (others * (1 - mapped) / rest.clamp_min(1e-30)).scatter(-1, best, mapped)

    def decode(self, logits: torch.Tensor, items: Sequence[Tokenized], texts: Sequence[str]) -> list[dict]:
        probs = self.probabilities(logits).tolist()
        threshold = self.config.threshold  # abstain ("label": None) below it; None: never
        out = []
        for row in probs:
            best = max(range(len(row)), key=row.__getitem__)
            out.append({"label": None if threshold is not None and row[best] < threshold else self.labels[best],
                        "score": row[best], "distribution": dict(zip(self.labels, row, strict=True))})
        return out


class MultiLabelHead(SentenceClassificationHead):
    """The sentence head's layers with one sigmoid per label instead of a softmax: loss BCE-with-logits on (B, C)
    0/1 targets; a label is predicted when its probability reaches its threshold (``config.thresholds``, tuned on
    dev by mtst.training.thresholds; else 0.5). ``decode`` gives ``{"labels": [names], "scores": {label: p}}``:
    no single "label" (a row may have none or several); ``temperature`` and ``threshold`` are not used."""

    DEFAULT_THRESHOLD = 0.5

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return nn.functional.binary_cross_entropy_with_logits(logits.float(), labels.float())

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        return logits.float().sigmoid()  # (B, C), each label on its own

    def thresholds(self) -> torch.Tensor:
        """(C,) the probability each label needs."""
        return torch.tensor(self.config.thresholds or [self.DEFAULT_THRESHOLD] * len(self.labels))

    def chosen(self, probabilities: torch.Tensor) -> list[list[str]]:
        """The label names at or above their thresholds, per row of (B, C) probabilities, in label order."""
        above = (probabilities >= self.thresholds()).tolist()
        return [[label for label, on in zip(self.labels, row, strict=True) if on] for row in above]

    def best_labels(self, logits: torch.Tensor, items: Sequence[Tokenized]) -> list[list[str]]:
        return self.chosen(self.probabilities(logits))

    def decode(self, logits: torch.Tensor, items: Sequence[Tokenized], texts: Sequence[str]) -> list[dict]:
        probabilities = self.probabilities(logits)
        return [{"labels": labels, "scores": dict(zip(self.labels, row, strict=True))}
                for labels, row in zip(self.chosen(probabilities), probabilities.tolist(), strict=True)]


class ZeroShotHead(SentenceClassificationHead):
    """Cosine of a sentence's embedding with each label's text embedding: logits (B, C) are the cosines, decoded as
    softmax(cosine / temperature). It reads the backbone's exact embedding, or with ``config.task_path`` the task
    branch's pooled states (few-shot contrastive training trained that branch for it). The label matrix (C, H) is a
    buffer (unit rows), filled when the head is added (mtst.model.tasks.ZeroShotClassification) and saved with the
    heads, so an exported graph holds it. No trainable parameters."""

    DEFAULT_TEMPERATURE = 0.05  # cosines lie in [-1, 1]: 1 / 20, the scale of sentence-transformers' ranking loss

    def __init__(self, config: HeadConfig):
        Head.__init__(self, config)
        self.register_buffer("label_vectors", torch.zeros(len(config.labels), config.input_dim))

    @property
    def reads(self) -> str:
        return "task_embedding" if self.config.task_path else "sentence_embedding"

    def forward(self, features: torch.Tensor, shape_ids: torch.Tensor | None = None) -> torch.Tensor:
        unit = nn.functional.normalize(features, p=2, dim=-1)  # (B, H)
        return unit @ self.label_vectors.to(unit.dtype).T  # (B, C) cosines


class TokenClassificationHead(Head):
    """Token states [+ word-shape embedding] -> dropout -> [hidden layer + GELU + dropout] -> BIO logits (B, T, C).

    Words are labelled on their first sub-token. Without ``hidden_dim`` the head is one linear layer,
    with the same parameter names as before, so models saved that way still load. With ``crf`` the loss is
    the CRF's negative log-likelihood over each sentence's words and decoding is its Viterbi path.
    """

    reads = "token_embeddings"

    def __init__(self, config: HeadConfig):
        super().__init__(config)
        self.dropout = nn.Dropout(config.dropout)
        width = self._add_shapes(config)
        self.hidden: nn.Module = nn.Identity()
        if config.hidden_dim:
            self.hidden = nn.Sequential(nn.Linear(width, config.hidden_dim), nn.GELU(), nn.Dropout(config.dropout))
            width = config.hidden_dim
        self.classifier = nn.Linear(width, len(config.labels))
        self._add_crf(config)

    def _add_shapes(self, config: HeadConfig) -> int:
        """The shape embedding when configured (its padding row stays zero, like padding states); returns the
        width the head's first layer reads."""
        if config.word_shape_dim:
            self.shapes = nn.Embedding(len(SHAPES), config.word_shape_dim, padding_idx=NO_SHAPE)
        return config.input_dim + config.word_shape_dim

    def _add_crf(self, config: HeadConfig) -> None:
        self.crf = BioCRF(config.labels) if config.crf else None

    def inputs(self, features: torch.Tensor, shape_ids: torch.Tensor | None) -> torch.Tensor:
        """(B, T, H) token states, with the shape embedding (B, T, S) appended when configured, after dropout."""
        if self.config.word_shape_dim:
            if shape_ids is None:
                raise ValueError("this head reads word shapes: pass the shape_ids the model's tokenizer adds")
            features = torch.cat([features, self.shapes(shape_ids).to(features.dtype)], dim=-1)
        return self.dropout(features)

    def forward(self, features: torch.Tensor, shape_ids: torch.Tensor | None = None) -> torch.Tensor:
        return self.classifier(self.hidden(self.inputs(features, shape_ids)))

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if self.crf is None:
            return super().loss(logits, labels)
        keep = labels != IGNORE_INDEX  # (B, T): each word's first sub-token
        rows = keep.any(dim=1)  # a sentence whose words were all cut off has nothing to score
        emissions, mask = _left_packed(logits[rows].float(), keep[rows])
        tags, _ = _left_packed(labels[rows].unsqueeze(-1), keep[rows])
        tags = tags.squeeze(-1).masked_fill(~mask, 0)  # the CRF indexes every position, masked or not
        return self.crf.loss(emissions, tags, mask)  # the word-weighted mean negative log-likelihood

    def decode(self, logits: torch.Tensor, items: Sequence[Tokenized], texts: Sequence[str]) -> list[list[dict]]:
        # One max over the whole batch, then plain lists: a tiny torch op per word made decoding cost
        # as much as the encoder's forward pass in `predict`.
        if self.crf is None:
            best = logits.argmax(dim=-1)  # (B, T)
            probs = logits.float().softmax(dim=-1)  # (B, T, C)
        else:
            best, probs = self._viterbi(logits.float(), items, with_marginals=True)
        scores = probs.gather(-1, best.unsqueeze(-1)).squeeze(-1)  # (B, T)
        scores, best = scores.tolist(), best.tolist()
        return [
            self._entities(scores[row], best[row], item, text)
            for row, (item, text) in enumerate(zip(items, texts, strict=True))
        ]

    def best_tags(self, logits: torch.Tensor, items: Sequence[Tokenized]) -> torch.Tensor:
        """(B, T) tag ids, read at each word's first sub-token: the arg-max, or the CRF's Viterbi path."""
        return logits.argmax(dim=-1) if self.crf is None else self._viterbi(logits.float(), items)[0]

    def best_labels(self, logits: torch.Tensor, items: Sequence[Tokenized]) -> list[dict[int, str]]:
        """Per row, word index -> its tag name, for every word that has a sub-token (words cut off by truncation
        are absent): the one place logits become word tags outside ``decode``."""
        best = self.best_tags(logits, items).tolist()  # (B, T)
        return [{word: self.labels[best[row][position]] for word, position in first_subtokens(item.word_ids).items()}
                for row, item in enumerate(items)]

    def _viterbi(self, logits: torch.Tensor, items: Sequence[Tokenized], with_marginals: bool = False
                 ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(B, T) tag ids: the CRF's best path over each sentence's words, and with ``with_marginals`` (B, T, C)
        the CRF's marginal tag probabilities (a backward pass: only decoding needs them, for entity scores), both
        placed at the first sub-tokens (zeros elsewhere)."""
        pairs = [(row, at) for row, item in enumerate(items) for at in first_subtokens(item.word_ids).values()]
        first = torch.zeros(logits.shape[:2], dtype=torch.bool)
        first[[row for row, _ in pairs], [at for _, at in pairs]] = True  # one op, not one per row: 4 ms less / 1,000
        best = torch.zeros(logits.shape[:2], dtype=torch.long)
        probs = torch.zeros(logits.shape) if with_marginals else None
        rows = first.any(dim=1)
        if rows.any():
            emissions, mask = _left_packed(logits[rows], first[rows])
            paths = self.crf.decode(emissions, mask)
            best[rows] = best[rows].masked_scatter(first[rows], torch.tensor([t for p in paths for t in p]))
            if with_marginals:
                marginals = self.crf.marginals(emissions, mask)[mask]  # (words, C), in the same order
                probs[rows] = probs[rows].masked_scatter(first[rows].unsqueeze(-1), marginals)
        return best, probs

    def _entities(self, scores: list[float], best: list[int], item: Tokenized, text: str) -> list[dict]:
        words = word_spans(item)
        first = first_subtokens(item.word_ids)
        labelled = [(words[word], self.labels[best[token]], scores[token]) for word, token in sorted(first.items())]
        return bio_to_entities(labelled, text)


def _left_packed(values: torch.Tensor, keep: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, T, C) values at the ``keep`` (B, T) positions, moved to the front of each row in order:
    (B, W, C) and its (B, W) mask, W = the most kept positions in a row."""
    counts = keep.sum(dim=1)  # (B,)
    width = int(counts.max()) if counts.numel() else 0
    order = torch.argsort((~keep).to(torch.int8), dim=1, stable=True)[:, :width]  # kept positions first
    packed = values.gather(1, order.unsqueeze(-1).expand(-1, -1, values.shape[-1]))
    return packed, torch.arange(width)[None, :] < counts[:, None]


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
        width = self._add_shapes(config)
        self.conv = nn.Conv1d(width, channels, self.KERNEL, padding=self.KERNEL // 2)
        self.activation = nn.GELU()
        self.classifier = nn.Linear(width + channels, len(config.labels))
        self._add_crf(config)

    def forward(self, features: torch.Tensor, shape_ids: torch.Tensor | None = None) -> torch.Tensor:
        states = self.inputs(features, shape_ids)  # (B, T, H [+ S])
        window = self.activation(self.conv(states.transpose(1, 2))).transpose(1, 2)  # (B, T, channels)
        return self.classifier(torch.cat([states, self.dropout(window)], dim=-1))  # (B, T, C)
