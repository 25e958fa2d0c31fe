"""The quality harness: every variant is a valid training config, the harness scores a model through mtst's own
evaluation, and the report renders the committed results.

The benchmark itself needs the real data in ../shared/data and hours of CPU; these checks need neither (config
validation does not open data files; the evaluation check writes its own tiny files).
"""

from __future__ import annotations

import pytest
import torch

from benchmarks.quality import report
from benchmarks.quality.experiments import EXPERIMENTS, RESULTS, STEPS, Variant, build_config, merge
from mtst.training.config import TrainConfig

ALL_VARIANTS = [(name, variant) for name, variants in EXPERIMENTS.items() for variant in variants]


@pytest.mark.parametrize(("experiment", "variant"), ALL_VARIANTS, ids=[f"{e}/{v.name}" for e, v in ALL_VARIANTS])
def test_every_variant_is_a_valid_train_config(experiment: str, variant: Variant) -> None:
    raw = build_config(experiment, variant, seed=0, quick=False)
    config = TrainConfig.model_validate(raw)
    assert [task.name for task in config.tasks] == list(variant.tasks)
    assert config.optimizer.max_steps == (variant.steps or STEPS * len(variant.tasks))
    if variant.eval_every:  # a dev learning curve inside the trainer, STS-B dev included
        assert config.evaluation.every_steps == variant.eval_every and config.evaluation.sts is not None
        assert all(_has_dev(task) for task in config.tasks)
    else:  # the harness evaluates test afterwards, not the trainer
        assert not any(_has_dev(task) for task in config.tasks)


def _has_dev(task) -> bool:
    """A dev file, or a share of a split source (AG News) held out as dev."""
    return task.data.dev is not None or (task.data.split is not None and task.data.split.dev > 0)


def test_variant_names_are_unique_per_experiment() -> None:
    for variants in EXPERIMENTS.values():
        names = [variant.name for variant in variants]
        assert len(names) == len(set(names))


def test_init_from_points_at_a_variant_that_keeps_its_model() -> None:
    for variants in EXPERIMENTS.values():
        for variant in variants:
            if variant.init_from is not None:
                source_experiment, source_name = variant.init_from
                source = next(v for v in EXPERIMENTS[source_experiment] if v.name == source_name)
                assert source.keep_model


def test_scarce_variants_cut_ner_to_the_stated_share() -> None:
    sizes = {v.name: v.train_sizes["ner"] for v in EXPERIMENTS["scarce"]}
    assert sizes["ner5pct-alone"] == 702 and sizes["ner1pct-alone"] == 140 and sizes["ner25pct-alone"] == 3510


def test_merge_is_deep_and_leaves_inputs_alone() -> None:
    base = {"optimizer": {"lr": 1.0, "batch_size": 16}}
    merged = merge(base, {"optimizer": {"lr": 2.0}})
    assert merged == {"optimizer": {"lr": 2.0, "batch_size": 16}}
    assert base["optimizer"]["lr"] == 1.0


@pytest.mark.parametrize("head_type", ["token_classification", "windowed_token_classification"])
def test_harness_scores_every_token_head_with_entity_f1(bare_model, tmp_path, monkeypatch, head_type) -> None:
    """The harness's test-set scoring goes through mtst's evaluation with the head type the model has (a windowed
    NER head once fell through to sentence accuracy): one entity F1 per token task, and STS-B Spearman."""
    from benchmarks.common import stsb
    from benchmarks.quality import __main__ as harness

    conll = tmp_path / "test.txt"
    conll.write_text("John B-PER\nSmith I-PER\nlives O\nin O\nParis B-LOC\n\nMary B-PER\nvisited O\nLondon B-LOC\n")
    sts = tmp_path / "sts.csv"
    rows = [("a man plays a guitar", "a man plays music", 4.2), ("a dog runs", "the stock market fell", 0.3),
            ("a woman cooks", "a woman is cooking food", 4.8)]
    sts.write_text("".join(f"g\tf\t2012\t{i}\t{score}\t{a}\t{b}\n" for i, (a, b, score) in enumerate(rows)))
    data = {"path": str(conll), "format": "conll"}
    monkeypatch.setattr(harness, "task_specs", lambda: {"ner": {"name": "ner", "type": "token_classification",
                                                                "data": {"train": data, "test": data}}})
    monkeypatch.setattr(harness, "stsb", lambda **fields: stsb(**fields).model_copy(update={"path": sts}))
    bare_model.add_head("ner", head_type, ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"])
    metrics = harness.evaluate_model(bare_model)
    assert list(metrics) == ["ner/f1", "sts/spearman"] and 0.0 <= metrics["ner/f1"] <= 100.0


def test_report_marks_a_resumed_runs_wall_time_as_partial() -> None:
    fresh = {"wall_s": 2000.0, "resumed": False}
    assert report.wall_cell([fresh]) == "2000.00"
    assert report.wall_cell([fresh, {"wall_s": 700.0, "resumed": True}]).endswith("(resumed: part only)")


def test_report_tabulates_every_committed_result() -> None:
    for experiment in [path.name for path in RESULTS.iterdir() if path.is_dir() and path.name != "plots"]:
        table, data = report.experiment_table(experiment)
        assert len(table.splitlines()) == 2 + len(data) and data, experiment


def test_ensemble_reads_each_models_decoded_distributions_and_refuses_other_labels(bare_model, tmp_path) -> None:
    from benchmarks.quality import ensemble
    from mtst.training.calibration import sentence_logits

    bare_model.add_head("sentiment", "sentence_classification", ["negative", "positive"])
    first = bare_model.save(tmp_path / "first")
    texts = ["a fine film", "dull", "it drags on"]
    probs, labels = ensemble.distributions(first, "sentiment", texts, None)
    assert labels == ["negative", "positive"] and probs.shape == (3, 2)
    assert torch.allclose(probs.sum(dim=-1), torch.ones(3), atol=1e-5)
    decoded = bare_model.heads["sentiment"].probabilities(sentence_logits(bare_model, "sentiment", texts))
    assert torch.allclose(probs, decoded, atol=1e-5)
    with pytest.raises(SystemExit, match="share the labels"):
        ensemble.distributions(first, "sentiment", texts, ["positive", "negative"])
