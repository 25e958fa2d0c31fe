"""The side network: the embedding stays the backbone's bit for bit, the heads read a trained correction of its top."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from helpers import assert_only_tuned_part_learns, make_config, perturb
from mtst import MtstError, MultiTaskModel
from mtst.inference.agreement import parity_report
from mtst.inference.backends import load_predictor
from mtst.inference.export import export_model
from mtst.model.storage import SIDE_FILE
from mtst.training.recipe import train

SENTENCES = ["john smith works at google in paris", "the cat sat on the mat", "", "mary visited new york today"]
NER_LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"]


def with_side(backbone, reduction: int = 2, heads: bool = True) -> MultiTaskModel:
    model = MultiTaskModel.from_backbone(backbone, side_reduction=reduction)
    if heads:
        model.add_head("topic", "sentence_classification", ["world", "sports", "business"], hidden_dim=16)
        model.add_head("ner", "windowed_token_classification", NER_LABELS, hidden_dim=8)
    return model


@pytest.mark.parametrize("heads", [True, False])
@pytest.mark.parametrize("reduction", [2, 4])
def test_encode_and_the_predicted_embedding_are_the_backbone_bit_for_bit(tiny_st_dir, reduction, heads):
    plain = MultiTaskModel.from_backbone(tiny_st_dir)
    model = with_side(tiny_st_dir, reduction, heads)
    perturb(model.side)  # a trained side network must not move the embedding either
    expected = plain.encode(SENTENCES, batch_size=2)  # padded batches
    assert np.array_equal(model.encode(SENTENCES, batch_size=2), expected)
    rows = model.predict(SENTENCES, include_embedding=True, batch_size=2)  # the same batches
    assert np.array_equal(np.array([row["embedding"] for row in rows], dtype=np.float32), expected)
    backbone = plain.encoder.transformer.state_dict()
    assert all(torch.equal(value, backbone[key]) for key, value in model.encoder.transformer.state_dict().items())


def test_a_fresh_side_network_gives_exactly_the_frozen_encoder_states(tiny_st_dir):
    model = with_side(tiny_st_dir)
    batch = model.tokenizer.collate(model.tokenizer(SENTENCES))
    with torch.no_grad():
        out = model(batch)
        top = model.encoder(batch["input_ids"], batch["attention_mask"])  # the backbone's own forward
    assert torch.equal(out["token_embeddings"], top * batch["attention_mask"][..., None])
    assert torch.equal(out["task_embedding"], out["sentence_embedding"])
    perturb(model.side)
    with torch.no_grad():
        moved = model(batch)
    assert not torch.allclose(moved["token_embeddings"], out["token_embeddings"], atol=1e-3)
    assert torch.equal(moved["sentence_embedding"], out["sentence_embedding"])


def test_gradients_never_reach_the_backbone(tiny_st_dir):
    model = with_side(tiny_st_dir).train()
    perturb(model.side.up)  # a zero up-projection would stop every gradient below it
    assert_only_tuned_part_learns(model, model.side, SENTENCES)
    assert model.tuned_encoder() is model.side


def test_side_reduction_must_divide_the_width_and_excludes_a_branch(tiny_st_dir):
    with pytest.raises(MtstError, match="must divide the encoder's hidden size 32, got 3"):
        MultiTaskModel.from_backbone(tiny_st_dir, side_reduction=3)
    with pytest.raises(ValidationError, match="two task paths"):
        MultiTaskModel.from_backbone(tiny_st_dir, branch_at=1, side_reduction=2)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_save_load_round_trip_stores_the_side_network(tiny_st_dir, tmp_path, dtype):
    model = with_side(tiny_st_dir)
    perturb(model.side)
    if dtype == "bfloat16":  # weights bf16 can hold, so the stored model is the one in memory
        with torch.no_grad():
            for param in [*model.side.parameters(), *model.heads.parameters()]:
                param.copy_(param.to(torch.bfloat16).float())
    saved = model.save(tmp_path / "model", include_encoder=False, dtype=dtype)
    assert (saved / SIDE_FILE).exists() and not (saved / "encoder").exists()
    loaded = MultiTaskModel.load(saved)
    assert loaded.config.encoder.side_reduction == 2
    assert loaded.side.up.weight.dtype == torch.float32
    assert all(torch.equal(a, b) for a, b in zip(loaded.side.state_dict().values(), model.side.state_dict().values(),
                                                 strict=True))
    assert loaded.predict(SENTENCES, include_embedding=True) == model.predict(SENTENCES, include_embedding=True)


@pytest.mark.parametrize("format", ["onnx", "openvino"])
def test_export_matches_torch(tiny_st_dir, tmp_path, format):
    if format == "openvino":
        pytest.importorskip("openvino")
    model = with_side(tiny_st_dir)
    perturb(model.side)
    saved = model.save(tmp_path / "model")
    exported = export_model(saved, tmp_path / format, format=format)
    if format == "openvino":  # fp32 inside OpenVINO, as the export tests force it (it may pick bf16 on this CPU)
        from mtst.inference.runtimes import OpenVINORuntime
        from mtst.model.predictor import Predictor

        predictor = Predictor(OpenVINORuntime(exported, inference_precision="f32"))
    else:
        predictor = load_predictor(exported)
    fresh = MultiTaskModel.load(saved)  # never the object that was traced
    sentences = [*SENTENCES[:2], "a", "Mary works at Acme Corp in London, and John lives in Paris with a cat."]
    report = parity_report(fresh, predictor, sentences)
    for name in ("sentence_embedding", "logits_topic", "logits_ner"):
        assert report[f"{name}/max_abs_diff"] <= 1e-4, (name, report)


def test_a_side_run_trains_only_the_side_network_and_heads_and_resumes_exactly(tmp_path, tiny_st_dir):
    sections = {"model": {"side_reduction": 2, "branch_at": None}, "optimizer": {"max_steps": 8,
                "grad_accumulation": 2}, "run": {"checkpoint_every_steps": 3}, "sampling": {"strategy": "temperature"}}
    full = train(make_config(tmp_path / "a", tiny_st_dir, **sections))
    config_b = make_config(tmp_path / "b", tiny_st_dir, **sections)
    cut = train(config_b, stop_after_steps=5)
    resumed = train(config_b, resume=Path(cut.output_dir))
    a = MultiTaskModel.load(Path(full.output_dir) / "final")
    b = MultiTaskModel.load(Path(resumed.output_dir) / "final")
    for key, value in a.state_dict().items():
        assert torch.equal(value, b.state_dict()[key]), key
    start = MultiTaskModel.from_backbone(tiny_st_dir, side_reduction=2)
    for key, value in start.encoder.state_dict().items():
        assert torch.equal(value, a.encoder.state_dict()[key]), key  # the backbone never trained
    assert not torch.equal(start.side.up.weight, a.side.up.weight)
    assert np.array_equal(a.encode(SENTENCES), start.encode(SENTENCES))


def test_a_side_network_refuses_pair_tasks_and_an_explicit_branch(tmp_path, tiny_st_dir):
    with pytest.raises(ValidationError, match="two task paths"):
        make_config(tmp_path, tiny_st_dir, model={"side_reduction": 2, "branch_at": 1})
    from mtst.training.freezing import apply_freezing

    model = with_side(tiny_st_dir, heads=False)
    model.add_head("sts", "scored_pairs", [])
    with pytest.raises(MtstError, match="pair task 'sts' trains the embedding path"):
        apply_freezing(model, make_config(tmp_path, tiny_st_dir, model={"side_reduction": 2}))


def test_optimizer_groups_and_freezing_treat_the_side_network_as_the_tuned_encoder(tmp_path, tiny_st_dir):
    from mtst.training.freezing import GradualUnfreezer, apply_freezing
    from mtst.training.optim import param_groups

    model = with_side(tiny_st_dir)
    config = make_config(tmp_path, tiny_st_dir, model={"side_reduction": 2},
                         optimizer={"lr": 1e-4, "head_lr": 1e-2, "layer_decay": 0.5},
                         freezing={"mode": "bottom_k", "bottom_k": 1})
    assert apply_freezing(model, config) == ["side.input", "side.layer.0"]
    assert not any(p.requires_grad for p in model.encoder.parameters())
    groups = {group["name"]: group for group in param_groups(model, config)}
    assert set(groups) == {"side.decay", "side.no_decay", "heads.decay", "heads.no_decay"}
    assert {group["lr"] for group in groups.values()} == {1e-2}  # the side network trains at head_lr
    trained = {id(p) for group in groups.values() for p in group["params"]}
    assert trained == {id(p) for p in [*model.side.rungs[1].parameters(), *model.side.up.parameters(),
                                       *model.heads.parameters()]}
    unfreezer = GradualUnfreezer(model, every=2, unit="steps")
    assert [name for name, _ in unfreezer.schedule] == ["side.layer.1"]  # the up-projection comes with the top
    unfreezer.step(2, 0.0)
    assert all(p.requires_grad for p in [*model.side.rungs[1].parameters(), *model.side.up.parameters()])
