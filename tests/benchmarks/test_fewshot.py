"""The few-shot benchmark's logic without data or SetFit: seeded draws, SetFit-style pairs, the branch-only
contrastive step, and the report on a fake result set."""

from __future__ import annotations

import argparse
import json

import pytest
import torch

from benchmarks.fewshot import __main__ as harness
from benchmarks.fewshot import contrastive, report
from benchmarks.fewshot.__main__ import result_path
from benchmarks.fewshot.data import Dataset, Split, draw
from benchmarks.fewshot.methods import METHODS
from mtst import MtstError, MultiTaskModel

LABELS = ["a", "b", "c"] * 30 + ["a"] * 10  # 40 a, 30 b, 30 c


def test_a_draw_is_k_rows_per_class_the_same_for_a_seed():
    rows = draw(LABELS, 8, seed=3)
    assert rows == draw(LABELS, 8, seed=3)
    assert rows != draw(LABELS, 8, seed=4)
    assert len(set(rows)) == len(rows) == 24  # no row twice, so none in two classes
    assert sorted(LABELS[i] for i in rows) == ["a"] * 8 + ["b"] * 8 + ["c"] * 8


def test_a_seeds_smaller_draw_is_part_of_its_larger_one():
    assert set(draw(LABELS, 8, seed=0)) < set(draw(LABELS, 16, seed=0))


def test_a_draw_larger_than_a_class_is_refused():
    with pytest.raises(MtstError, match="fewer than 31 shots"):
        draw(LABELS, 31, seed=0)


def test_a_run_writes_one_result_per_fit_with_its_rows_and_resumes(tmp_path, monkeypatch):
    toy = Dataset("sst2", ("neg", "pos"), Split([f"t{i}" for i in range(20)], ["neg", "pos"] * 10),
                  Split(["a", "b", "c"], ["pos", "pos", "neg"]))
    calls = []

    def first_label(dataset, texts, labels, test, seed):
        calls.append(seed)
        return [labels[0]] * len(test.texts), 0.5, {}

    monkeypatch.setitem(harness.DATASETS, "sst2", lambda: toy)
    monkeypatch.setitem(METHODS, "setfit", first_label)
    args = argparse.Namespace(datasets=["sst2"], methods=["majority", "setfit"], shots=[2], draws=2, quick=False)
    harness.run(args, tmp_path)
    majority = json.loads(result_path(tmp_path, "sst2", "majority", 0, 0).read_text())
    assert majority["accuracy"] == 66.667 and majority["rows"] == []
    fit = json.loads(result_path(tmp_path, "sst2", "setfit", 2, 1).read_text())
    assert fit["rows"] == draw(toy.train.labels, 2, seed=1) and fit["train_seconds"] == 0.5
    assert calls == [0, 1]
    harness.run(args, tmp_path)  # everything exists: nothing runs again
    assert calls == [0, 1]


def test_pairs_alternate_same_and_different_labels_as_setfit():
    labels = ["x", "y", "x", "y", "z"]
    plan = contrastive.pairs(labels, iterations=2, seed=0)
    assert len(plan) == 2 * 2 * len(labels)
    assert [target for *_, target in plan] == [1.0, 0.0] * (2 * len(labels))
    assert all((labels[a] == labels[b]) == (target == 1.0) for a, b, target in plan)
    assert plan == contrastive.pairs(labels, iterations=2, seed=0)


