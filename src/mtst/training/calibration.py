"""Calibrated scores for sentence heads: temperature scaling fitted on dev data, and expected calibration error.

Temperature scaling (Guo et al., 2017) divides a head's logits by one number T > 0 before the softmax. It is
fitted by minimising the negative log-likelihood of the dev labels over log T (a golden-section search: the NLL
is convex in 1 / T, so unimodal in log T). Only decoding reads T (``Head.temperature``): logits, the arg-max and
so every accuracy stay as they were, and every runtime applies it because they share the heads' decoding.
A per-head ``threshold`` (off by default) makes decoding answer ``"label": None`` below that probability.

Expected calibration error: 15 equal-width confidence bins over (0, 1]; the support-weighted mean of
|accuracy - mean confidence| per bin, where confidence is the top probability and a row is correct when its
arg-max is the gold label.
"""

from __future__ import annotations

import math

import torch

from mtst.data.readers import Examples
from mtst.errors import MtstError
from mtst.model.devices import model_device, to_device
from mtst.model.multitask import MultiTaskModel
from mtst.model.tasks import task_type

BINS = 15
LOG_T_RANGE = (-7.0, 5.0)  # T from ~0.001 (zero-shot cosines) to ~150


def expected_calibration_error(probs: torch.Tensor, gold: torch.Tensor, bins: int = BINS) -> float:
    """ECE in [0, 1] of (N, C) probabilities against (N,) gold label ids."""
    if len(gold) == 0:
        raise MtstError("expected calibration error needs at least one example")
    confidence, best = probs.float().max(dim=-1)  # (N,), (N,)
    correct = (best == gold).float()
    bin_of = (confidence * bins).ceil().clamp(1, bins).long() - 1  # (0, 1/bins] -> bin 0, ...
    total = 0.0
    for index in range(bins):
        members = bin_of == index
        if members.any():
            total += float(members.sum()) * abs(float(correct[members].mean() - confidence[members].mean()))
    return total / len(gold)


def nll(logits: torch.Tensor, gold: torch.Tensor, temperature: float) -> float:
    """Mean negative log-likelihood of softmax(logits / temperature)."""
    return float(torch.nn.functional.cross_entropy(logits.double() / temperature, gold))


def fit_temperature(logits: torch.Tensor, gold: torch.Tensor, iterations: int = 100) -> float:
    """The T > 0 minimising the NLL of softmax(logits / T) on (N, C) logits and (N,) gold ids."""
    low, high = LOG_T_RANGE
    ratio = (math.sqrt(5) - 1) / 2
    a, b = high - ratio * (high - low), low + ratio * (high - low)
    fa, fb = nll(logits, gold, math.exp(a)), nll(logits, gold, math.exp(b))
    for _ in range(iterations):
        if fa <= fb:
            high, b, fb = b, a, fa
            a = high - ratio * (high - low)
            fa = nll(logits, gold, math.exp(a))
        else:
            low, a, fa = a, b, fb
            b = low + ratio * (high - low)
            fb = nll(logits, gold, math.exp(b))
    return math.exp((low + high) / 2)


def sentence_logits(model: MultiTaskModel, task: str, texts: list[str], batch_size: int = 64) -> torch.Tensor:
    """(N, C) float32 logits of a sentence head, in input order, from the model's forward pass."""
    items = model.tokenizer(texts)
    rows: list[torch.Tensor] = [torch.empty(0)] * len(items)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for indices, features in model.tokenizer.sorted_batches(items, batch_size):
                logits = model(to_device(features, model_device(model)), tasks=[task], embedding=False)["logits"]
                for row, index in enumerate(indices):
                    rows[index] = logits[task][row].float().cpu()
    finally:
        model.train(was_training)
    return torch.stack(rows)


def calibrate(model: MultiTaskModel, task: str, examples: Examples, threshold: float | None = None,
              batch_size: int = 64) -> dict[str, float]:
    """Fit ``task``'s temperature on ``examples`` (dev data, not test) and store it, with ``threshold`` when given,
    in the model's head config (``model.save`` keeps both). Returns the temperature and the ECE (0-1) and NLL
    before and after."""
    config = model.config.heads.get(task)
    if config is None:
        raise MtstError(f"task '{task}' is not in the model; its tasks are: {', '.join(model.tasks) or 'none'}")
    kind = task_type(config.type)
    if kind.token_level or not kind.predicts:
        raise MtstError(f"task '{task}' is a {config.type} task; calibration is for sentence heads")
    labels = model.heads[task].labels
    unknown = sorted(set(examples.labels) - set(labels))
    if unknown:
        raise MtstError(f"task '{task}': gold labels {unknown} are not among the model's labels {labels}")
    if len(examples) < 2:
        raise MtstError(f"task '{task}': calibration needs dev examples, got {len(examples)}")
    logits = sentence_logits(model, task, list(examples.texts), batch_size)
    gold = torch.tensor([labels.index(label) for label in examples.labels])
    before = model.heads[task].temperature
    fitted = fit_temperature(logits, gold)
    result = {"temperature_before": before, "temperature": fitted, "examples": float(len(gold)),
              "ece_before": expected_calibration_error((logits / before).softmax(dim=-1), gold),
              "ece_after": expected_calibration_error((logits / fitted).softmax(dim=-1), gold),
              "nll_before": nll(logits, gold, before), "nll_after": nll(logits, gold, fitted)}
    config.temperature = fitted
    if threshold is not None:
        config.threshold = threshold
    return result


def answers_ece(answers: list[dict], gold: list[str], labels: list[str]) -> float:
    """ECE in percent of decoded sentence answers (their ``distribution``) against gold label names; a gold label
    the model lacks counts as wrong."""
    probs = torch.tensor([[answer["distribution"][label] for label in labels] for answer in answers])
    ids = torch.tensor([labels.index(label) if label in labels else -1 for label in gold])
    return 100 * expected_calibration_error(probs, ids)
