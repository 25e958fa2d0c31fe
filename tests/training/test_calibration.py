"""Calibration: temperature scaling and the isotonic confidence curve lower ECE, never move the arg-max, thresholds
abstain, survive save/load and export, older configs load, and the CLI and `mtst evaluate` report ECE."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from mtst import MtstError, MultiTaskModel
from mtst.data.readers import Examples
from mtst.model.config import HeadConfig
from mtst.model.heads import SentenceClassificationHead, ZeroShotHead
from mtst.training.calibration import (
    BAGGED_GRID,
    calibrate,
    expected_calibration_error,
    fit_bagged_confidence_curve,
    fit_confidence_curve,
    fit_temperature,
    nll,
)

TEXTS = ["The team won the final.", "Stocks fell sharply today.", "a", "The minister resigned.", "Rain again.",
         "Goal in the last minute!", "Banks raise rates.", "Elections next week.", "He sat down.", "Markets rally."]
GOLD = ["world", "business", "sports", "world", "world", "sports", "business", "world", "sports", "business"]


def _overconfident(n: int = 4000, classes: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits whose softmax is right ~60% of the time but ~99% sure: a true model's logits times 8."""
    generator = torch.Generator().manual_seed(0)
    gold = torch.randint(classes, (n,), generator=generator)
    honest = torch.randn(n, classes, generator=generator)
    honest[torch.arange(n), gold] += 1.0
    return 8 * honest, gold


def test_fitting_the_temperature_lowers_ece_and_nll_on_an_overconfident_head():
    logits, gold = _overconfident()
    fitted = fit_temperature(logits, gold)
    assert 5 < fitted < 12  # it undoes the factor 8
    before = expected_calibration_error(logits.softmax(-1), gold)
    after = expected_calibration_error((logits / fitted).softmax(-1), gold)
    assert before > 0.2 and after < 0.03 and after < before
    assert nll(logits, gold, fitted) < nll(logits, gold, 1.0)


def _head(**calibration) -> SentenceClassificationHead:
    return SentenceClassificationHead(HeadConfig(type="sentence_classification", labels=["a", "b", "c", "d"],
                                                 input_dim=4, **calibration))


