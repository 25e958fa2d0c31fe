"""How the in-batch recipe's settings were picked (contrastive.IN_BATCH_*): on GoEmotions, none of the benchmark's
datasets, so the benchmark's numbers are not tuned on. Single-label rows of the 4-way sentiment groups ("ge4") and
of the 8 most frequent emotions but neutral ("ge8"); 3 draws of 8 or 16 per class from train, 1,000 dev rows scored.

    .venv/bin/python -m benchmarks.fewshot.pick_in_batch ge8 8 '[{"lr": 3e-4, "batch": 16, "epochs": 10}]'
    .venv/bin/python -m benchmarks.fewshot.pick_in_batch ge4 8 '[{"recipe": "pairs"}, {"recipe": "frozen"}]'

Prints accuracy (mean +/- std over the draws) and training seconds per setting; the runs and what they picked are in
benchmarks/README.md.
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from unittest import mock

import numpy as np
from sklearn.linear_model import LogisticRegression

from benchmarks.common import DATA
from benchmarks.fewshot import contrastive
from benchmarks.fewshot.data import Split, draw

DRAWS = 3
SCORED = 1000


def _read(path, names: list[str]) -> Split:
    rows = [line.rstrip("\n").split("\t") for line in path.read_text(encoding="utf-8").splitlines()]
    single = [(text, names[int(ids)]) for text, ids, _ in rows if "," not in ids]
    return Split([text for text, _ in single], [label for _, label in single])


def goemotions(name: str) -> tuple[Split, Split]:
    """(train, scored): ge4 = the sentiment groups, ge8 = the 8 most frequent emotions but neutral."""
    root = DATA / "goemotions"
    folder = root / "sentiment_group" if name == "ge4" else root
    names = (folder / ("labels.txt" if name == "ge4" else "emotions.txt")).read_text(encoding="utf-8").split()
    train, dev = _read(folder / "train.tsv", names), _read(folder / "dev.tsv", names)
    if name == "ge8":
        keep = {label for label, _ in Counter(train.labels).most_common(9) if label != "neutral"}
        train, dev = (Split(*map(list, zip(*[(t, y) for t, y in zip(s.texts, s.labels, strict=True) if y in keep],
                                           strict=True))) for s in (train, dev))
    chosen = np.random.default_rng(0).permutation(len(dev.texts))[:SCORED]
    return train, Split([dev.texts[i] for i in chosen], [dev.labels[i] for i in chosen])


def fit_and_score(train: Split, scored: Split, shots: int, seed: int, setting: dict) -> tuple[float, float]:
    from mtst import MultiTaskModel

    rows = draw(train.labels, shots, seed)
    texts, labels = [train.texts[i] for i in rows], [train.labels[i] for i in rows]
    model = MultiTaskModel.from_backbone(None, branch_at=contrastive.BRANCH_AT, precision="fp32")
    started = time.perf_counter()
    recipe = setting.get("recipe", "in-batch")
    if recipe == "pairs":
        contrastive.train_branch(model, texts, labels, seed, bf16=True)
    elif recipe == "in-batch":
        with mock.patch.multiple(contrastive, IN_BATCH_LR=setting.get("lr", contrastive.IN_BATCH_LR),
                                 IN_BATCH_SIZE=setting.get("batch", contrastive.IN_BATCH_SIZE),
                                 IN_BATCH_EPOCHS=setting.get("epochs", contrastive.IN_BATCH_EPOCHS)):
            contrastive.train_branch_in_batch(model, texts, labels, seed, bf16=True,
                                              anchors=setting.get("anchors", False))
    head = LogisticRegression(max_iter=1000).fit(contrastive._embed(model, texts), labels)  # "frozen": no training
    seconds = time.perf_counter() - started
    predicted = head.predict(contrastive._embed(model, scored.texts))
    return 100 * float(np.mean(predicted == np.asarray(scored.labels))), seconds


def main(name: str, shots: int, settings: list[dict]) -> None:
    train, scored = goemotions(name)
    for setting in settings:
        results = np.array([fit_and_score(train, scored, shots, seed, setting) for seed in range(DRAWS)])
        print(f"{name} {shots}/class {setting}: {results[:, 0].mean():.1f} +/- {results[:, 0].std():.1f} "
              f"in {results[:, 1].mean():.1f} s", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3]))
