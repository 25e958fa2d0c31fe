"""Task types: what each kind of task is, in one place. Adding a kind is one class here + one TASK_TYPES entry.

A task type owns everything that differs between kinds of task, so no other module compares type names:
    example      what a data row holds: "text" (one label), "words" (one tag per word) or "pair" (two texts)
    head         the head it builds from a HeadConfig (None for pair objectives: they train the embedding path)
    labels       how label names are inferred from data and turned into training targets (ids, tensors)
    metrics      its metrics on gold vs predicted labels, and the one main metric that stands for it
Decoding logits into predictions stays with the head (``Head.decode``, ``Head.best_labels``): it needs the weights.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import nn

from mtst.errors import MtstError
from mtst.model.config import HeadConfig
from mtst.model.heads import (
    IGNORE_INDEX,
    Head,
    MultiLabelHead,
    SentenceClassificationHead,
    TokenClassificationHead,
    WindowedTokenClassificationHead,
    ZeroShotHead,
)
from mtst.model.pair_scoring import PairObjective, own_ranks, spearman
from mtst.model.spans import first_subtokens
from mtst.model.tokenization import Tokenized

Example = Literal["text", "words", "pair"]


class TaskType:
    """Base: a sentence-level classification task. Subclasses override what differs."""

    name: str
    example: Example = "text"
    head: type[Head] | None = SentenceClassificationHead
    main_metric = "accuracy"
    token_options = False  # word_shape_dim / crf: token heads only
    takes_descriptions = False  # label descriptions: zero-shot heads only
    multi_label = False  # a row's label is a list of names (any number of them)

    @property
    def token_level(self) -> bool:
        """Labels are one tag per word, read at each word's first sub-token."""
        return self.example == "words"

    @property
    def predicts(self) -> bool:
        """Has a head that ``predict`` answers (pair objectives only train the embedding)."""
        return self.head is not None

    @property
    def reads(self) -> str:
        """The feature key this task's head (or objective) reads."""
        return self.head.reads if self.head is not None else "sentence_embedding"

    # ---- config and model parts ----------------------------------------------------------
    def check(self, config: HeadConfig) -> None:
        """Raise MtstError when ``config`` asks for something this kind of task does not have."""
        if not self.token_options and (config.crf or config.word_shape_dim):
            raise MtstError(f"crf and word_shape_dim are token-head options; a {self.name} head has neither")
        if self.predicts and len(config.labels) < 2:
            raise MtstError(f"a {self.name} head needs at least 2 labels, got {len(config.labels)}")
        if not self.predicts and config.labels:
            raise MtstError(f"a {self.name} task has no labels (it scores sentence pairs); drop 'labels'")
        if (config.descriptions is not None or config.task_path) and not self.takes_descriptions:
            raise MtstError(f"descriptions and task_path are for zero-shot heads; a {self.name} head learns its "
                            "labels")
        if config.thresholds is not None and (not self.multi_label or len(config.thresholds) != len(config.labels)):
            raise MtstError(f"thresholds are for multi-label heads, one per label: got {len(config.thresholds)} for a "
                            f"{self.name} head with {len(config.labels)} labels")

    def build_head(self, config: HeadConfig) -> Head:
        self.check(config)
        return self.head(config)

    def added(self, model: nn.Module, task: str) -> None:
        """Called once when ``model.add_head`` attaches ``task``, of this type (not on load): most start random."""

    # ---- labels --------------------------------------------------------------------------
    def infer_labels(self, gold: Sequence) -> list[str]:
        """Sorted label names seen in the data."""
        return sorted(set(gold))

    def target(self, label, names: dict[str, int], item: Tokenized):
        """One example's training target: the label's id."""
        return names[label]

    def collate_targets(self, rows: list, features: dict[str, torch.Tensor]) -> torch.Tensor:
        """(B,) label ids."""
        return torch.tensor(rows, dtype=torch.long)

    # ---- metrics -------------------------------------------------------------------------
    def metrics(self, task: str, gold: list, predicted: list) -> dict[str, float]:
        """``task/metric`` -> value in percent."""
        from sklearn.metrics import accuracy_score, f1_score

        return {
            f"{task}/accuracy": 100 * float(accuracy_score(gold, predicted)),
            f"{task}/macro_f1": 100 * float(f1_score(gold, predicted, average="macro", zero_division=0)),
        }


