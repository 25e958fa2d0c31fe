"""The embedding anchor: teacher embeddings, its losses, and what it does inside a training run."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
import yaml

from helpers import NER_SENTENCES, TOPIC_ROWS, make_config, read_jsonl
from mtst import MultiTaskModel
from mtst.data.readers import Examples
from mtst.data.task_encoding import encode_task
from mtst.errors import MtstError
from mtst.training.anchor import ANCHOR_LOSSES, EmbeddingAnchor
from mtst.training.config import load_train_config
from mtst.training.recipe import Recipe, train

# Sentences the runs never train on, to see how far the embeddings of unseen text move.
HELD_OUT = ["the cat won the game", "mary fell in london", "good movie today", "the man play the guitar",
            "terrible film , bad", "new york stock rose", "john sat on the dog", "acme won ."]
ANCHOR = {"embedding_anchor": {"weight": 10.0}}
QUIET = {"evaluation": {"every_steps": 1000}}  # no dev evaluation inside the short runs


def final_state(result) -> dict[str, torch.Tensor]:
    return MultiTaskModel.load(Path(result.output_dir) / "final").state_dict()


@pytest.mark.parametrize("name", sorted(ANCHOR_LOSSES))
def test_anchor_losses_vanish_on_the_teacher_and_grow_away_from_it(name):
    teacher = torch.nn.functional.normalize(torch.randn(5, 8), dim=-1)  # (B, H)
    loss = ANCHOR_LOSSES[name]
    assert loss(teacher.clone(), teacher).item() == pytest.approx(0.0, abs=1e-6)
    near, far = teacher + 0.05 * torch.randn(5, 8), -teacher
    assert 0 < loss(near, teacher).item() < loss(far, teacher).item()


def test_loss_values_follow_their_definitions():
    teacher = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    student = torch.tensor([[0.0, 1.0], [0.0, 2.0]])  # orthogonal (cos 0), then parallel (cos 1)
    assert ANCHOR_LOSSES["cosine"](student, teacher).item() == pytest.approx(0.5)  # mean(1 - [0, 1])
    assert ANCHOR_LOSSES["mse"](student, teacher).item() == pytest.approx((1 + 1 + 0 + 1) / 4)


def test_teacher_is_the_models_own_sentence_embedding(tiny_st_dir):
    model = MultiTaskModel.from_backbone(tiny_st_dir)
    model.train()
    texts = [text for text, _ in TOPIC_ROWS]
    words = [[word for word, _ in sentence] for sentence in NER_SENTENCES]
    encoded = {
        "topic": encode_task(model.tokenizer, _examples(texts, [label for _, label in TOPIC_ROWS]),
                             ["business", "sports", "world"], "sentence_classification"),
        "ner": encode_task(model.tokenizer, _examples(words, [[tag for _, tag in s] for s in NER_SENTENCES]),
                           ["O", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-PER", "I-PER"], "token_classification"),
    }
    anchor = EmbeddingAnchor(model, encoded, batch_size=3)  # 3: several length-sorted batches
    assert model.training  # the teacher pass ran in eval mode and gave the mode back
    assert anchor.teacher["topic"].shape == (len(texts), 32) and anchor.teacher["ner"].shape == (len(words), 32)
    torch.testing.assert_close(anchor.teacher["topic"], model.encode(texts, convert_to="torch"))
    model.eval()
    with torch.no_grad():  # NER: the embedding of the word sequence, one sentence at a time
        for i, item in enumerate(encoded["ner"].items):
            features = {k: v for k, v in model.tokenizer.collate([item]).items() if k != "word_ids"}
            expected = model(features, tasks=[])["sentence_embedding"][0]
            torch.testing.assert_close(anchor.teacher["ner"][i], expected)
    student = anchor.teacher["topic"][[2, 0]] * 2  # (B, H): same directions, so cosine loss is 0
    assert anchor.loss("topic", [2, 0], student).item() == pytest.approx(0.0, abs=1e-6)


def test_anchor_keeps_held_out_embeddings_close_to_the_start(tmp_path, tiny_st_dir):
    """High encoder LR: without the anchor the embeddings of unseen sentences drift far; with it they stay."""
    start = MultiTaskModel.from_backbone(tiny_st_dir).encode(HELD_OUT, convert_to="torch")  # (N, H)
    drift = {}
    for name, extra in (("plain", {}), ("anchored", ANCHOR)):
        config = make_config(tmp_path / name, tiny_st_dir, optimizer={"lr": 3e-3, "max_steps": 16}, **QUIET, **extra)
        model = MultiTaskModel.load(Path(train(config).output_dir) / "final")
        cosine = torch.nn.functional.cosine_similarity(model.encode(HELD_OUT, convert_to="torch"), start)
        drift[name] = 1.0 - cosine.mean().item()
    assert drift["plain"] > 0.1, drift  # the run without the anchor really moved the embeddings
    assert drift["anchored"] < 0.25 * drift["plain"], drift


def test_anchor_loss_is_logged_per_task(tmp_path, tiny_st_dir):
    result = train(make_config(tmp_path, tiny_st_dir, optimizer={"max_steps": 4}, **QUIET, **ANCHOR))
    logs = [r for r in read_jsonl(Path(result.output_dir) / "metrics.jsonl") if "loss" in r]
    assert logs and all(set(r["anchor"]) == set(r["loss"]) for r in logs)
    assert all(value >= 0 for r in logs for value in r["anchor"].values())
    assert any(value > 0 for r in logs for value in r["anchor"].values())  # dropout alone moves the student


def test_resume_with_anchor_matches_uninterrupted_run_exactly(tmp_path, tiny_st_dir):
    """The resumed run must anchor to the starting encoder, not to the checkpoint's trained one."""
    sections = {"optimizer": {"lr": 3e-3, "max_steps": 8, "grad_accumulation": 2},
                "run": {"checkpoint_every_steps": 4}, **ANCHOR}  # logs every 2 steps: windows line up on resume
    full = train(make_config(tmp_path / "a", tiny_st_dir, **sections))
    config_b = make_config(tmp_path / "b", tiny_st_dir, **sections)
    cut = train(config_b, stop_after_steps=5)  # "crashes" after step 5: the last checkpoint is step 4
    resumed = train(config_b, resume=Path(cut.output_dir))
    a, b = final_state(full), final_state(resumed)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    anchors_a = [r["anchor"] for r in read_jsonl(Path(full.output_dir) / "metrics.jsonl") if "anchor" in r]
    anchors_b = [r["anchor"] for r in read_jsonl(Path(resumed.output_dir) / "metrics.jsonl") if "anchor" in r]
    assert anchors_a == anchors_b and len(anchors_a) == 4


