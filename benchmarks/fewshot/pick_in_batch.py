"""How mtst's few-shot branch training got its settings (mtst.training.few_shot_branch): on GoEmotions, none of the
benchmark's datasets, so the benchmark's numbers are not tuned on. Single-label rows of the 4-way sentiment groups
("ge4") and of the 8 most frequent emotions but neutral ("ge8"); 3 draws of 8 or 16 per class from train, 1,000 dev
rows scored.

    .venv/bin/python -m benchmarks.fewshot.pick_in_batch ge8 8 '[{"lr": 3e-4, "batch": 16, "epochs": 10}]'
    .venv/bin/python -m benchmarks.fewshot.pick_in_batch ge4 8 '[{"recipe": "pairs"}, {"recipe": "frozen"}]'
    .venv/bin/python -m benchmarks.fewshot.pick_in_batch ge4 16 '[{"anchors": true}, {"recipe": "library"}]'

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
from mtst.training import few_shot_branch
from mtst.training.few_shot import fit_few_shot

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
    if recipe == "library":  # fit_few_shot(method="contrastive") as shipped: the names, then mtst's head
        fit = fit_few_shot(model, "task", texts, labels, method="contrastive", seed=seed)
        predicted = [row["task"]["label"] for row in model.predict(scored.texts, tasks=["task"], batch_size=64)]
        return 100 * float(np.mean(np.asarray(predicted) == np.asarray(scored.labels))), fit.seconds
    if recipe == "pairs":
        contrastive.train_branch(model, texts, labels, seed, bf16=True)
    elif recipe == "in-batch":
        names = sorted(set(labels))
        with mock.patch.multiple(few_shot_branch, LR=setting.get("lr", few_shot_branch.LR),
                                 BATCH_SIZE=setting.get("batch", few_shot_branch.BATCH_SIZE),
                                 EPOCHS=setting.get("epochs", few_shot_branch.EPOCHS)):
            few_shot_branch.train_branch(model, texts, labels, names if setting.get("anchors") else None, names,
                                         seed, bf16=True)
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