class SentenceClassification(TaskType):
    name = "sentence_classification"


class ZeroShotClassification(TaskType):
    """Labels without examples: the head (heads.ZeroShotHead) scores the cosine of a sentence's embedding with
    each label's text, embedded once by ``model.encode`` when the head is added. A label's text is its name, or
    "name: description" when descriptions are given. Nothing to train (hidden_dim and dropout go unused)."""

    name = "zero_shot_classification"
    head = ZeroShotHead
    takes_descriptions = True
    reads = "sentence_embedding"  # as added; a head that few-shot contrastive training moved reads the task path

    def check(self, config: HeadConfig) -> None:
        super().check(config)
        if config.descriptions is not None and len(config.descriptions) != len(config.labels):
            raise MtstError(f"a {self.name} head needs one description per label: got {len(config.descriptions)} "
                            f"for {len(config.labels)} labels")

    @staticmethod
    def label_texts(config: HeadConfig) -> list[str]:
        """What is embedded for each label: its name, or "name: description"."""
        if config.descriptions is None:
            return list(config.labels)
        return [f"{label}: {text}" for label, text in zip(config.labels, config.descriptions, strict=True)]

    def added(self, model: nn.Module, task: str) -> None:
        """The label matrix (C, H): the unit embeddings of the label texts, from the model's own ``encode``."""
        head = model.heads[task]
        vectors = model.encode(self.label_texts(head.config), normalize_embeddings=True, convert_to_tensor=True,
                               show_progress_bar=False)
        with torch.no_grad():
            head.label_vectors.copy_(vectors.to(head.label_vectors.dtype))


