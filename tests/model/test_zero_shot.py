"""Zero-shot heads: the cosine formula, label vectors from the exact embedding path, save/load, export parity."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mtst import MtstError, MultiTaskModel
from mtst.model.tasks import ZeroShotClassification

LABELS = ["sports", "politics", "finance"]
DESCRIPTIONS = ["games, teams and players", "governments and elections", "markets, stocks and money"]
SENTENCES = ["The team won the final.", "Stocks fell sharply today.", "a", "The minister resigned after the vote."]


@pytest.fixture
def zero_shot(tiny_st_dir) -> MultiTaskModel:
    model = MultiTaskModel.from_backbone(tiny_st_dir, branch_at=1)  # a branch: the head must read the embedding
    model.add_head("topic", "sentence_classification", ["a", "b"])
    model.add_head("zs", "zero_shot_classification", LABELS, descriptions=DESCRIPTIONS)
    return model


def test_label_vectors_are_the_exact_embeddings_of_the_label_texts(zero_shot):
    texts = [f"{label}: {text}" for label, text in zip(LABELS, DESCRIPTIONS, strict=True)]
    assert ZeroShotClassification.label_texts(zero_shot.config.heads["zs"]) == texts
    expected = zero_shot.encode(texts, normalize_embeddings=True)
    assert np.array_equal(zero_shot.heads["zs"].label_vectors.numpy(), expected)


def test_predictions_are_softmax_of_cosines_over_the_temperature(zero_shot):
    rows = zero_shot.predict(SENTENCES, tasks=["zs"])
    embeddings = torch.from_numpy(zero_shot.encode(SENTENCES, normalize_embeddings=True))
    cosines = embeddings @ zero_shot.heads["zs"].label_vectors.T
    probs = (cosines / zero_shot.heads["zs"].temperature).softmax(dim=-1)
    for row, expected in zip(rows, probs, strict=True):
        got = [row["zs"]["distribution"][label] for label in LABELS]
        assert np.allclose(got, expected.numpy(), atol=1e-5)
        assert row["zs"]["label"] == LABELS[int(expected.argmax())]


def test_forward_computes_the_embedding_for_a_zero_shot_head_even_when_told_not_to(zero_shot):
    features = zero_shot.tokenizer.collate(zero_shot.tokenizer(SENTENCES))
    with torch.no_grad():
        out = zero_shot(features, tasks=["zs"], embedding=False)
        assert "sentence_embedding" not in zero_shot(features, tasks=["topic"], embedding=False)
    unit = torch.nn.functional.normalize(out["sentence_embedding"], dim=-1)
    assert torch.allclose(out["logits"]["zs"], unit @ zero_shot.heads["zs"].label_vectors.T, atol=1e-6)


def test_save_and_load_give_identical_predictions(zero_shot, tmp_path):
    zero_shot.save(tmp_path / "m")
    loaded = MultiTaskModel.load(tmp_path / "m")
    assert torch.equal(loaded.heads["zs"].label_vectors, zero_shot.heads["zs"].label_vectors)
    assert loaded.config.heads["zs"].descriptions == DESCRIPTIONS
    assert loaded.predict(SENTENCES, tasks=["zs"]) == zero_shot.predict(SENTENCES, tasks=["zs"])


def test_onnx_export_parity(zero_shot, tmp_path):
    from mtst.inference.backends import load_predictor
    from mtst.inference.export import export_model

    zero_shot.save(tmp_path / "m")
    exported = load_predictor(export_model(tmp_path / "m", tmp_path / "onnx"))
    want, got = zero_shot.predict(SENTENCES), exported.predict(SENTENCES)
    for w, g in zip(want, got, strict=True):
        assert w["zs"]["label"] == g["zs"]["label"]
        assert np.allclose(list(w["zs"]["distribution"].values()), list(g["zs"]["distribution"].values()), atol=1e-4)


def test_bad_descriptions_are_one_line_errors(bare_model):
    with pytest.raises(MtstError, match="one description per label"):
        bare_model.add_head("zs", "zero_shot_classification", LABELS, descriptions=["x"])
    with pytest.raises(MtstError, match="zero-shot"):
        bare_model.add_head("topic", "sentence_classification", LABELS, descriptions=DESCRIPTIONS)


def test_mtst_predict_answers_a_zero_shot_task(zero_shot, tmp_path):
    import json

    from typer.testing import CliRunner

    from mtst.cli import app

    zero_shot.save(tmp_path / "m")
    result = CliRunner().invoke(app, ["predict", *SENTENCES[:2], "--model", str(tmp_path / "m"), "--tasks", "zs"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    want = zero_shot.predict(SENTENCES[:2], tasks=["zs"])
    assert [row["zs"]["label"] for row in rows] == [row["zs"]["label"] for row in want]