@pytest.mark.parametrize("fit_curve", [fit_confidence_curve, fit_bagged_confidence_curve])
def test_the_isotonic_curve_lowers_ece_where_one_temperature_cannot_and_keeps_the_argmax(fit_curve):
    logits, gold = _overconfident()
    logits[: len(gold) // 2] /= 16  # half the rows over-confident, half under-confident: no single T fits both
    fit_rows, held_out = torch.arange(0, len(gold), 2), torch.arange(1, len(gold), 2)
    temperature = fit_temperature(logits[fit_rows], gold[fit_rows])
    scaled = _head(temperature=temperature)
    curved = _head(temperature=temperature,
                   confidence_curve=fit_curve(scaled.probabilities(logits[fit_rows]), gold[fit_rows]))
    probs, gold = curved.probabilities(logits[held_out]), gold[held_out]
    assert expected_calibration_error(probs, gold) < 0.5 * expected_calibration_error(
        scaled.probabilities(logits[held_out]), gold)
    # bagging smooths this head's sharp bend between its two halves: 0.032 here against the single curve's 0.021
    assert expected_calibration_error(probs, gold) < (0.03 if fit_curve is fit_confidence_curve else 0.04)
    assert torch.equal(probs.argmax(-1), logits[held_out].argmax(-1))
    assert torch.allclose(probs.sum(-1), torch.ones(len(gold)), atol=1e-5)


@pytest.mark.parametrize("curve", [[(0.0, 0.05), (1.0, 0.05)], [(0.0, 0.0), (0.4, 0.99), (0.4, 0.2), (1.0, 0.3)],
                                   [(0.0, 1.0), (1.0, 1.0)]])
def test_any_curve_keeps_the_top_label_on_top_and_the_rows_summing_to_one(curve):
    head = _head(confidence_curve=curve)
    logits = torch.randn(64, 4) * 3
    probs = head.probabilities(logits)
    assert torch.equal(probs.argmax(-1), logits.argmax(-1))
    assert torch.allclose(probs.sum(-1), torch.ones(64), atol=1e-5)
    decoded = head.decode(logits, [None] * 64, [""] * 64)
    assert [row["label"] for row in decoded] == head.best_labels(logits, [None] * 64)


def test_the_curve_maps_the_top_probability_linearly_between_knots():
    head = _head(confidence_curve=[(0.0, 0.0), (0.5, 0.25), (1.0, 0.75)])
    probs = head.probabilities(torch.tensor([[2.0, 0.0, 0.0, 0.0]]))  # top p = e^2 / (e^2 + 3) ~ 0.711
    top = float(torch.tensor([2.0, 0.0, 0.0, 0.0]).softmax(-1)[0])
    assert float(probs[0, 0]) == pytest.approx(0.25 + (top - 0.5), abs=1e-6)
    assert torch.allclose(probs[0, 1:], torch.full((3,), (1 - float(probs[0, 0])) / 3), atol=1e-6)


def test_the_zero_shot_head_decodes_through_a_curve_too():
    head = ZeroShotHead(HeadConfig(type="zero_shot_classification", labels=["a", "b"], input_dim=4,
                                   confidence_curve=[(0.0, 0.7), (1.0, 0.7)]))
    probs = head.probabilities(torch.tensor([[0.3, 0.1], [0.0, 0.2]]))  # cosines / 0.05, then the curve
    assert torch.allclose(probs, torch.tensor([[0.7, 0.3], [0.3, 0.7]]), atol=1e-6)


def test_a_curve_must_be_in_increasing_confidence_and_an_old_config_loads_without_one():
    with pytest.raises(ValueError, match="increasing order"):
        _head(confidence_curve=[(0.9, 0.5), (0.1, 0.6)])
    old = {"type": "sentence_classification", "labels": ["a", "b"], "input_dim": 4, "temperature": 2.0}
    assert HeadConfig.model_validate(old).confidence_curve is None


def test_ece_is_zero_when_confidence_equals_accuracy():
    probs = torch.tensor([[0.5, 0.5]] * 4)  # top probability 0.5, right half the time
    assert expected_calibration_error(probs, torch.tensor([0, 1, 0, 1])) == pytest.approx(0.0)
    assert expected_calibration_error(torch.tensor([[1.0, 0.0]]), torch.tensor([1])) == pytest.approx(1.0)


@pytest.mark.parametrize("temperature", [0.01, 0.5, 3.0, 100.0])
def test_temperature_never_changes_the_argmax_or_the_logits(temperature):
    head = SentenceClassificationHead(HeadConfig(type="sentence_classification", labels=["a", "b", "c"],
                                                 input_dim=4, temperature=temperature))
    logits = torch.randn(32, 3)
    decoded = head.decode(logits, [None] * 32, [""] * 32)
    assert [row["label"] for row in decoded] == head.best_labels(logits, [None] * 32)
    expected = (logits / temperature).softmax(-1)
    assert np.allclose([list(row["distribution"].values()) for row in decoded], expected.numpy(), atol=1e-6)


def test_threshold_gives_null_labels_below_it():
    head = SentenceClassificationHead(HeadConfig(type="sentence_classification", labels=["a", "b"], input_dim=4,
                                                 threshold=0.9))
    decoded = head.decode(torch.tensor([[0.0, 0.1], [0.0, 5.0]]), [None] * 2, ["", ""])
    assert decoded[0]["label"] is None and decoded[0]["score"] < 0.9
    assert decoded[1]["label"] == "b"


@pytest.fixture
def calibrated(tiny_model):
    result = calibrate(tiny_model, "topic", Examples(TEXTS, GOLD, [f"dev:{i}" for i in range(len(TEXTS))]),
                       threshold=0.2)
    return tiny_model, result


def test_calibrate_stores_the_temperature_and_it_survives_save_and_load(calibrated, tmp_path):
    model, result = calibrated
    assert model.config.heads["topic"].temperature == result["temperature"] == model.heads["topic"].temperature
    assert result["nll_after"] <= result["nll_before"] + 1e-9
    assert result["knots"] >= 2 and model.config.heads["topic"].confidence_curve  # isotonic is the default
    model.save(tmp_path / "m")
    loaded = MultiTaskModel.load(tmp_path / "m")
    assert loaded.config.heads["topic"].temperature == result["temperature"]
    assert loaded.config.heads["topic"].confidence_curve == model.config.heads["topic"].confidence_curve
    assert loaded.config.heads["topic"].threshold == 0.2
    assert loaded.predict(TEXTS) == model.predict(TEXTS)


def test_bagged_isotonic_is_seeded_increasing_and_survives_save_and_load(tiny_model, tmp_path):
    examples = Examples(TEXTS, GOLD, [f"dev:{i}" for i in range(len(TEXTS))])
    result = calibrate(tiny_model, "topic", examples, method="bagged-isotonic")
    curve = tiny_model.config.heads["topic"].confidence_curve
    assert result["knots"] == BAGGED_GRID == len(curve)
    assert curve[0][0] == 0.0 and curve[-1][0] == 1.0
    assert all(b[1] >= a[1] - 1e-12 for a, b in zip(curve, curve[1:], strict=False))
    again = calibrate(tiny_model, "topic", examples, method="bagged-isotonic")
    assert tiny_model.config.heads["topic"].confidence_curve == curve and again["ece_after"] == result["ece_after"]
    probs = torch.tensor([[0.9, 0.1], [0.6, 0.4]])
    gold = torch.tensor([0, 1])
    assert fit_bagged_confidence_curve(probs, gold, seed=1) != fit_bagged_confidence_curve(probs, gold, seed=2)
    tiny_model.save(tmp_path / "m")
    assert MultiTaskModel.load(tmp_path / "m").predict(TEXTS) == tiny_model.predict(TEXTS)


def test_a_model_saved_before_confidence_curves_existed_loads_unchanged(tiny_model, tmp_path):
    tiny_model.save(tmp_path / "m")
    path = tmp_path / "m" / "mtst_config.json"
    raw = json.loads(path.read_text())
    for head in raw["heads"].values():
        head.pop("confidence_curve", None)
    path.write_text(json.dumps(raw))
    loaded = MultiTaskModel.load(tmp_path / "m")
    assert loaded.config.heads["topic"].confidence_curve is None
    assert loaded.predict(TEXTS) == tiny_model.predict(TEXTS)


def test_method_temperature_fits_no_curve_and_an_unknown_method_is_refused(tiny_model):
    examples = Examples(TEXTS, GOLD, [f"dev:{i}" for i in range(len(TEXTS))])
    tiny_model.config.heads["topic"].confidence_curve = [(0.0, 0.5), (1.0, 0.5)]  # a previous calibration's
    result = calibrate(tiny_model, "topic", examples, method="temperature")
    assert result["knots"] == 0 and tiny_model.config.heads["topic"].confidence_curve is None
    with pytest.raises(MtstError, match="unknown calibration method 'vector'"):
        calibrate(tiny_model, "topic", examples, method="vector")


def test_calibration_refuses_token_heads_and_unknown_labels(tiny_model):
    with pytest.raises(MtstError, match="calibration is for sentence heads"):
        calibrate(tiny_model, "ner", Examples([["a"]] * 2, [["O"]] * 2, ["x", "y"]))
    with pytest.raises(MtstError, match="not among the model's labels"):
        calibrate(tiny_model, "topic", Examples(["a", "b"], ["world", "cooking"], ["x", "y"]))


@pytest.mark.parametrize("curve", [None, [(0.0, 0.1), (0.5, 0.9), (1.0, 0.95)],
                                   [(i / 100, 0.1 + 0.85 * (i / 100) ** 0.5) for i in range(101)]])  # bagged's grid
def test_export_parity_with_a_calibrated_head(calibrated, tmp_path, curve):
    from mtst.inference.backends import load_predictor
    from mtst.inference.export import export_model

    model, _ = calibrated
    model.config.heads["topic"].temperature = 0.05  # sharp enough that a missed temperature would show
    model.config.heads["topic"].confidence_curve = curve  # far enough from the identity that a missed curve would show
    model.save(tmp_path / "m")
    exported = load_predictor(export_model(tmp_path / "m", tmp_path / "onnx"))
    for want, got in zip(model.predict(TEXTS), exported.predict(TEXTS), strict=True):
        assert want["topic"]["label"] == got["topic"]["label"]
        assert np.allclose(list(want["topic"]["distribution"].values()),
                           list(got["topic"]["distribution"].values()), atol=1e-3)


def test_cli_calibrates_a_copy_and_evaluate_reports_ece(tiny_model, tmp_path):
    from mtst.cli import app

    tiny_model.save(tmp_path / "m")
    dev = tmp_path / "dev.csv"
    dev.write_text("text,label\n" + "".join(f"{t},{g}\n" for t, g in zip(TEXTS, GOLD, strict=True)), encoding="utf-8")
    result = CliRunner().invoke(app, ["calibrate", "--model", str(tmp_path / "m"), "--data", f"topic={dev}",
                                      "-o", str(tmp_path / "cal")])
    assert result.exit_code == 0, result.output
    assert "ECE before" in result.output and "| topic | 10 |" in result.output
    assert MultiTaskModel.load(tmp_path / "m").config.heads["topic"].temperature is None  # the input is untouched
    assert MultiTaskModel.load(tmp_path / "cal").config.heads["topic"].temperature is not None
    assert MultiTaskModel.load(tmp_path / "cal").config.heads["topic"].confidence_curve is not None
    result = CliRunner().invoke(app, ["calibrate", "--model", str(tmp_path / "m"), "--data", f"topic={dev}",
                                      "--method", "temperature", "-o", str(tmp_path / "cal-t")])
    assert result.exit_code == 0, result.output
    assert MultiTaskModel.load(tmp_path / "cal-t").config.heads["topic"].confidence_curve is None
    result = CliRunner().invoke(app, ["calibrate", "--model", str(tmp_path / "m"), "--data", f"topic={dev}",
                                      "--method", "vector", "-o", str(tmp_path / "cal-v")])
    assert result.exit_code != 0 and "--method must be one of temperature, isotonic" in result.output
    out = tmp_path / "metrics.json"
    result = CliRunner().invoke(app, ["evaluate", "--model", str(tmp_path / "cal"), "--data", f"topic={dev}",
                                      "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert 0 <= json.loads(out.read_text())["metrics"]["topic/ece"] <= 100
