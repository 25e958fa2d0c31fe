"""Shared pieces of the quality benchmark: the three tasks, STS-B, evaluation on test splits, result files.

Every run writes one JSON (``results/<experiment>/<variant>-seed<k>.json``) and is skipped when that file
exists, so an interrupted ``run.py`` resumes where it stopped. The data are the project's real files in
``../shared/data`` (override with MTST_DATA_DIR); they are never copied into the repository.
"""

from __future__ import annotations

import csv
import json
import os
import platform
import random
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr
from seqeval.metrics import f1_score

from mtst.data.readers import Examples
from mtst.data.splits import read_task_splits, token_task
from mtst.data.task_encoding import encode_task
from mtst.model.multitask import MultiTaskModel
from mtst.model.spans import first_subtokens
from mtst.training.config import TaskSpec

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
RESULTS = HERE / "results"
CACHE = HERE / ".cache"  # ignored by git: embeddings, tokenised splits, trained run directories
DATA = Path(os.environ.get("MTST_DATA_DIR", REPO.parent / "shared" / "data")).resolve()
MAX_SEQ_LENGTH = 128  # AG News descriptions reach ~100 tokens; SST-2 and CoNLL sentences fit easily
THREADS = int(os.environ.get("MTST_BENCH_THREADS", "2"))

# Subsample sizes of the training sets (the machine has 2 shared cores; see docs/training-guide.md).
TRAIN_SIZES = {"topic": 6080, "sentiment": 8000, "ner": 4000}

MAIN_METRIC = {"topic": "accuracy", "sentiment": "accuracy", "ner": "f1"}


def task_specs(train_sizes: dict[str, int] | None = None) -> dict[str, dict]:
    """The three tasks as TrainConfig ``tasks`` entries (plain dicts, so they go into YAML/JSON as-is)."""
    sizes = {**TRAIN_SIZES, **(train_sizes or {})}
    data = str(DATA)
    return {
        # AG News: only the 7,600-row test file exists here -> deterministic 80/10/10 split (seed 13);
        # the text is the description column (2); the title is not used.
        "topic": {
            "name": "topic", "type": "sentence_classification",
            "data": {"source": {"path": f"{data}/ag_news/test.csv", "format": "csv", "header": False,
                                "text_column": 2, "label_column": 0, "max_examples": None,
                                "label_map": {"1": "World", "2": "Sports", "3": "Business", "4": "Sci/Tech"}},
                     "split": {"train": 0.8, "dev": 0.1, "test": 0.1, "seed": 13}},
            "_train_limit": sizes["topic"],
        },
        # SST-2: train subsample (first N phrases of GLUE train.tsv); dev.tsv is both dev and the reported test.
        "sentiment": {
            "name": "sentiment", "type": "sentence_classification",
            "data": {"train": {"path": f"{data}/sst2/train.tsv", "format": "tsv", "text_column": "sentence",
                               "label_column": "label", "max_examples": sizes["sentiment"],
                               "label_map": {"0": "negative", "1": "positive"}},
                     "dev": {"path": f"{data}/sst2/dev.tsv", "format": "tsv", "text_column": "sentence",
                             "label_column": "label", "label_map": {"0": "negative", "1": "positive"}},
                     "test": {"path": f"{data}/sst2/dev.tsv", "format": "tsv", "text_column": "sentence",
                              "label_column": "label", "label_map": {"0": "negative", "1": "positive"}}},
        },
        # STS-B pairs (issue 17): train the embedding on sts-train; dev for the learning curve; the harness reports
        # STS-B test through sts/spearman for every model anyway.
        "sts": {
            "name": "sts", "type": "scored_pairs",
            "data": {split: {**sts_source(split), "max_examples": None} for split in ("train", "dev")},
        },
        # CoNLL-2003: train subsample (first N sentences), valid for dev, the full test set for F1.
        "ner": {
            "name": "ner", "type": "token_classification",
            "data": {"train": {"path": f"{data}/conll2003/train.txt", "format": "conll",
                               "max_examples": sizes["ner"]},
                     "dev": {"path": f"{data}/conll2003/valid.txt", "format": "conll", "max_examples": 1000},
                     "test": {"path": f"{data}/conll2003/test.txt", "format": "conll"}},
        },
    }


def clean_spec(spec: dict) -> dict:
    """A task dict without the harness-only keys (those starting with "_")."""
    return {key: value for key, value in spec.items() if not key.startswith("_")}


def sts_source(split: str = "test") -> dict:
    return {"path": f"{DATA}/stsb/sts-{split}.csv", "format": "tsv", "header": False,
            "text_column": 5, "text_pair_column": 6, "label_column": 4}


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def setup_threads() -> None:
    torch.set_num_threads(THREADS)


# ---- data -------------------------------------------------------------------------------
_SPLIT_CACHE: dict[str, dict[str, Examples]] = {}


