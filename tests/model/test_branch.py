"""The task branch: the embedding stays the backbone's bit for bit, the heads get a trainable copy of its top."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from helpers import assert_only_tuned_part_learns, perturb
from mtst import MtstError, MultiTaskModel
from mtst.model.storage import BRANCH_FILE, CONFIG_FILE

SENTENCES = ["john smith works at google in paris", "the cat sat on the mat", "", "mary visited new york today"]
NER_LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"]


def branched(backbone, branch_at: int = 1) -> MultiTaskModel:
    model = MultiTaskModel.from_backbone(backbone, branch_at=branch_at)
    model.add_head("topic", "sentence_classification", ["world", "sports", "business"], hidden_dim=16)
    model.add_head("ner", "windowed_token_classification", NER_LABELS, hidden_dim=8)
    return model


@pytest.mark.parametrize("branch_at", [0, 1, 2])
def test_encode_and_the_predicted_embedding_are_the_backbone_bit_for_bit(tiny_st_dir, branch_at):
    plain = MultiTaskModel.from_backbone(tiny_st_dir)
    model = branched(tiny_st_dir, branch_at)
    perturb(model.branch)  # a trained branch must not move the embedding either
    expected = plain.encode(SENTENCES, batch_size=2)  # padded batches
    assert np.array_equal(model.encode(SENTENCES, batch_size=2), expected)
    rows = model.predict(SENTENCES, include_embedding=True, batch_size=2)  # the same batches
    assert np.array_equal(np.array([row["embedding"] for row in rows], dtype=np.float32), expected)


def test_a_fresh_branch_predicts_what_the_backbone_would(tiny_st_dir):
    model = branched(tiny_st_dir, 1)
    plain = MultiTaskModel.from_backbone(tiny_st_dir)
    for name, config in model.config.heads.items():
        plain.add_head(name, config.type, config.labels, config.hidden_dim, config.dropout)
    plain.heads.load_state_dict(model.heads.state_dict())
    batch = model.tokenizer.collate(model.tokenizer(SENTENCES))
    with torch.no_grad():
        got, want = model(batch), plain(batch)
    assert torch.allclose(got["token_embeddings"], want["token_embeddings"], atol=1e-6)
    assert torch.allclose(got["logits"]["topic"], want["logits"]["topic"], atol=1e-6)
    perturb(model.branch)
    with torch.no_grad():
        moved = model(batch)
    assert not torch.allclose(moved["logits"]["topic"], want["logits"]["topic"], atol=1e-3)
    assert torch.equal(moved["sentence_embedding"], got["sentence_embedding"])


def test_gradients_never_reach_the_embedding_path(tiny_st_dir):
    model = branched(tiny_st_dir, 1).train()
    assert_only_tuned_part_learns(model, model.branch, SENTENCES)


def test_the_embedding_path_can_be_skipped_for_training(tiny_st_dir):
    model = branched(tiny_st_dir, 1)
    batch = model.tokenizer.collate(model.tokenizer(SENTENCES))
    with torch.no_grad():
        full, lean = model(batch), model(batch, embedding=False)
        shared = model.shared_states(batch["input_ids"], batch["attention_mask"])
        cached = model({**batch, "shared_states": shared}, embedding=False)
    assert "sentence_embedding" not in lean
    assert torch.equal(lean["logits"]["ner"], full["logits"]["ner"])
    assert torch.equal(cached["logits"]["ner"], full["logits"]["ner"])


def test_branch_at_the_top_is_a_frozen_encoder_and_out_of_range_is_an_error(tiny_st_dir):
    model = branched(tiny_st_dir, 2)  # the tiny encoder has 2 layers: an empty branch
    assert len(model.branch.layers) == 0
    batch = model.tokenizer.collate(model.tokenizer(SENTENCES))
    with torch.no_grad():
        out = model(batch)
    assert torch.equal(out["task_embedding"], out["sentence_embedding"])
    with pytest.raises(MtstError, match="branch_at must be between 0 and 2"):
        MultiTaskModel.from_backbone(tiny_st_dir, branch_at=3)


def test_an_encoder_whose_layers_do_not_replay_its_forward_cannot_branch(tiny_st_dir, monkeypatch):
    from mtst.model.encoder import Encoder

    monkeypatch.setattr(Encoder, "layer_mask", lambda self, mask, hidden: None)  # loses the padding mask
    with pytest.raises(MtstError, match="does not reproduce its forward pass"):
        MultiTaskModel.from_backbone(tiny_st_dir, branch_at=1)


@pytest.mark.parametrize("include_encoder", [True, False])
def test_save_load_round_trip_stores_only_the_branch_and_heads(tiny_st_dir, tmp_path, include_encoder):
    model = branched(tiny_st_dir, 1)
    perturb(model.branch)
    saved = model.save(tmp_path / "model", include_encoder=include_encoder)
    assert (saved / BRANCH_FILE).exists() and (saved / "encoder").exists() is include_encoder
    assert json.loads((saved / CONFIG_FILE).read_text())["encoder"]["branch_at"] == 1
    loaded = MultiTaskModel.load(saved)
    assert loaded.predict(SENTENCES, include_embedding=True) == model.predict(SENTENCES, include_embedding=True)
    assert all(torch.equal(a, b) for a, b in zip(loaded.branch.state_dict().values(),
                                                 model.branch.state_dict().values(), strict=True))


def test_bfloat16_storage_halves_the_files_and_keeps_the_labels(tiny_st_dir, tmp_path):
    model = branched(tiny_st_dir, 1)
    perturb(model.branch)
    full = model.save(tmp_path / "fp32", include_encoder=False)
    half = model.save(tmp_path / "bf16", include_encoder=False, dtype="bfloat16")
    for name in (BRANCH_FILE, "heads.safetensors"):
        assert (half / name).stat().st_size < 0.6 * (full / name).stat().st_size
    loaded = MultiTaskModel.load(half)
    assert loaded.branch.layers[0].output.dense.weight.dtype == torch.float32  # loaded back as float32
    assert np.array_equal(loaded.encode(SENTENCES), model.encode(SENTENCES))  # the backbone is untouched
    got, want = loaded.predict(SENTENCES), model.predict(SENTENCES)
    assert [row["topic"]["label"] for row in got] == [row["topic"]["label"] for row in want]
    with pytest.raises(MtstError, match="unknown dtype 'int4'"):
        model.save(tmp_path / "bad", dtype="int4")


def test_a_backbone_with_fewer_layers_than_branch_at_is_a_clear_error(tiny_st_dir, tmp_path):
    saved = branched(tiny_st_dir, 2).save(tmp_path / "model")
    config = json.loads((saved / CONFIG_FILE).read_text())
    config["encoder"]["branch_at"] = 5
    (saved / CONFIG_FILE).write_text(json.dumps(config))
    with pytest.raises(MtstError, match="branch_at must be between 0 and 2"):
        MultiTaskModel.load(saved)