class MultiLabelClassification(TaskType):
    """Any number of labels per text (tags, moderation flags): one sigmoid per label (heads.MultiLabelHead), BCE
    on multi-hot targets; a label is predicted at or above its threshold (``thresholds``, tuned on dev by
    mtst.training.thresholds). A row's label is a list of names. Main metric: macro F1 over the labels."""

    name = "multi_label_classification"
    head = MultiLabelHead
    main_metric = "macro_f1"
    multi_label = True

    def infer_labels(self, gold: Sequence) -> list[str]:
        return sorted({name for names in gold for name in names})

    def target(self, label, names: dict[str, int], item: Tokenized) -> list[float]:
        return [float(name in label) for name in sorted(names, key=names.__getitem__)]  # multi-hot, in id order

    def collate_targets(self, rows: list, features: dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.tensor(rows, dtype=torch.float32)  # (B, C) 0/1

    def metrics(self, task: str, gold: list, predicted: list) -> dict[str, float]:
        """F1 over the multi-hot matrices (N, C): micro (every decision), macro (mean over labels), samples."""
        from sklearn.metrics import f1_score
        from sklearn.preprocessing import MultiLabelBinarizer

        binarizer = MultiLabelBinarizer().fit([*gold, *predicted])
        truth, guess = binarizer.transform(gold), binarizer.transform(predicted)
        return {f"{task}/{average}_f1": 100 * float(f1_score(truth, guess, average=average, zero_division=0))
                for average in ("micro", "macro", "samples")}


class TokenClassification(TaskType):
    """BIO tags per word; entity-level metrics (strict IOB2: type and both boundaries must match)."""

    name = "token_classification"
    example = "words"
    head = TokenClassificationHead
    main_metric = "f1"
    token_options = True

    def infer_labels(self, gold: Sequence) -> list[str]:
        """"O", then B-/I- per entity type (both, even if one is unseen)."""
        kinds = sorted({tag[2:] for tags in gold for tag in tags if tag != "O"})
        return ["O"] + [f"{prefix}-{kind}" for kind in kinds for prefix in ("B", "I")]

    def target(self, label, names: dict[str, int], item: Tokenized) -> list[int]:
        """Per sub-token: a word's first sub-token gets its tag id, every other position IGNORE_INDEX (words cut
        off by truncation vanish)."""
        aligned = [IGNORE_INDEX] * len(item.word_ids)
        for word, position in first_subtokens(item.word_ids).items():
            aligned[position] = names[label[word]]
        return aligned

    def collate_targets(self, rows: list, features: dict[str, torch.Tensor]) -> torch.Tensor:
        """(B, T) tag ids, padded with IGNORE_INDEX."""
        targets = torch.full(features["input_ids"].shape, IGNORE_INDEX, dtype=torch.long)
        for row, ids in enumerate(rows):
            targets[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        return targets

    def metrics(self, task: str, gold: list, predicted: list) -> dict[str, float]:
        from seqeval.metrics import f1_score, precision_score, recall_score
        from seqeval.scheme import IOB2

        options = {"mode": "strict", "scheme": IOB2, "zero_division": 0}
        return {
            f"{task}/precision": 100 * float(precision_score(gold, predicted, **options)),
            f"{task}/recall": 100 * float(recall_score(gold, predicted, **options)),
            f"{task}/f1": 100 * float(f1_score(gold, predicted, **options)),
        }


class WindowedTokenClassification(TokenClassification):
    name = "windowed_token_classification"
    head = WindowedTokenClassificationHead


class PairTask(TaskType):
    """Sentence pairs: an embedding objective instead of a head; metrics from the pairs' cosines."""

    example = "pair"
    head = None
    loss_name: str
    scored: bool  # rows carry a similarity score (else: every pair is a match)

    def build_head(self, config: HeadConfig) -> Head:
        raise MtstError(f"a {self.name} task has no head; it trains the embedding (build_objective)")

    def build_objective(self, config: HeadConfig) -> PairObjective:
        self.check(config)
        return PairObjective(self.loss_name)

    def infer_labels(self, gold: Sequence) -> list[str]:
        return []  # the labels are scores

    def target(self, label, names: dict[str, int], item: Tokenized) -> float:
        return float(label)

    def collate_targets(self, rows: list, features: dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.tensor(rows, dtype=torch.float32)  # (B,) scores

    def metrics(self, task: str, gold: list, predicted: list) -> dict[str, float]:
        raise MtstError(f"a {self.name} task is scored on embeddings: use pair_metrics")

    def pair_metrics(self, task: str, left: torch.Tensor, right: torch.Tensor, second: list[str], gold: list
                     ) -> dict[str, float]:
        """Metrics from the unit embeddings of each pair's two sides (N, H); ``second`` are the second texts."""
        raise NotImplementedError


class ScoredPairs(PairTask):
    """Pairs with a similarity score (STS-style): CoSENT, which only asks that higher-scored pairs get a higher
    cosine than lower-scored ones; scored by Spearman x 100 of cosine against the gold scores."""

    name = "scored_pairs"
    loss_name = "CoSENTLoss"
    scored = True
    main_metric = "spearman"

    def pair_metrics(self, task: str, left: torch.Tensor, right: torch.Tensor, second: list[str], gold: list
                     ) -> dict[str, float]:
        return {f"{task}/spearman": spearman(left, right, gold, f"task '{task}'")}


class PositivePairs(PairTask):
    """Matching pairs (query-passage, duplicates): multiple-negatives ranking, every other second sentence in the
    batch is a negative for a first one. Scored by ranking every second sentence of the split for each first one:
    MRR and recall@1 / @10 of its own (ties count against it)."""

    name = "positive_pairs"
    loss_name = "MultipleNegativesRankingLoss"
    scored = False
    main_metric = "mrr"

    def pair_metrics(self, task: str, left: torch.Tensor, right: torch.Tensor, second: list[str], gold: list
                     ) -> dict[str, float]:
        rank = own_ranks(left, right, second)
        return {f"{task}/mrr": 100 * float((1 / rank).mean()),
                f"{task}/recall@1": 100 * float((rank <= 1).float().mean()),
                f"{task}/recall@10": 100 * float((rank <= 10).float().mean())}


TASK_TYPES: dict[str, TaskType] = {
    task.name: task
    for task in (SentenceClassification(), ZeroShotClassification(), MultiLabelClassification(),
                 TokenClassification(), WindowedTokenClassification(), ScoredPairs(), PositivePairs())
}


def task_type(name: str) -> TaskType:
    """The registered task type called ``name``; a one-line error listing the choices otherwise."""
    found = TASK_TYPES.get(name)
    if found is None:
        raise MtstError(f"unknown task type '{name}'; choose one of {', '.join(TASK_TYPES)}")
    return found
