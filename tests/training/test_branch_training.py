"""Training with a task branch: only the branch and the heads move, from cached shared states, resumably."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from helpers import make_config
from mtst import MultiTaskModel
from mtst.data.task_encoding import encode_task
from mtst.training.feature_cache import FeatureCache
from mtst.training.freezing import GradualUnfreezer, apply_freezing
from mtst.training.optim import param_groups
from mtst.training.recipe import train

BRANCH = {"model": {"branch_at": 1}}
SENTENCES = ["john lives in paris", "the team won the game today", "acme corp stock fell"]


def final_model(result) -> MultiTaskModel:
    return MultiTaskModel.load(Path(result.output_dir) / "final")


def test_a_branch_run_trains_the_branch_and_resumes_exactly(tmp_path, tiny_st_dir):
    sections = {**BRANCH, "optimizer": {"max_steps": 8, "grad_accumulation": 2}, "run": {"checkpoint_every_steps": 3},
                "sampling": {"strategy": "temperature"}}
    full = train(make_config(tmp_path / "a", tiny_st_dir, **sections))
    config_b = make_config(tmp_path / "b", tiny_st_dir, **sections)
    cut = train(config_b, stop_after_steps=5)
    resumed = train(config_b, resume=Path(cut.output_dir))
    a, b = final_model(full), final_model(resumed)
    for key, value in a.state_dict().items():
        assert torch.equal(value, b.state_dict()[key]), key
    start = MultiTaskModel.from_backbone(tiny_st_dir, branch_at=1)
    for key, value in start.encoder.state_dict().items():
        assert torch.equal(value, a.encoder.state_dict()[key]), key  # the backbone never trained
    assert not torch.equal(start.branch.layers[0].output.dense.weight, a.branch.layers[0].output.dense.weight)
    assert np.array_equal(a.encode(SENTENCES), start.encode(SENTENCES))


def test_a_branch_run_can_reference_its_backbone_instead_of_copying_it(tmp_path, tiny_st_dir):
    result = train(make_config(tmp_path, tiny_st_dir, **BRANCH, run={"keep_encoder_in_saved_model": False}))
    final = Path(result.output_dir) / "final"
    assert not (final / "encoder").exists() and (final / "branch.safetensors").exists()
    assert MultiTaskModel.load(final).config.encoder.branch_at == 1


def test_the_branch_cache_holds_the_shared_bottom(tiny_st_dir):
    model = MultiTaskModel.from_backbone(tiny_st_dir, branch_at=1)
    model.add_head("ner", "token_classification", ["O", "B-PER", "I-PER"])
    from mtst.data.readers import Examples

    examples = Examples([s.split() for s in SENTENCES], [["O"] * len(s.split()) for s in SENTENCES], ["t:1"] * 3)
    encoded = {"ner": encode_task(model.tokenizer, examples, ["O", "B-PER", "I-PER"], "token_classification")}
    cache = FeatureCache(model, encoded)
    batch = model.tokenizer.collate([encoded["ner"].items[i] for i in (0, 1, 2)])
    with torch.no_grad():
        shared = model.shared_states(batch["input_ids"], batch["attention_mask"])
    mask = batch["attention_mask"][..., None].bool()
    cached = cache.batch("ner", [0, 1, 2])
    torch.testing.assert_close(cached.masked_fill(~mask, 0), shared.masked_fill(~mask, 0), rtol=1e-5, atol=1e-6)


def test_optimizer_groups_and_freezing_apply_to_the_branch(tmp_path, tiny_st_dir):
    model = MultiTaskModel.from_backbone(tiny_st_dir, branch_at=0)  # a 2-layer branch
    model.add_head("topic", "sentence_classification", ["a", "b"])
    config = make_config(tmp_path, tiny_st_dir, optimizer={"layer_decay": 0.5}, freezing={"mode": "bottom_k",
                                                                                          "bottom_k": 1})
    frozen = apply_freezing(model, config)
    assert frozen == ["branch.layer.0"]
    assert not any(p.requires_grad for p in model.encoder.parameters())
    groups = {group["name"]: group for group in param_groups(model, config)}
    assert set(groups) == {"branch.depth0.decay", "branch.depth0.no_decay", "heads.decay", "heads.no_decay"}
    trained = {id(p) for group in groups.values() for p in group["params"]}
    assert trained == {id(p) for p in [*model.branch.layers[1].parameters(), *model.heads.parameters()]}
    unfreezer = GradualUnfreezer(model, every=2, unit="steps")
    assert [name for name, _ in unfreezer.schedule] == ["branch.layer.1"]  # layer 0 stays frozen by bottom_k
    assert not any(p.requires_grad for p in model.branch.parameters())
    unfreezer.step(2, 0.0)
    assert all(p.requires_grad for p in model.branch.layers[1].parameters())