def test_weight_zero_is_the_same_run_as_no_section(tmp_path, tiny_st_dir):
    plain = train(make_config(tmp_path / "a", tiny_st_dir))
    zero = train(make_config(tmp_path / "b", tiny_st_dir, embedding_anchor={"weight": 0.0}))
    a, b = final_state(plain), final_state(zero)
    assert all(torch.equal(a[key], b[key]) for key in a)
    logs_a = [(r.get("loss"), r.get("eval")) for r in read_jsonl(Path(plain.output_dir) / "metrics.jsonl")]
    logs_b = [(r.get("loss"), r.get("eval")) for r in read_jsonl(Path(zero.output_dir) / "metrics.jsonl")]
    assert logs_a == logs_b
    assert not any("anchor" in r for r in read_jsonl(Path(zero.output_dir) / "metrics.jsonl"))


def test_anchor_changes_the_run_when_on(tmp_path, tiny_st_dir):
    plain = train(make_config(tmp_path / "a", tiny_st_dir, optimizer={"max_steps": 2}, **QUIET))
    anchored = train(make_config(tmp_path / "b", tiny_st_dir, optimizer={"max_steps": 2}, **QUIET, **ANCHOR))
    key = "encoder.transformer.encoder.layer.0.output.dense.weight"
    assert not torch.equal(final_state(plain)[key], final_state(anchored)[key])


def test_frozen_encoder_skips_the_anchor(tmp_path, tiny_st_dir, caplog):
    config = make_config(tmp_path, tiny_st_dir, freezing={"mode": "encoder"}, **QUIET, **ANCHOR)
    with caplog.at_level(logging.INFO, logger="mtst"):
        result = train(config)
    assert "embedding_anchor skipped: the embedding path does not train" in caplog.text
    assert not any("anchor" in r for r in read_jsonl(Path(result.output_dir) / "metrics.jsonl"))


@pytest.mark.parametrize("section, message", [
    ({"weight": -1.0}, "embedding_anchor.weight: Input should be greater than or equal to 0"),
    ({"weight": ".nan"}, "embedding_anchor.weight"),
    ({"loss": "l1"}, "embedding_anchor.loss: Input should be 'cosine' or 'mse'"),
    ({"wieght": 1.0}, "embedding_anchor.wieght: Extra inputs are not permitted"),
])
def test_invalid_anchor_sections_name_the_key(tmp_path, tiny_st_dir, section, message):
    raw = make_config(tmp_path, tiny_st_dir).model_dump(mode="json")
    raw["embedding_anchor"] = section
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(raw).replace("'.nan'", ".nan"))
    with pytest.raises(MtstError, match=message.replace("(", r"\(")):
        load_train_config(path)


def test_anchor_section_defaults(tmp_path, tiny_st_dir):
    config = make_config(tmp_path, tiny_st_dir, embedding_anchor={})
    assert (config.embedding_anchor.weight, config.embedding_anchor.loss) == (1.0, "cosine")
    assert make_config(tmp_path, tiny_st_dir).embedding_anchor is None  # off unless asked for


def _examples(texts: list, labels: list) -> Examples:
    return Examples(texts, labels, [f"test:{i}" for i in range(len(texts))])


def test_teacher_is_the_init_from_models_encoder(tmp_path, tiny_st_dir):
    """Continuing from a trained model anchors to that model's embeddings, not to the backbone's."""
    first = train(make_config(tmp_path / "first", tiny_st_dir, optimizer={"lr": 3e-3, "max_steps": 4}, **QUIET))
    start_dir = Path(first.output_dir) / "final"
    config = make_config(tmp_path / "second", tiny_st_dir, model={"init_from": str(start_dir)}, **QUIET, **ANCHOR)
    recipe = Recipe(config)
    recipe.setup()
    texts = [text for text, _ in TOPIC_ROWS]
    expected = MultiTaskModel.load(start_dir).encode(texts, convert_to="torch")
    torch.testing.assert_close(recipe.anchor.teacher["topic"], expected)
    backbone = MultiTaskModel.from_backbone(tiny_st_dir).encode(texts, convert_to="torch")
    assert not torch.allclose(recipe.anchor.teacher["topic"], backbone, atol=1e-3)
