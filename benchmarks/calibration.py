"""Which post-hoc calibration brings the shipped heads' test ECE to 0.02 or below when fitted on dev only (issue 30).

Splits are those of configs/default.yaml, the shipped run's: AG News dev / test are 760 + 760 rows cut from its
test file (seed 13; the model trained on the other 80 %); SST-2 dev is GLUE dev.tsv (872) and test the labelled
SST-2 test file (`sentiment-test`, 1,821); the model trained on train.tsv only, so fitting on dev and scoring on test
leaks nothing. Every method is fitted on dev and scored on test; the shipped ones go through the heads' own decoding
(``SentenceClassificationHead.probabilities``), as every runtime does. Beside the ECE (15 bins, 0-1):
- its noise: the std over 200 bootstrap resamples of the test rows, and ``floor``: the mean ECE a perfectly
  calibrated head with the same confidences would score on this many rows (gold drawn from its own confidences);
- ``dev_crossfit``: ECE, NLL and top-label Brier score of the method fitted on one half of dev and scored on the
  other, both ways, 5 seeded halvings (the choice of method must not look at test);
- ``two_fold``: dev and test pooled, each row scored by the method fitted on the other split: the method's ECE on
  twice the rows (topic: 1,520 instead of 760), with its own floor;
- NLL and the top label's Brier score, which, unlike ECE, punish throwing resolution away: ``constant`` (every
  top probability = dev accuracy) reaches a low ECE while telling no row from another.

    MTST_DATA_DIR=../shared/data python -m benchmarks.calibration  # ~4 min on 2 busy cores -> calibration_results.json
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import numpy as np
import torch

from benchmarks.common import REPO, run_metadata, write_result
from mtst.model.config import HeadConfig
from mtst.model.heads import SentenceClassificationHead
from mtst.training.calibration import (
    expected_calibration_error,
    fit_bagged_confidence_curve,
    fit_confidence_curve,
    fit_temperature,
    probabilities_nll,
)

RESULTS = REPO / "benchmarks" / "calibration_results.json"
TASKS = ("topic", "sentiment")
RESAMPLES, HALVINGS, HISTOGRAM_BINS = 200, 5, 5


# ---- the methods: each fits on dev (logits, gold) and returns how to turn logits into probabilities --------------
def _decoding(labels: int, **calibration) -> Callable:
    head = SentenceClassificationHead(HeadConfig(type="sentence_classification", labels=[str(i) for i in range(labels)],
                                                 input_dim=1, **calibration))
    return head.probabilities


def _minimise(parameters: list[torch.Tensor], loss: Callable[[], torch.Tensor], max_iter: int) -> None:
    """``loss()`` minimised over ``parameters`` in place by L-BFGS (strong Wolfe line search)."""
    optimizer = torch.optim.LBFGS(parameters, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        value = loss()
        value.backward()
        return value

    optimizer.step(closure)


def _vector_scaling(logits: torch.Tensor, gold: torch.Tensor) -> Callable:
    """A scale and a bias per class, by NLL (L-BFGS); the bias can move the arg-max."""
    scale = torch.ones(logits.shape[1], dtype=torch.double, requires_grad=True)
    bias = torch.zeros(logits.shape[1], dtype=torch.double, requires_grad=True)
    _minimise([scale, bias], lambda: torch.nn.functional.cross_entropy(logits.double() * scale + bias, gold), 500)
    scale, bias = scale.detach(), bias.detach()
    return lambda new: (new.double() * scale + bias).softmax(dim=-1).float()


def _histogram_curve(probs: torch.Tensor, gold: torch.Tensor, bins: int) -> list[tuple[float, float]]:
    """Histogram binning of the top probability (equal-mass bins, each mapped to its dev accuracy) as a step curve:
    two knots at each inner edge."""
    confidence, best = probs.double().max(dim=-1)
    order = confidence.argsort()
    chunks = [chunk for chunk in order.tensor_split(bins) if len(chunk)]
    values = [float((best[chunk] == gold[chunk]).double().mean()) for chunk in chunks]
    edges = [float(confidence[chunk].min()) for chunk in chunks[1:]]
    inner = [(edge, value) for edge, pair in zip(edges, zip(values, values[1:], strict=False), strict=True)
             for value in pair]
    return [(0.0, values[0]), *inner, (1.0, values[-1])]


def _top_label_platt_curve(probs: torch.Tensor, gold: torch.Tensor, points: int = 101) -> list[tuple[float, float]]:
    """Platt scaling of the top probability: P(right) = sigmoid(a * logit(p) + b) by NLL, on a grid: a smooth
    two-parameter curve (isotonic's shape is free, this one is a sigmoid)."""
    confidence, best = probs.double().max(dim=-1)
    right = (best == gold).double()
    log_odds = torch.logit(confidence, eps=1e-6)
    ab = torch.tensor([1.0, 0.0], dtype=torch.double, requires_grad=True)
    _minimise([ab], lambda: torch.nn.functional.binary_cross_entropy_with_logits(ab[0] * log_odds + ab[1], right), 200)
    grid = torch.linspace(0.0, 1.0, points, dtype=torch.double)
    values = torch.sigmoid(ab[0].detach() * torch.logit(grid, eps=1e-6) + ab[1].detach())
    return list(zip(grid.tolist(), values.tolist(), strict=True))


def fit(method: str, logits: torch.Tensor, gold: torch.Tensor) -> Callable:
    """``method`` fitted on (N, C) dev logits and (N,) gold ids -> logits to (M, C) probabilities."""
    labels = logits.shape[1]
    if method == "none":
        return _decoding(labels)
    if method == "vector":
        return _vector_scaling(logits, gold)
    temperature = fit_temperature(logits, gold)
    scaled = _decoding(labels, temperature=temperature)(logits)
    curves = {"temperature": None, "isotonic": lambda: fit_confidence_curve(scaled, gold),
              "histogram": lambda: _histogram_curve(scaled, gold, HISTOGRAM_BINS),
              **{f"histogram-{bins}": lambda bins=bins: _histogram_curve(scaled, gold, bins) for bins in (3, 10, 20)},
              "bagged-isotonic": lambda: fit_bagged_confidence_curve(scaled, gold),
              "top-label-platt": lambda: _top_label_platt_curve(scaled, gold),
              "constant": lambda: [(0.0, accuracy(scaled, gold)), (1.0, accuracy(scaled, gold))]}
    curve = curves[method]() if curves[method] else None
    return _decoding(labels, temperature=temperature, confidence_curve=curve)


METHODS = ("none", "temperature", "vector", "isotonic", "histogram", "histogram-3", "histogram-10", "histogram-20",
           "bagged-isotonic", "top-label-platt", "constant")
SHIPPED = ("temperature", "isotonic", "bagged-isotonic")  # `mtst calibrate --method`; the others: measured only


# ---- the scores ------------------------------------------------------------------------------------------------
def accuracy(probs: torch.Tensor, gold: torch.Tensor) -> float:
    return float((probs.argmax(dim=-1) == gold).double().mean())


def bootstrap_std(probs: torch.Tensor, gold: torch.Tensor, seed: int = 0) -> float:
    generator = torch.Generator().manual_seed(seed)
    draws = [torch.randint(len(gold), (len(gold),), generator=generator) for _ in range(RESAMPLES)]
    return float(torch.tensor([expected_calibration_error(probs[rows], gold[rows]) for rows in draws]).std())


def calibrated_floor(probs: torch.Tensor, seed: int = 1) -> float:
    """Mean ECE over RESAMPLES draws of gold labels that agree with the arg-max with exactly its probability."""
    generator = torch.Generator().manual_seed(seed)
    confidence, best = probs.double().max(dim=-1)
    eces = []
    for _ in range(RESAMPLES):
        right = torch.rand(len(best), generator=generator, dtype=torch.double) < confidence
        eces.append(expected_calibration_error(probs, torch.where(right, best, (best + 1) % probs.shape[1])))
    return float(torch.tensor(eces).mean())


def top_brier(probs: torch.Tensor, gold: torch.Tensor) -> float:
    """Mean squared error of the top probability as the chance that the arg-max is right."""
    confidence, best = probs.double().max(dim=-1)
    return float(((confidence - (best == gold).double()) ** 2).mean())


CROSSFIT_SCORES = {"ece": expected_calibration_error, "nll": probabilities_nll, "brier": top_brier}


def dev_crossfit(method: str, logits: torch.Tensor, gold: torch.Tensor) -> dict[str, float]:
    """Mean ECE, NLL and top-label Brier score of ``method`` fitted on one half of dev and scored on the other, both
    ways, over HALVINGS halvings: what a choice of method may look at (never test)."""
    values: dict[str, list[float]] = {name: [] for name in CROSSFIT_SCORES}
    for seed in range(HALVINGS):
        halves = torch.randperm(len(gold), generator=torch.Generator().manual_seed(seed)).tensor_split(2)
        for a, b in ((0, 1), (1, 0)):
            probs = fit(method, logits[halves[a]], gold[halves[a]])(logits[halves[b]])
            for name, score in CROSSFIT_SCORES.items():
                values[name].append(score(probs, gold[halves[b]]))
    return {name: float(np.mean(scores)) for name, scores in values.items()}


def two_fold(method: str, dev: tuple[torch.Tensor, torch.Tensor], test: tuple[torch.Tensor, torch.Tensor]
             ) -> tuple[float, float]:
    """(ECE, floor) of ``method`` on dev and test pooled, each row scored by the fit on the other split: the
    method's ECE on twice the rows, so half as noisy a figure (not the shipped head's, which is fitted on dev)."""
    probs = torch.cat([fit(method, *dev)(test[0]), fit(method, *test)(dev[0])])
    return expected_calibration_error(probs, torch.cat([test[1], dev[1]])), calibrated_floor(probs)


def scores(method: str, dev: tuple[torch.Tensor, torch.Tensor], test: tuple[torch.Tensor, torch.Tensor]) -> dict:
    pooled_ece, pooled_floor = two_fold(method, dev, test)
    probs, gold = fit(method, *dev)(test[0]), test[1]
    crossfit = dev_crossfit(method, *dev)
    return {"test_ece": expected_calibration_error(probs, gold), "test_ece_bootstrap_std": bootstrap_std(probs, gold),
            **{f"dev_crossfit_{name}": value for name, value in crossfit.items()},
            "test_accuracy": accuracy(probs, gold), "argmax_moved": int((probs.argmax(-1) != test[0].argmax(-1)).sum()),
            "test_nll": probabilities_nll(probs, gold), "test_top_brier": top_brier(probs, gold),
            "calibrated_floor": calibrated_floor(probs), "two_fold_ece": pooled_ece, "two_fold_floor": pooled_floor}


# ---- the run ---------------------------------------------------------------------------------------------------
def shipped_logits() -> dict[str, dict[str, tuple[torch.Tensor, torch.Tensor]]]:
    """task -> split -> ((N, C) logits of the shipped model, (N,) gold ids): dev and test of configs/default.yaml."""
    from mtst.data.splits import read_task_splits
    from mtst.model.multitask import MultiTaskModel
    from mtst.training.calibration import sentence_logits
    from mtst.training.config import load_train_config

    model = MultiTaskModel.load(REPO / "src" / "mtst" / "pretrained" / "default")  # logits: calibration-free
    tasks = {task.name: task for task in load_train_config(REPO / "configs" / "default.yaml").tasks}
    out = {}
    for name in TASKS:
        labels = model.heads[name].labels
        splits = read_task_splits(name, tasks[name].type, tasks[name].data)
        out[name] = {split: (sentence_logits(model, name, list(splits[split].texts)),
                             torch.tensor([labels.index(label) for label in splits[split].labels]))
                     for split in ("dev", "test")}
    return out


def table(results: dict) -> str:
    lines = ["| head (dev / test rows) | method | test ECE (± bootstrap std) | ECE floor | dev cross-fit ECE | "
             "dev cross-fit NLL / Brier | dev + test two-fold ECE (floor) | test accuracy (arg-max moved) | test NLL | "
             "top-label Brier |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for task, entry in results.items():
        rows = f"{task} ({entry['dev_rows']} / {entry['test_rows']})"
        for method, r in entry["methods"].items():
            lines.append(f"| {rows} | {method}{'' if method in SHIPPED else ' (not shipped)'} | "
                         f"{r['test_ece']:.4f} ± {r['test_ece_bootstrap_std']:.4f} | {r['calibrated_floor']:.4f} | "
                         f"{r['dev_crossfit_ece']:.4f} | {r['dev_crossfit_nll']:.4f} / {r['dev_crossfit_brier']:.4f} | "
                         f"{r['two_fold_ece']:.4f} ({r['two_fold_floor']:.4f}) | "
                         f"{100 * r['test_accuracy']:.2f} ({r['argmax_moved']}) | {r['test_nll']:.4f} | "
                         f"{r['test_top_brier']:.4f} |")
    return "\n".join(lines)


def main() -> None:
    import argparse

    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()  # --help answers, runs nothing
    started, load = time.time(), os.getloadavg()
    logits = shipped_logits()
    results = {task: {"dev_rows": len(splits["dev"][1]), "test_rows": len(splits["test"][1]),
                      "methods": {method: scores(method, splits["dev"], splits["test"]) for method in METHODS}}
               for task, splits in logits.items()}
    payload = {"results": results, "run": run_metadata("python -m benchmarks.calibration", started, load, None)}
    write_result(RESULTS, payload)
    print(table(results))


if __name__ == "__main__":
    main()
