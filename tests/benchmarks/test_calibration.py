"""The calibration benchmark's measured-only methods on a synthetic over-confident head: each fits on dev and maps
logits to probabilities that keep the arg-max and lower the ECE."""

from __future__ import annotations

import pytest
import torch

from benchmarks import calibration
from mtst.training.calibration import expected_calibration_error, fit_bagged_confidence_curve


def over_confident(rows: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(rows, 3) logits whose arg-max margin m (1 to 8) says right with a softmax near 1, while it is right with
    probability 0.4 + 0.06 m (0.46 to 0.88): over-confident, and more often right where more confident."""
    generator = torch.Generator().manual_seed(seed)
    gold = torch.randint(3, (rows,), generator=generator)
    margin = 1.0 + 7.0 * torch.rand(rows, generator=generator)
    right = torch.rand(rows, generator=generator) < 0.4 + 0.06 * margin
    guess = torch.where(right, gold, (gold + 1) % 3)
    logits = 0.1 * torch.randn(rows, 3, generator=generator)
    logits[torch.arange(rows), guess] += margin
    return logits, gold


@pytest.mark.parametrize("method", ["histogram-3", "histogram-10", "bagged-isotonic", "top-label-platt"])
def test_each_measured_method_keeps_the_argmax_and_lowers_the_ece(method):
    dev, test = over_confident(600, seed=0), over_confident(600, seed=1)
    probabilities = calibration.fit(method, *dev)(test[0])
    assert torch.equal(probabilities.argmax(dim=-1), test[0].argmax(dim=-1))
    assert torch.allclose(probabilities.sum(dim=-1), torch.ones(len(test[1])), atol=1e-5)
    before = expected_calibration_error(test[0].softmax(dim=-1), test[1])
    assert expected_calibration_error(probabilities, test[1]) < before / 2


@pytest.mark.parametrize("curve", [fit_bagged_confidence_curve, calibration._top_label_platt_curve])
def test_the_smooth_curves_are_monotone_probabilities_over_the_whole_range(curve):
    logits, gold = over_confident(400, seed=2)
    knots = curve(logits.softmax(dim=-1), gold)
    confidences, values = zip(*knots, strict=True)
    assert confidences[0] == 0.0 and confidences[-1] == 1.0
    assert all(0.0 <= v <= 1.0 for v in values)
    assert all(b >= a - 1e-12 for a, b in zip(values, values[1:], strict=False))


def test_dev_crossfit_proper_scores_punish_the_calibrator_that_drops_resolution():
    """`constant` (every top probability = dev accuracy) wins on ECE here; the proper scores rank it lower."""
    logits, gold = over_confident(800, seed=3)
    scores = {method: calibration.dev_crossfit(method, logits, gold)
              for method in ("none", "isotonic", "bagged-isotonic", "constant")}
    assert set(scores["isotonic"]) == {"ece", "nll", "brier"}
    assert scores["constant"]["ece"] < scores["isotonic"]["ece"]
    assert scores["isotonic"]["brier"] < scores["constant"]["brier"]
    assert scores["bagged-isotonic"]["nll"] < scores["constant"]["nll"] < scores["none"]["nll"]
