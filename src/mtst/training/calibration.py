"""Calibrated scores for sentence heads: temperature scaling and a confidence curve fitted on dev data, and expected
calibration error.

Temperature scaling (Guo et al., 2017) divides a head's logits by one number T > 0 before the softmax. It is
fitted by minimising the negative log-likelihood of the dev labels over log T (a golden-section search: the NLL
is convex in 1 / T, so unimodal in log T). Only decoding reads T (``Head.temperature``): logits, the arg-max and
so every accuracy stay as they were, and every runtime applies it because they share the heads' decoding.
A per-head ``threshold`` (off by default) makes decoding answer ``"label": None`` below that probability.

Method ``isotonic`` (the default) then fits an isotonic regression (scikit-learn) of "the arg-max is right" on the
top probability after the temperature, stored as knots (``HeadConfig.confidence_curve``); decoding maps each row's
top probability through them and rescales the others to share the rest, keeping the top label on top, so the
arg-max still never moves. One temperature cannot fix a head that is over-confident at some confidences and
under-confident at others (measured on the shipped heads: benchmarks/calibration.py, docs/data-and-evaluation.md
§ Calibration). Vector scaling (a scale and bias per class) was measured too and is not offered: it moved
arg-maxes and calibrated worse.

Expected calibration error: 15 equal-width confidence bins over (0, 1]; the support-weighted mean of
|accuracy - mean confidence| per bin, where confidence is the top probability and a row is correct when its
arg-max is the gold label.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from mtst.data.readers import Examples
from mtst.errors import MtstError
from mtst.model.devices import model_device, to_device
from mtst.model.modes import eval_mode
from mtst.model.multitask import MultiTaskModel
from mtst.model.tasks import task_type

BINS = 15
LOG_T_RANGE = (-7.0, 5.0)  # T from ~0.001 (zero-shot cosines) to ~150
METHODS = ("temperature", "isotonic", "bagged-isotonic")
BAGS, BAGGED_GRID = 50, 101  # bootstrap curves averaged; knots of their mean, evenly spaced over [0, 1]


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


def probabilities_nll(probs: torch.Tensor, gold: torch.Tensor) -> float:
    """Mean negative log-likelihood of (N,) gold ids under (N, C) probabilities."""
    return float(-probs.double().gather(-1, gold[:, None]).clamp_min(1e-12).log().mean())


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


def fit_confidence_curve(probs: torch.Tensor, gold: torch.Tensor) -> list[tuple[float, float]]:
    """Knots [(confidence, calibrated), ...] of the isotonic regression of "the arg-max of (N, C) ``probs`` is the
    (N,) gold id" on the top probability, extended flat to 0 and 1 (what scikit-learn's clipping does)."""
    from sklearn.isotonic import IsotonicRegression

    confidence, best = probs.double().max(dim=-1)
    fit = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
    fit.fit(confidence.numpy(), (best == gold).double().numpy())
    knots = list(zip(fit.X_thresholds_.tolist(), fit.y_thresholds_.tolist(), strict=True))
    if knots[0][0] > 0:
        knots.insert(0, (0.0, knots[0][1]))
    if knots[-1][0] < 1:
        knots.append((1.0, knots[-1][1]))
    return knots


def fit_bagged_confidence_curve(probs: torch.Tensor, gold: torch.Tensor, bags: int = BAGS, seed: int = 0
                                ) -> list[tuple[float, float]]:
    """Knots of the mean of ``bags`` isotonic curves (fit_confidence_curve), each fitted on a seeded bootstrap
    resample of the rows, read on BAGGED_GRID evenly spaced confidences; a mean of increasing curves increases."""
    grid = torch.linspace(0.0, 1.0, BAGGED_GRID, dtype=torch.double)
    generator = torch.Generator().manual_seed(seed)
    total = torch.zeros(BAGGED_GRID, dtype=torch.double)
    for _ in range(bags):
        rows = torch.randint(len(gold), (len(gold),), generator=generator)
        knots = torch.tensor(fit_confidence_curve(probs[rows], gold[rows]), dtype=torch.double)
        total += torch.from_numpy(np.interp(grid.numpy(), knots[:, 0].numpy(), knots[:, 1].numpy()))
    return list(zip(grid.tolist(), (total / bags).tolist(), strict=True))


def sentence_logits(model: MultiTaskModel, task: str, texts: list[str], batch_size: int = 64) -> torch.Tensor:
    """(N, C) float32 logits of a sentence head, in input order, from the model's forward pass."""
    items = model.tokenizer(texts)
    rows: list[torch.Tensor] = [torch.empty(0)] * len(items)
    with eval_mode(model), torch.inference_mode():
        for indices, features in model.tokenizer.sorted_batches(items, batch_size):
            logits = model(to_device(features, model_device(model)), tasks=[task], embedding=False)["logits"]
            for row, index in enumerate(indices):
                rows[index] = logits[task][row].float().cpu()
    return torch.stack(rows)


def calibrate(model: MultiTaskModel, task: str, examples: Examples, threshold: float | None = None,
              method: str = "isotonic", batch_size: int = 64) -> dict[str, float]:
    """Fit ``task``'s temperature on ``examples`` (dev data, not test), and with ``method="isotonic"`` (or
    ``"bagged-isotonic"``) its confidence curve, and store them, with ``threshold`` when given, in the model's head
    config (``model.save`` keeps them). Returns the temperature, the number of curve knots, and the ECE (0-1) and
    NLL before and after."""
    if method not in METHODS:
        raise MtstError(f"unknown calibration method '{method}'; choose one of: {', '.join(METHODS)}")
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
    head = model.heads[task]
    before, temperature = head.probabilities(logits), head.temperature
    config.temperature, config.confidence_curve = fit_temperature(logits, gold), None
    curves = {"isotonic": fit_confidence_curve, "bagged-isotonic": fit_bagged_confidence_curve}
    if method in curves:
        config.confidence_curve = curves[method](head.probabilities(logits), gold)
    after = head.probabilities(logits)
    ece = expected_calibration_error
    result = {"temperature_before": temperature, "temperature": config.temperature, "examples": float(len(gold)),
              "knots": float(len(config.confidence_curve or [])),
              "ece_before": ece(before, gold), "ece_after": ece(after, gold),
              "nll_before": probabilities_nll(before, gold), "nll_after": probabilities_nll(after, gold)}
    if threshold is not None:
        config.threshold = threshold
    return result


def answers_ece(answers: list[dict], gold: list[str], labels: list[str]) -> float:
    """ECE in percent of decoded sentence answers (their ``distribution``) against gold label names; a gold label
    the model lacks counts as wrong."""
    probs = torch.tensor([[answer["distribution"][label] for label in labels] for answer in answers])
    ids = torch.tensor([labels.index(label) if label in labels else -1 for label in gold])
    return 100 * expected_calibration_error(probs, ids)
