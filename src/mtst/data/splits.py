"""Deterministic train/dev/test splits of one file, and label sets (inferred, checked)."""

from __future__ import annotations

import random
from collections.abc import Sequence

from mtst.data.pairs import read_pair_examples
from mtst.data.readers import Examples, read_all, read_examples, take
from mtst.data.sources import DataSource, SplitSpec, TaskData
from mtst.errors import MtstError
from mtst.model.tasks import task_type

SPLITS = ("train", "dev", "test")


def _stratified(order: list[int], labels: list) -> list[int]:
    """``order`` interleaved by label: each example keyed by its place in its label's shuffled run (rank / run
    length), so every stretch of the result holds each label in about its share, and each label's first example
    comes first (train is cut first, so a label seen once lands in train)."""
    if not all(isinstance(label, str) for label in labels):
        raise MtstError("split.stratify is for sentence labels (one label per example); remove it for this task")
    runs: dict[str, list[int]] = {}
    for index in order:
        runs.setdefault(labels[index], []).append(index)
    key = {index: rank / len(run) for run in runs.values() for rank, index in enumerate(run)}
    return sorted(order, key=key.__getitem__)  # stable: ties keep the shuffled order


def split_examples(examples: Examples, spec: SplitSpec, given: tuple[str, ...] = ()) -> dict[str, Examples]:
    """Shuffle indices with ``spec.seed`` and cut by ratio; each split keeps file order. With ``spec.stratify``,
    every label has about its share of each split.

    A split with ratio 0 is left out; one with a positive ratio gets at least one example. The splits in ``given``
    come from their own files: their cut joins train, so the other splits are those of the plain split.
    """
    order = list(range(len(examples)))
    random.Random(spec.seed).shuffle(order)
    if spec.stratify:
        order = _stratified(order, examples.labels)
    sizes = {name: max(1, round(len(order) * getattr(spec, name))) for name in ("dev", "test") if getattr(spec, name)}
    sizes = {"train": len(order) - sum(sizes.values()), **sizes}
    if sizes["train"] < 1:
        raise MtstError(f"{examples.origins[0].rsplit(':', 1)[0]}: {len(examples)} example(s) are too few to split "
                        f"into {list(sizes)}")
    chunks, start = {}, 0
    for name, size in sizes.items():
        chunks[name] = order[start : start + size]
        start += size
    for name in given:
        chunks["train"] += chunks.pop(name, [])
    return {name: take(examples, sorted(chunk)) for name, chunk in chunks.items()}


def read_task_splits(name: str, head_type: str, data: TaskData) -> dict[str, Examples]:
    """The configured splits of task ``name``, keyed among "train", "dev", "test"."""
    kind = task_type(head_type)
    words = kind.token_level

    def read(source: DataSource, whole: bool) -> Examples:  # whole: max_examples applies per split, later
        if kind.example == "pair":
            return read_pair_examples(source.model_copy(update={"max_examples": None}) if whole else source,
                                      scored=kind.scored)
        if whole:
            return read_all(source, words, kind.multi_label)
        return read_examples(source, words, kind.multi_label)

    try:
        if data.source is not None:
            given = {split: read(source, whole=False) for split in ("dev", "test") if (source := getattr(data, split))}
            parts = split_examples(read(data.source, whole=True), data.split, tuple(given))
            limit = data.source.max_examples
            parts = {split: take(part, range(min(len(part), limit or len(part)))) for split, part in parts.items()}
            return {**parts, **given}
        return {split: read(source, whole=False) for split in SPLITS if (source := getattr(data, split))}
    except MtstError as exc:
        raise MtstError(f"task '{name}': {exc}") from exc


def infer_labels(examples: Examples, head_type: str) -> list[str]:
    """The task type's label names for this data (``TaskType.infer_labels``); pair tasks: none (their labels are
    scores)."""
    kind = task_type(head_type)
    labels = kind.infer_labels(examples.labels)
    if kind.predicts and len(labels) < 2:
        where = examples.origins[0].rsplit(":", 1)[0] if examples.origins else "the training data"
        raise MtstError(f"{where}: found only the label(s) {labels}; a classifier needs at least two")
    return labels


def check_labels(examples: Examples, labels: Sequence[str]) -> None:
    """Every example's label (or tag) must be in ``labels``."""
    known = set(labels)
    for label, origin in zip(examples.labels, examples.origins, strict=True):
        for name in label if isinstance(label, list) else [label]:
            if name not in known:
                raise MtstError(f"{origin}: label '{name}' not in the label set {list(labels)}")