def test_contrastive_training_moves_the_branch_only_and_is_seeded(tiny_st_dir, monkeypatch):
    monkeypatch.setattr(contrastive, "ITERATIONS", 2)
    texts, labels = ["good film", "great movie", "bad film", "awful movie", "fine", "poor"], list("ppnnpn")

    def trained():
        model = MultiTaskModel.from_backbone(tiny_st_dir, branch_at=1, precision="fp32")
        before = {k: v.clone() for k, v in model.state_dict().items()}
        contrastive.train_branch(model, texts, labels, seed=0)
        return model, before

    model, before = trained()
    changed = {k for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
    assert changed and all(k.startswith("branch.") for k in changed)
    again, _ = trained()
    assert all(torch.equal(v, again.state_dict()[k]) for k, v in model.state_dict().items())


def test_contrastive_training_in_bf16_keeps_fp32_weights_and_moves_them_differently(tiny_st_dir, monkeypatch):
    monkeypatch.setattr(contrastive, "ITERATIONS", 2)
    texts, labels = ["good film", "great movie", "bad film", "awful movie"], list("ppnn")
    models = [MultiTaskModel.from_backbone(tiny_st_dir, branch_at=1, precision="fp32") for _ in range(2)]
    for model, bf16 in zip(models, (False, True), strict=True):
        contrastive.train_branch(model, texts, labels, seed=0, bf16=bf16)
    fp32, bf16 = (dict(model.branch.named_parameters()) for model in models)
    assert all(p.dtype == torch.float32 for p in bf16.values())
    assert any(not torch.equal(p, fp32[name]) for name, p in bf16.items())  # bf16 matmuls round differently


def _result(dataset: str, method: str, shots: int, draw_index: int, accuracy: float, seconds: float) -> dict:
    extra = {"versions": {"setfit": "1.2.0"}} if method == "setfit" else {}
    return {"dataset": dataset, "method": method, "shots": shots, "draw": draw_index, "accuracy": accuracy,
            "train_seconds": seconds, "extra": extra, "cpu_flags": ["avx512f"], "command": "python -m x",
            "started_utc": "2026-12-05 14:00:00", "load_average_before": [2.0, 2.0, 2.0],
            "hardware": {"cpu": "Test CPU", "versions": {"torch": "2"}}}


def test_report_renders_only_what_was_run(tmp_path):
    fake = [_result("sst2", "majority", 0, 0, 50.9, 0.0), _result("sst2", "setfit", 8, 0, 80.0, 40.0),
            _result("sst2", "setfit", 8, 1, 84.0, 60.0), _result("sst2", "mtst-logistic", 8, 0, 82.0, 1.0),
            _result("sst2", "mtst-logistic", 8, 1, 86.0, 3.0)]
    for result in fake:
        path = result_path(tmp_path / "results", result["dataset"], result["method"], result["shots"], result["draw"])
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result))
    report.main(tmp_path / "results", docs=tmp_path / "few-shot.md")
    text = (tmp_path / "few-shot.md").read_text()
    assert "| SST-2 | 8 | mtst-logistic | 84.0 ± 2.8 | 2 | 2.00 | 25.0x |" in text  # 50 s / 2 s
    assert "| SST-2 | 8 | setfit | 82.0 ± 2.8 | 2 | 50.00 |  |" in text
    assert "| SST-2 | 0 (none) | majority | 50.9 ± 0.0 | 1 |" in text
    assert "AG News |" not in text and "SST-5 |" not in text and "mtst-prototype" not in text
    assert "Test CPU (avx512f)" in text and "setfit 1.2.0" in text
    assert (tmp_path / "few-shot.png").stat().st_size > 0


def test_an_idle_retiming_is_its_own_table_beside_the_main_one(tmp_path):
    for folder, seconds in (("results", 40.0), ("idle", 8.0)):
        for result in (_result("sst2", "setfit", 8, 0, 80.0, seconds),
                       _result("sst2", "mtst-logistic", 8, 0, 82.0, 1.0)):
            path = result_path(tmp_path / folder, "sst2", result["method"], 8, 0)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(result))
    report.main(tmp_path / "results", docs=tmp_path / "few-shot.md", idle_dir=tmp_path / "idle")
    main, idle = (tmp_path / "few-shot.md").read_text().split("## Re-timed on an idle machine")
    assert "| SST-2 | 8 | mtst-logistic | 82.0 ± 0.0 | 1 | 1.00 | 40.0x |" in main
    assert "| SST-2 | 8 | mtst-logistic | 82.0 ± 0.0 | 1 | 1.00 | 8.0x |" in idle


def test_the_calibration_table_averages_each_method_over_its_draws():
    from benchmarks.fewshot.calibration import table

    runs = [{"accuracy": 80.0, "ece": 0.1, "mean_top_probability": 0.9, "temperature": 0.05, "seconds": 1.0},
            {"accuracy": 70.0, "ece": 0.3, "mean_top_probability": 0.7, "temperature": 0.05, "seconds": 2.0}]
    row = table({"sst2/8/contrastive": runs}).splitlines()[-1]
    assert row == "| sst2 | 8 | contrastive | 75.0 | 0.200 | 0.800 | 1.50 | 2 |"