def task_splits(name: str, train_sizes: dict[str, int] | None = None) -> dict[str, Examples]:
    """train/dev/test Examples of one task (topic's train cut to its size after the split)."""
    spec = task_specs(train_sizes)[name]
    key = json.dumps(spec, sort_keys=True)
    if key not in _SPLIT_CACHE:
        task = TaskSpec.model_validate(clean_spec(spec))
        splits = read_task_splits(task.name, task.type, task.data)
        limit = spec.get("_train_limit")
        if limit is not None and len(splits["train"]) > limit:
            train = splits["train"]
            splits["train"] = Examples(train.texts[:limit], train.labels[:limit], train.origins[:limit])
        _SPLIT_CACHE[key] = splits
    return _SPLIT_CACHE[key]


def read_sts_test() -> tuple[list[str], list[str], list[float]]:
    """STS-B test: tab-separated, no header, QUOTE_NONE; score in column 4, sentences in 5 and 6."""
    first, second, scores = [], [], []
    with open(DATA / "stsb" / "sts-test.csv", encoding="utf-8", newline="") as handle:
        for row in csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE):
            first.append(row[5])
            second.append(row[6])
            scores.append(float(row[4]))
    return first, second, scores


# ---- evaluation -------------------------------------------------------------------------
def sts_spearman(model: MultiTaskModel, limit: int | None = None) -> float:
    """STS-B test Spearman x 100 of the cosine between mean-pooled embeddings (first ``limit`` pairs)."""
    first, second, scores = (column[:limit] for column in read_sts_test())
    unique = sorted(set(first) | set(second))
    vectors = model.encode(unique, batch_size=64, normalize=True)  # (U, H), unit length
    index = {text: i for i, text in enumerate(unique)}
    a = vectors[[index[t] for t in first]]
    b = vectors[[index[t] for t in second]]
    cosine = (a * b).sum(axis=1)
    return float(spearmanr(cosine, scores).statistic * 100)


@torch.inference_mode()
def task_logits(model: MultiTaskModel, task: str, examples: Examples, batch_size: int = 64) -> tuple[list, list]:
    """(encoded items, logits per example): (C,) for sentence tasks, (T, C) for token tasks."""
    head = model.heads[task]
    encoded = encode_task(model.tokenizer, examples, head.labels, head.config.type)
    was_training = model.training
    model.eval()
    logits: list = [None] * len(encoded)
    for indices, batch in model.tokenizer.sorted_batches(encoded.items, batch_size):
        out = model(batch, tasks=[task])["logits"][task]
        for row, index in enumerate(indices):
            logits[index] = out[row, : len(encoded.items[index].input_ids)] if out.dim() == 3 else out[row]
    model.train(was_training)
    return encoded.items, logits


def evaluate_task(model: MultiTaskModel, task: str, examples: Examples) -> dict[str, float]:
    """accuracy (sentence tasks) or seqeval entity F1 (token tasks; seqeval's default, conlleval-style matching,
    as every earlier result here) on ``examples``, x 100."""
    head = model.heads[task]
    items, logits = task_logits(model, task, examples)
    if token_task(head.config.type):  # the windowed NER head too
        predicted = []
        for item, row, words in zip(items, logits, examples.texts, strict=True):
            tags = ["O"] * len(words)  # words lost to truncation count as "O"
            best = head.best_tags(row[None], [item])[0].tolist()  # arg-max, or a CRF head's Viterbi path
            for word, position in first_subtokens(item.word_ids).items():
                tags[word] = head.labels[best[position]]
            predicted.append(tags)
        return {"f1": float(f1_score(examples.labels, predicted) * 100)}
    predicted = [head.labels[int(row.argmax())] for row in logits]
    correct = sum(p == g for p, g in zip(predicted, examples.labels, strict=True))
    return {"accuracy": 100.0 * correct / len(examples)}


def evaluate_model(model: MultiTaskModel, tasks: list[str], limit: int | None = None) -> dict[str, float]:
    """Flat ``task/metric`` dict on each task's test split + ``sts/spearman`` (``limit``: first N only, --quick)."""
    metrics: dict[str, float] = {}
    for task in tasks:
        test = task_splits(task)["test"]
        if limit is not None:
            test = Examples(test.texts[:limit], test.labels[:limit], test.origins[:limit])
        for key, value in evaluate_task(model, task, test).items():
            metrics[f"{task}/{key}"] = round(value, 3)
    metrics["sts/spearman"] = round(sts_spearman(model, limit), 3)
    return metrics


# ---- result files -----------------------------------------------------------------------
def result_path(experiment: str, variant: str, seed: int) -> Path:
    return RESULTS / experiment / f"{variant}-seed{seed}.json"


def write_result(path: Path, payload: dict) -> None:
    """Atomic JSON write (temp file, then rename) with the machine it ran on."""
    payload = {**payload, "machine": {"python": platform.python_version(), "torch": torch.__version__,
                                      "threads": torch.get_num_threads(), "cpus": os.cpu_count()}}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(path)


def load_results(experiment: str) -> list[dict]:
    folder = RESULTS / experiment
    return [json.loads(p.read_text(encoding="utf-8")) for p in sorted(folder.glob("*.json"))] if folder.exists() else []


class Timer:
    """Wall-clock seconds of a ``with`` block."""

    def __enter__(self) -> Timer:
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.start
