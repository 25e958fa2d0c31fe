"""The schema's defaults are the recipe docs/training-guide.md measured ("What we recommend", configs/default.yaml),
and the rules that fill in what a config leaves open (branch point, training length, run directory)."""

from __future__ import annotations

import pytest
import yaml

from mtst.training.config import TrainConfig
from mtst.training.plan import (
    MAX_STEPS,
    MIN_STEPS,
    auto_branch_at,
    checkpoint_every,
    new_run_dir,
    training_length,
    with_run_dir,
)

TASK = {"name": "ner", "type": "windowed_token_classification",
        "data": {"train": {"path": "train.conll", "format": "conll"}}}


def minimal(**sections) -> TrainConfig:
    return TrainConfig.model_validate({"tasks": [TASK], **sections})


def test_defaults_are_the_recipe() -> None:
    config = minimal()
    opt = config.optimizer
    assert config.model.branch_at == "auto" and auto_branch_at(6) == 2  # the shipped model's k = 2
    assert (opt.lr, opt.layer_decay, opt.head_lr, opt.warmup_ratio) == (1e-4, 0.9, 1e-3, 0.06)
    assert (opt.schedule, opt.batch_size, opt.weight_decay) == ("linear", 32, 0.01)
    assert (config.sampling.strategy, config.sampling.temperature) == ("temperature", 2.0)
    assert config.freezing.mode == "none" and config.loss_weighting.mode == "static"
    assert config.run.checkpoints and config.run.output_dir is None
    assert config.tasks[0].head_options == {"word_shape": "auto", "crf": True}


def test_the_defaults_match_the_shipped_recipe_config() -> None:
    """configs/default.yaml (the shipped model's run) sets what the defaults now are."""
    from pathlib import Path

    shipped = yaml.safe_load((Path(__file__).parents[2] / "configs" / "default.yaml").read_text())
    defaults = minimal()
    for key in ("lr", "layer_decay", "head_lr", "warmup_ratio", "schedule", "batch_size", "weight_decay"):
        assert getattr(defaults.optimizer, key) == shipped["optimizer"][key], key
    assert defaults.sampling.model_dump() == shipped["sampling"]
    ner = next(task for task in shipped["tasks"] if task["name"] == "ner")
    assert (ner["word_shape"], ner["crf"]) == ("auto", True)


def test_sentence_tasks_get_no_token_options() -> None:
    task = {**TASK, "type": "sentence_classification", "data": {"train": {"path": "x.csv", "format": "csv"}}}
    assert TrainConfig.model_validate({"tasks": [task]}).tasks[0].head_options == {"word_shape": "off", "crf": False}


def test_old_behaviour_is_reachable_by_explicit_keys() -> None:
    config = minimal(model={"branch_at": None}, optimizer={"lr": 2e-5, "head_lr": None, "layer_decay": 1.0,
                                                          "warmup_ratio": 0.1, "epochs": 1},
                     sampling={"strategy": "proportional"}, run={"checkpoints": False, "output_dir": "runs/default"})
    assert config.model.branch_at is None and config.optimizer.head_lr is None
    assert checkpoint_every(config, 10) is None and str(with_run_dir(config).run.output_dir) == "runs/default"
    task = TrainConfig.model_validate({"tasks": [{**TASK, "crf": False, "word_shape": "off"}]}).tasks[0]
    assert task.head_options == {"word_shape": "off", "crf": False}


@pytest.mark.parametrize(("layers", "expected"), [(2, None), (3, 1), (4, 1), (6, 2), (12, 4), (24, 8)])
def test_branch_rule(layers: int, expected: int | None) -> None:
    assert auto_branch_at(layers) == expected


@pytest.mark.parametrize(("examples", "steps"), [(100, MIN_STEPS), (32 * 1000, 3000), (10**6, MAX_STEPS)])
def test_training_length_is_three_epochs_within_bounds(examples: int, steps: int) -> None:
    config = training_length(minimal(), examples)
    assert config.optimizer.max_steps == steps
    assert config.evaluation.every_steps == -(-steps // 3)  # about once an epoch
    assert checkpoint_every(config, config.evaluation.every_steps) == config.evaluation.every_steps
    explicit = minimal(optimizer={"epochs": 2})
    assert training_length(explicit, examples) is explicit


def test_new_run_dirs_never_repeat(tmp_path) -> None:
    first = new_run_dir(tmp_path)
    first.mkdir()
    second = new_run_dir(tmp_path)
    assert second != first and not second.exists() and second.name.endswith(("-1", "-2"))
    assert with_run_dir(minimal()).run.output_dir is not None


def test_optimizer_section_is_optional_and_negative_branch_is_an_error() -> None:
    assert minimal().optimizer.epochs is None
    with pytest.raises(ValueError, match="branch_at"):
        minimal(model={"branch_at": -1})


def test_a_checkpoint_interval_without_checkpoints_is_an_error_not_a_silent_no() -> None:
    assert checkpoint_every(minimal(run={"checkpoint_every_steps": 500}), eval_every=100) == 500
    with pytest.raises(ValueError, match="checkpoints is false"):
        minimal(run={"checkpoints": False, "checkpoint_every_steps": 500})
