"""param_groups, freezing by name, gradual unfreezing and LR schedules."""

from __future__ import annotations

import logging

import pytest
import torch

from mtst.errors import MtstError
from mtst.training.config import TrainConfig
from mtst.training.freezing import GradualUnfreezer, apply_freezing
from mtst.training.loss_weighting import LossWeighting
from mtst.training.optim import build_optimizer, build_scheduler, encoder_depths, lr_factor, param_groups


def make_cfg(**sections) -> TrainConfig:
    raw = {
        "tasks": [{"name": "topic", "type": "sentence_classification",
                   "data": {"train": {"path": "x.csv", "format": "csv"}}}],
        "optimizer": {"lr": 1e-3, "max_steps": 10},
    }
    for key, value in sections.items():
        raw[key] = {**raw.get(key, {}), **value} if isinstance(value, dict) else value
    return TrainConfig.model_validate(raw)


def group_of(groups: list[dict], param: torch.Tensor) -> dict:
    return next(g for g in groups if any(p is param for p in g["params"]))


def test_layerwise_decay_gives_exact_lrs(tiny_model):
    cfg = make_cfg(optimizer={"lr": 1e-3, "head_lr": 5e-3, "layer_decay": 0.5, "max_steps": 10})
    groups = param_groups(tiny_model, cfg)
    bert = tiny_model.encoder.transformer
    # tiny encoder: embeddings, layer.0, layer.1 -> depths 2, 1, 0
    assert group_of(groups, bert.encoder.layer[1].attention.self.query.weight)["lr"] == pytest.approx(1e-3)
    assert group_of(groups, bert.encoder.layer[0].attention.self.query.weight)["lr"] == pytest.approx(5e-4)
    assert group_of(groups, bert.embeddings.word_embeddings.weight)["lr"] == pytest.approx(2.5e-4)
    assert group_of(groups, bert.pooler.dense.weight)["lr"] == pytest.approx(1e-3)  # outside every group: top
    for param in tiny_model.heads.parameters():
        assert group_of(groups, param)["lr"] == pytest.approx(5e-3)
    assert encoder_depths(tiny_model.encoder)["transformer.embeddings.LayerNorm.weight"] == 2


def test_every_trainable_param_in_exactly_one_group(tiny_model):
    groups = param_groups(tiny_model, make_cfg())
    ids = [id(p) for g in groups for p in g["params"]]
    assert len(ids) == len(set(ids)) == len(list(tiny_model.parameters()))


def test_weight_decay_only_for_matrices(tiny_model):
    cfg = make_cfg(optimizer={"weight_decay": 0.05, "max_steps": 10})
    groups = param_groups(tiny_model, cfg)
    for name, param in tiny_model.named_parameters():
        expected = 0.05 if param.dim() >= 2 else 0.0
        assert group_of(groups, param)["weight_decay"] == expected, name
    layer_norm = tiny_model.encoder.transformer.embeddings.LayerNorm
    assert group_of(groups, layer_norm.weight)["weight_decay"] == 0.0
    assert group_of(groups, layer_norm.bias)["weight_decay"] == 0.0


def test_head_lr_defaults_to_lr_and_uncertainty_group(tiny_model):
    weighting = LossWeighting({"topic": 1.0, "ner": 1.0}, learned=True)
    groups = param_groups(tiny_model, make_cfg(), loss_weighting=weighting)
    group = next(g for g in groups if g["name"] == "loss_weighting")
    assert len(group["params"]) == 2 and group["weight_decay"] == 0.0 and group["lr"] == 1e-3
    assert group_of(groups, tiny_model.heads["ner"].classifier.weight)["lr"] == 1e-3


@pytest.mark.parametrize(("mode", "bottom_k", "frozen_prefixes"), [
    ("none", 0, []),
    ("encoder", 0, ["transformer."]),
    ("embeddings", 0, ["transformer.embeddings."]),
    ("bottom_k", 1, ["transformer.embeddings.", "transformer.encoder.layer.0."]),
])
def test_freezing_modes(tiny_model, mode, bottom_k, frozen_prefixes):
    apply_freezing(tiny_model, make_cfg(freezing={"mode": mode, "bottom_k": bottom_k}))
    for name, param in tiny_model.encoder.named_parameters():
        assert param.requires_grad == (not any(name.startswith(p) for p in frozen_prefixes)), name
    assert all(p.requires_grad for p in tiny_model.heads.parameters())
    frozen_ids = {id(p) for p in tiny_model.parameters() if not p.requires_grad}
    groups = param_groups(tiny_model, make_cfg())
    assert not frozen_ids & {id(p) for g in groups for p in g["params"]}


def test_named_head_freezing_and_unknown_head(tiny_model):
    apply_freezing(tiny_model, make_cfg(freezing={"heads": ["ner"]}))
    assert not any(p.requires_grad for p in tiny_model.heads["ner"].parameters())
    assert all(p.requires_grad for p in tiny_model.heads["topic"].parameters())
    with pytest.raises(MtstError, match="unknown task 'nope'"):
        apply_freezing(tiny_model, make_cfg(freezing={"heads": ["nope"]}))


