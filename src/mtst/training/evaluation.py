"""Metrics per task as one flat ``dict[str, float]`` with task-prefixed keys, in percent (0-100).

Sentence tasks: ``task/accuracy`` and ``task/macro_f1`` (scikit-learn). Token tasks: entity-level
``task/precision``, ``task/recall``, ``task/f1`` (seqeval, strict IOB2: an entity counts only when
its type and both boundaries match). ``sts/spearman``: Spearman x 100 of cosine similarity against
gold scores. ``mean/main``: the mean of each task's main metric, the default selection score.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch

from mtst.data.pairs import read_pairs
from mtst.data.readers import Examples
from mtst.data.sources import DataSource
from mtst.data.splits import read_task_splits
from mtst.errors import MtstError
from mtst.model.devices import model_device, to_device
from mtst.model.modes import eval_mode
from mtst.model.multitask import MultiTaskModel
from mtst.model.tasks import spearman, task_type
from mtst.model.windows import stitch, windowed_rows
from mtst.training.config import TrainConfig

logger = logging.getLogger("mtst")

MEAN_KEY = "mean/main"
STS_KEY = "sts/spearman"


def main_metric(task: str, head_type: str) -> str:
    """The one metric that stands for a task (its task type's ``main_metric``): entity F1 for token tasks, Spearman
    for scored pairs, MRR for positive pairs, accuracy otherwise."""
    return f"{task}/{task_type(head_type).main_metric}"


def _predict_labels(model: MultiTaskModel, task: str, examples: Examples, batch_size: int) -> list:
    """Predicted label names per example (``Head.best_labels``); token tasks: one tag per word over the whole
    sentence (a sentence longer than the window is read in overlapping windows and stitched, as ``predict`` does:
    mtst.model.windows), words with no sub-token at all get "O". Runs on the model's device; heads decode CPU
    logits."""
    token = task_type(model.config.heads[task].type).token_level
    head = model.heads[task]
    if token:
        whole = model.tokenizer(examples.texts, is_split_into_words=True, max_length=0)
        items, owners, windows = windowed_rows(whole, model.config.encoder.max_seq_length, None, True, own_row=False)
    else:
        items, windows = model.tokenizer(examples.texts), {}
    logits_of: list = [None] * len(items)  # row -> (C,) or (T_row, C) CPU logits
    device = model_device(model)
    with eval_mode(model), torch.inference_mode():
        for indices, features in model.tokenizer.sorted_batches(items, batch_size):
            out = model(to_device(features, device), tasks=[task], embedding=False)
            for index, row in zip(indices, out["logits"][task].cpu(), strict=True):  # heads decode on the CPU
                logits_of[index] = row
    predictions: list = []
    for index in range(len(examples)):
        if index in windows:
            positions, cuts = windows[index]
            logits, item = stitch(whole[index], cuts, [logits_of[p] for p in positions]), whole[index]
        else:
            logits, item = logits_of[index], items[index]
        (best,) = head.best_labels(logits[None], [item])
        predictions.append([best.get(word, "O") for word in range(len(examples.texts[index]))] if token else best)
    return predictions


def evaluate_task(model: MultiTaskModel, task: str, examples: Examples, batch_size: int = 64) -> dict[str, float]:
    """Metrics of one task on one split, in percent."""
    if task not in model.config.heads:
        raise MtstError(f"task '{task}' is not in the model; its tasks are: {', '.join(model.tasks) or 'none'}")
    if len(examples) == 0:
        raise MtstError(f"task '{task}': no examples to evaluate")
    if batch_size < 1:
        raise MtstError(f"batch_size must be at least 1, got {batch_size}")
    kind = task_type(model.config.heads[task].type)
    if not kind.predicts:
        return evaluate_pairs(model, task, examples, batch_size)
    predicted = _predict_labels(model, task, examples, batch_size)
    gold = examples.labels
    known = set(model.heads[task].labels)
    unknown = {name for label in gold for name in (label if isinstance(label, list) else [label])} - known
    if unknown:  # they can never be predicted, so they count as errors; say so instead of hiding it
        logger.warning("task '%s': gold labels %s are not among the model's labels", task, sorted(unknown))
    return kind.metrics(task, gold, predicted)


def pair_cosines(model: MultiTaskModel, first: list[str], second: list[str], batch_size: int = 64
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Unit embeddings of the first and second sentences, (N, H) each; each unique sentence is encoded once."""
    unique = list(dict.fromkeys(first + second))
    position = {text: i for i, text in enumerate(unique)}
    embeddings = model.encode(unique, batch_size=batch_size, normalize_embeddings=True, convert_to_tensor=True,
                              show_progress_bar=False)  # (U, H)
    return embeddings[[position[text] for text in first]], embeddings[[position[text] for text in second]]


def sts_spearman(model: MultiTaskModel, source: DataSource, batch_size: int = 64) -> float:
    """Spearman x 100 between cosine(emb1, emb2) and the gold scores."""
    first, second, scores, _ = read_pairs(source)
    return spearman(*pair_cosines(model, first, second, batch_size), scores, str(source.path))


def evaluate_pairs(model: MultiTaskModel, task: str, examples: Examples, batch_size: int = 64) -> dict[str, float]:
    """A pair task's metrics (``PairTask.pair_metrics``) from the unit embeddings of both sides."""
    first, second = [a for a, _ in examples.texts], [b for _, b in examples.texts]
    left, right = pair_cosines(model, first, second, batch_size)
    return task_type(model.config.heads[task].type).pair_metrics(task, left, right, second, list(examples.labels))


def evaluate_all(model: MultiTaskModel, config: TrainConfig, split: str = "dev",
                 splits: dict[str, dict[str, Examples]] | None = None) -> dict[str, float]:
    """Every configured task that has ``split`` (+ STS when configured) and ``mean/main``.

    ``splits`` holds data already read (task name -> split name -> Examples) to avoid re-reading files.
    """
    metrics: dict[str, float] = {}
    mains: list[float] = []
    for task in config.tasks:
        if task.name not in model.config.heads:
            raise MtstError(f"task '{task.name}' in the config is not in the model; its tasks are: "
                            f"{', '.join(model.tasks) or 'none'}")
        if model.config.heads[task.name].type != task.type:
            raise MtstError(f"task '{task.name}' is a {task.type} task in the config but a "
                            f"{model.config.heads[task.name].type} head in the model; fix the config's type")
        if splits and task.name in splits:
            data = splits[task.name]
        else:
            data = read_task_splits(task.name, task.type, task.data)
        if split not in data:
            continue
        metrics.update(evaluate_task(model, task.name, data[split], config.evaluation.batch_size))
        mains.append(metrics[main_metric(task.name, model.config.heads[task.name].type)])
    if config.evaluation.sts is not None:
        metrics[STS_KEY] = sts_spearman(model, config.evaluation.sts, config.evaluation.batch_size)
    if not metrics:
        raise MtstError(f"no task in the config has a '{split}' split; configure one or choose another split")
    if mains:
        metrics[MEAN_KEY] = sum(mains) / len(mains)
    return metrics


def markdown_table(metrics: dict[str, float]) -> str:
    """One row per task (key prefix), one column per metric (key suffix), two decimals."""
    rows: dict[str, dict[str, float]] = {}
    columns: list[str] = []
    for key, value in metrics.items():
        task, _, metric = key.rpartition("/")
        rows.setdefault(task or "-", {})[metric] = value
        if metric not in columns:
            columns.append(metric)
    lines = [_row(["task", *columns]), _row(["---"] * (len(columns) + 1))]
    for task, values in rows.items():
        lines.append(_row([task, *(f"{values[c]:.2f}" if c in values else "" for c in columns)]))
    return "\n".join(lines)


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"
