"""Experiment "features": the untouched encoder as a fixed feature extractor (nothing trained in it).

Sentence tasks: the normalised mean-pooled embedding -> scikit-learn logistic regression (C picked on dev)
or nearest centroid. NER: the token state of each word's first sub-token -> logistic regression per token.
Embeddings are cached as .npy under ``.cache/features`` (no pickle), so re-running only refits.
"""

from __future__ import annotations

import numpy as np
import torch
from common import CACHE, MAX_SEQ_LENGTH, Examples, Timer, sts_spearman, task_splits
from seqeval.metrics import f1_score
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import NearestCentroid

from mtst.model.multitask import MultiTaskModel
from mtst.model.spans import first_subtokens
from mtst.model.tokenization import length_sorted_batches

FEATURES = CACHE / "features"
C_GRID = (0.1, 1.0, 10.0)


def _cached(name: str, compute) -> np.ndarray:
    path = FEATURES / f"{name}.npy"
    if path.exists():
        return np.load(path, allow_pickle=False)
    array = compute()
    FEATURES.mkdir(parents=True, exist_ok=True)
    np.save(path, array, allow_pickle=False)
    return array


@torch.inference_mode()
def word_vectors(model: MultiTaskModel, sentences: list[list[str]], batch_size: int = 64) -> np.ndarray:
    """One row per word (all sentences concatenated): the first sub-token's state, (W, H).
    Words lost to truncation get a zero row."""
    items = model.tokenizer(sentences, is_split_into_words=True)
    per_sentence: list[np.ndarray] = [None] * len(items)  # type: ignore[list-item]
    hidden = model.config.encoder.hidden_size
    for indices in length_sorted_batches([len(item.input_ids) for item in items], batch_size):
        batch = model.tokenizer.collate([items[i] for i in indices])
        states = model.encoder(batch["input_ids"], batch["attention_mask"]).float().numpy()  # (B, T, H)
        for row, index in enumerate(indices):
            rows = np.zeros((len(sentences[index]), hidden), dtype=np.float32)
            for word, position in first_subtokens(items[index].word_ids).items():
                rows[word] = states[row, position]
            per_sentence[index] = rows
    return np.concatenate(per_sentence)


def _fit_best(train_x, train_y, dev_x, dev_y, seed: int) -> tuple[LogisticRegression, float]:
    """Logistic regression with C chosen on dev accuracy."""
    best, best_acc = None, -1.0
    for c in C_GRID:
        clf = LogisticRegression(C=c, max_iter=2000, random_state=seed).fit(train_x, train_y)
        acc = float((clf.predict(dev_x) == np.asarray(dev_y)).mean())
        if acc > best_acc:
            best, best_acc = clf, acc
    return best, best_acc


def _sentence_task(model: MultiTaskModel, task: str, seed: int) -> dict[str, float]:
    splits = task_splits(task)
    x = {name: _cached(f"{task}-{name}-{len(ex)}",
                       lambda ex=ex: model.encode(ex.texts, batch_size=64, normalize=True))
         for name, ex in splits.items()}
    y = {name: np.asarray(ex.labels) for name, ex in splits.items()}
    clf, _ = _fit_best(x["train"], y["train"], x["dev"], y["dev"], seed)
    centroid = NearestCentroid().fit(x["train"], y["train"])
    return {
        f"{task}/accuracy": round(100 * float((clf.predict(x["test"]) == y["test"]).mean()), 3),
        f"{task}/accuracy_centroid": round(100 * float((centroid.predict(x["test"]) == y["test"]).mean()), 3),
        f"{task}/logreg_C": clf.C,
    }


def _flat_tags(examples: Examples) -> np.ndarray:
    return np.asarray([tag for tags in examples.labels for tag in tags])


def _unflatten(flat: np.ndarray, examples: Examples) -> list[list[str]]:
    out, start = [], 0
    for words in examples.texts:
        out.append([str(tag) for tag in flat[start : start + len(words)]])
        start += len(words)
    return out


def _ner_task(model: MultiTaskModel, seed: int) -> dict[str, float]:
    splits = task_splits("ner")
    x = {name: _cached(f"ner-{name}-{len(ex)}", lambda ex=ex: word_vectors(model, ex.texts))
         for name, ex in splits.items()}
    y = {name: _flat_tags(ex) for name, ex in splits.items()}
    clf, _ = _fit_best(x["train"], y["train"], x["dev"], y["dev"], seed)
    centroid = NearestCentroid().fit(x["train"], y["train"])
    test = splits["test"]
    return {
        "ner/f1": round(100 * float(f1_score(test.labels, _unflatten(clf.predict(x["test"]), test))), 3),
        "ner/f1_centroid": round(100 * float(f1_score(test.labels, _unflatten(centroid.predict(x["test"]), test))), 3),
        "ner/logreg_C": clf.C,
    }


def run_features(seed: int) -> dict:
    """All three tasks on frozen embeddings + the untouched model's STS-B Spearman."""
    model = MultiTaskModel.from_backbone(max_seq_length=MAX_SEQ_LENGTH)
    metrics: dict[str, float] = {}
    with Timer() as timer:
        metrics["sts/spearman"] = round(sts_spearman(model), 3)
        for task in ("topic", "sentiment"):
            metrics.update(_sentence_task(model, task, seed))
        metrics.update(_ner_task(model, seed))
    return {"metrics": metrics, "wall_s": round(timer.seconds, 1),
            "train_sizes": {task: len(task_splits(task)["train"]) for task in ("topic", "sentiment", "ner")}}