def test_bottom_k_too_large(tiny_model):
    with pytest.raises(MtstError, match="only 2 layers"):
        apply_freezing(tiny_model, make_cfg(freezing={"mode": "bottom_k", "bottom_k": 3}))


def test_mode_all_warns_and_leaves_nothing(tiny_model, caplog):
    with caplog.at_level(logging.WARNING, logger="mtst"):
        apply_freezing(tiny_model, make_cfg(freezing={"mode": "all"}))
    assert "nothing to train" in caplog.text
    assert not any(p.requires_grad for p in tiny_model.parameters())
    with pytest.raises(MtstError, match="nothing to train"):
        build_optimizer(param_groups(tiny_model, make_cfg()), make_cfg())


def test_frozen_params_bit_identical_after_steps(tiny_model):
    cfg = make_cfg(freezing={"mode": "bottom_k", "bottom_k": 1}, optimizer={"weight_decay": 0.1, "max_steps": 10})
    apply_freezing(tiny_model, cfg)
    before = {name: p.detach().clone() for name, p in tiny_model.named_parameters()}
    optimizer = build_optimizer(param_groups(tiny_model, cfg, include_frozen=True), cfg)  # frozen held too
    tiny_model.train()
    features = tiny_model.tokenizer.collate(tiny_model.tokenizer(["the cat sat", "john lives in paris"]))
    for _ in range(3):
        out = tiny_model(features, labels={"topic": torch.tensor([0, 2])})
        out["loss"].backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    for name, param in tiny_model.named_parameters():
        changed = not torch.equal(before[name], param)
        if name.startswith(("encoder.transformer.embeddings.", "encoder.transformer.encoder.layer.0.")):
            assert not changed, name
        elif name.startswith(("heads.topic.", "encoder.transformer.encoder.layer.1.")):
            assert changed, name


def test_gradual_unfreezing_switches_at_the_right_step(tiny_model):
    unfreezer = GradualUnfreezer(tiny_model, every=3, unit="steps")
    layer1 = tiny_model.encoder.transformer.encoder.layer[1]
    layer0 = tiny_model.encoder.transformer.encoder.layer[0]
    embeddings = tiny_model.encoder.transformer.embeddings
    assert not any(p.requires_grad for p in tiny_model.encoder.parameters())
    changes = [unfreezer.step(step, epoch=0.0) for step in range(12)]
    assert changes == [s in (3, 6, 9) for s in range(12)]
    unfreezer2 = GradualUnfreezer(tiny_model, every=3, unit="steps")
    unfreezer2.step(3, 0.0)
    assert all(p.requires_grad for p in layer1.parameters())
    assert not any(p.requires_grad for p in layer0.parameters())
    unfreezer2.step(6, 0.0)
    assert all(p.requires_grad for p in layer0.parameters())
    assert not any(p.requires_grad for p in embeddings.parameters())
    assert unfreezer2.unfrozen_names == ["layer.1", "layer.0"]


def test_gradual_unfreezing_by_epoch_keeps_static_freezing(tiny_model):
    apply_freezing(tiny_model, make_cfg(freezing={"mode": "embeddings"}))
    unfreezer = GradualUnfreezer(tiny_model, every=1, unit="epochs")
    assert not unfreezer.step(10, epoch=0.9)
    assert unfreezer.step(20, epoch=2.0)
    assert not unfreezer.step(30, epoch=5.0)  # embeddings stay frozen: nothing left to unfreeze
    assert not any(p.requires_grad for p in tiny_model.encoder.transformer.embeddings.parameters())
    assert all(p.requires_grad for p in tiny_model.encoder.transformer.encoder.layer[0].parameters())


@pytest.mark.parametrize("schedule", ["linear", "cosine", "constant"])
def test_schedules(schedule):
    factors = [lr_factor(step, total_steps=20, warmup_steps=4, schedule=schedule) for step in range(21)]
    assert factors[:4] == pytest.approx([0.2, 0.4, 0.6, 0.8])
    assert factors[4] == pytest.approx(1.0)
    assert factors[20] == pytest.approx(1.0 if schedule == "constant" else 0.0)
    if schedule == "cosine":
        assert factors[12] == pytest.approx(0.5)
    if schedule == "linear":
        assert factors[12] == pytest.approx(0.5)


def test_scheduler_drives_group_lrs_and_state_is_plain(tiny_model):
    cfg = make_cfg(optimizer={"lr": 1e-3, "layer_decay": 0.5, "warmup_ratio": 0.0, "max_steps": 10})
    optimizer = build_optimizer(param_groups(tiny_model, cfg), cfg)
    scheduler = build_scheduler(optimizer, cfg, total_steps=10)
    for _ in range(5):
        optimizer.step()
        scheduler.step()
    lrs = {g["name"]: g["lr"] for g in optimizer.param_groups}
    assert lrs["encoder.depth0.decay"] == pytest.approx(0.5e-3)
    assert lrs["encoder.depth2.decay"] == pytest.approx(0.125e-3)
    import json

    json.dumps(scheduler.state_dict())  # JSON-safe: checkpoints never pickle
