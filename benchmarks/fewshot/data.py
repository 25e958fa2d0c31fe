"""The three datasets (train part to draw from, scored part) and the seeded draws every method shares.

AG News: only test.csv exists here, cut 80/10/10 (seed 13) exactly as benchmarks/quality cuts it; draws come from
its train part, scores from its test part. SST-2: draws from GLUE train.tsv, scores on dev.tsv. SST-5: draws from
stsa.fine.train, scores on stsa.fine.test (each folder's SOURCE.md has the files and label names).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from benchmarks.common import DATA, source
from mtst.errors import MtstError

AG_NEWS_DESCRIPTIONS = {  # one generic line per label, written without looking at the data
    "World": "news about politics, countries, conflicts and world events",
    "Sports": "news about games, teams, athletes and competitions",
    "Business": "news about companies, markets, the economy and money",
    "Sci/Tech": "news about science, technology, computers and the internet",
}
SST5_LABELS = ("very negative", "negative", "neutral", "positive", "very positive")  # labels 0..4


@dataclass(frozen=True)
class Split:
    texts: list[str]
    labels: list[str]


@dataclass(frozen=True)
class Dataset:
    name: str
    labels: tuple[str, ...]  # in the zero-shot head's order
    train: Split  # what the draws come from
    test: Split  # what every method is scored on
    descriptions: tuple[str, ...] | None = None


def _ag_news() -> Dataset:
    from benchmarks.quality.experiments import task_specs
    from mtst.data.sources import TaskData
    from mtst.data.splits import read_task_splits

    parts = read_task_splits("topic", "sentence_classification",
                             TaskData.model_validate(task_specs()["topic"]["data"]))
    train, test = (Split(parts[name].texts, parts[name].labels) for name in ("train", "test"))
    return Dataset("ag_news", tuple(AG_NEWS_DESCRIPTIONS), train, test, tuple(AG_NEWS_DESCRIPTIONS.values()))


def _sst2() -> Dataset:
    from mtst.data.readers import read_examples

    def read(file: str) -> Split:
        found = read_examples(source(f"sst2/{file}", "tsv", text_column="sentence", label_column="label",
                                     label_map={"0": "negative", "1": "positive"}), token=False)
        return Split([text.strip() for text in found.texts], found.labels)

    return Dataset("sst2", ("negative", "positive"), read("train.tsv"), read("dev.tsv"))


def _sst5() -> Dataset:
    def read(file: str) -> Split:  # "<label 0-4> <sentence>" per line: no mtst reader has this format
        rows = [line.split(" ", 1) for line in (DATA / "sst5" / file).read_text(encoding="utf-8").splitlines()]
        return Split([text.strip() for _, text in rows], [SST5_LABELS[int(label)] for label, _ in rows])

    return Dataset("sst5", SST5_LABELS, read("stsa.fine.train"), read("stsa.fine.test"))


DATASETS = {"ag_news": _ag_news, "sst2": _sst2, "sst5": _sst5}


def draw(labels: Sequence[str], shots: int, seed: int) -> list[int]:
    """``shots`` row indices per class of ``labels``, shuffled; the same for a seed whatever the method. A seed's
    smaller draws are subsets of its larger ones (the first ``shots`` of each class's permutation)."""
    rng, labels = np.random.default_rng(seed), np.asarray(labels)
    rows = []
    for name in sorted(set(labels.tolist())):
        pool = np.flatnonzero(labels == name)
        if len(pool) < shots:
            raise MtstError(f"class '{name}' has {len(pool)} rows, fewer than {shots} shots; ask for fewer --shots")
        rows += rng.permutation(pool)[:shots].tolist()
    return rng.permutation(rows).tolist()
