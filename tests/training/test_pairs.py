"""Sentence-pair tasks: reading pairs, training the embedding path (alone and beside a task branch), metrics."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import make_config
from mtst import MtstError, MultiTaskModel
from mtst.data.pairs import read_pair_examples
from mtst.data.sources import DataSource
from mtst.inference.backends import load_predictor
from mtst.inference.export import ExportWrapper, export_model
from mtst.training.config import TrainConfig
from mtst.training.evaluation import evaluate_pairs
from mtst.training.recipe import train

PAIRS = [("the cat sat on the mat", "the cat sat on the mat", 5.0), ("the dog sat on the mat", "the cat sat", 3.0),
         ("john lives in paris", "mary visited london", 1.0), ("the stock fell today", "the team won the game", 0.0),
         ("market rose today", "the stock rose", 3.5), ("acme corp stock fell", "the dog sat", 0.5),
         ("the team won", "the team won the game", 4.0), ("john works at google", "new york", 0.2)]


def write_pairs(path: Path) -> Path:
    path.write_text("first\tsecond\tscore\n" + "".join(f"{a}\t{b}\t{s}\n" for a, b, s in PAIRS), encoding="utf-8")
    return path


def pair_task(path: Path, kind: str = "scored_pairs") -> dict:
    source = {"path": str(path), "format": "tsv", "text_column": "first", "text_pair_column": "second",
              "label_column": "score"}
    return {"name": "sts", "type": kind, "data": {"train": source, "dev": source}}


def test_pairs_are_read_from_tsv_and_jsonl(tmp_path):
    scored = read_pair_examples(DataSource.model_validate({**pair_task(write_pairs(tmp_path / "p.tsv"))["data"]
                                                          ["train"]}), scored=True)
    assert scored.texts[1] == ("the dog sat on the mat", "the cat sat") and scored.labels[1] == 3.0
    lines = [json.dumps({"q": a, "p": b}) for a, b, _ in PAIRS[:3]]
    (tmp_path / "p.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    source = DataSource(path=tmp_path / "p.jsonl", format="jsonl", text_column="q", text_pair_column="p")
    positives = read_pair_examples(source, scored=False)
    assert len(positives) == 3 and set(positives.labels) == {1.0}
    with pytest.raises(MtstError, match="p.jsonl:2: no key .p."):
        (tmp_path / "p.jsonl").write_text(lines[0] + "\n" + json.dumps({"q": "x"}) + "\n", encoding="utf-8")
        read_pair_examples(source, scored=False)


def test_an_untrained_pair_task_leaves_encode_the_backbone(tiny_st_dir):
    plain = MultiTaskModel.from_backbone(tiny_st_dir)
    model = MultiTaskModel.from_backbone(tiny_st_dir)
    model.add_head("sts", "scored_pairs", [])
    sentences = [a for a, _, _ in PAIRS]
    assert np.array_equal(model.encode(sentences), plain.encode(sentences))
    assert model.tasks == [] and list(model.objectives) == ["sts"]
    with pytest.raises(MtstError, match="'sts' is a pair task"):
        model.predict(["a"], tasks=["sts"])
    assert ExportWrapper(model).output_names == ["sentence_embedding"]  # nothing per sentence to export


def spearman_of(model: MultiTaskModel) -> float:
    from mtst.data.readers import Examples

    examples = Examples([(a, b) for a, b, _ in PAIRS], [s for _, _, s in PAIRS], ["p:1"] * len(PAIRS))
    return evaluate_pairs(model, "sts", examples)["sts/spearman"]


def test_a_scored_pair_task_trains_the_embedding(tmp_path, tiny_st_dir):
    raw = make_config(tmp_path, tiny_st_dir).model_dump(mode="json")
    raw["tasks"] = [pair_task(write_pairs(tmp_path / "p.tsv"))]
    raw["optimizer"].update(max_steps=30, lr=5e-3)
    result = train(TrainConfig.model_validate(raw))
    trained = MultiTaskModel.load(Path(result.output_dir) / "final")
    start = MultiTaskModel.from_backbone(tiny_st_dir)
    start.add_head("sts", "scored_pairs", [])
    assert spearman_of(trained) > spearman_of(start) + 10
    assert "sts/spearman" in result.best_metrics and "mean/main" in result.best_metrics


def test_beside_a_branch_pairs_train_only_the_embedding_top(tmp_path, tiny_st_dir):
    raw = make_config(tmp_path, tiny_st_dir, model={"branch_at": 1}).model_dump(mode="json")
    raw["tasks"] = [raw["tasks"][0], pair_task(write_pairs(tmp_path / "p.tsv"))]
    raw["optimizer"].update(max_steps=10, lr=5e-3)
    raw["sampling"] = {"strategy": "round_robin"}
    result = train(TrainConfig.model_validate(raw))
    trained = MultiTaskModel.load(Path(result.output_dir) / "final")
    start = MultiTaskModel.from_backbone(tiny_st_dir, branch_at=1)
    before, after = start.encoder.state_dict(), trained.encoder.state_dict()
    bottom = [key for key in before if "encoder.layer.1." not in key and "pooler" not in key]
    assert bottom and all(torch.equal(before[key], after[key]) for key in bottom)  # shared bottom: untouched
    top = "transformer.encoder.layer.1.output.dense.weight"
    assert not torch.equal(before[top], after[top])  # the embedding path's own top layer trained
    branch = "layers.0.output.dense.weight"
    assert not torch.equal(start.branch.state_dict()[branch], trained.branch.state_dict()[branch])
    assert (Path(result.output_dir) / "final" / "encoder").is_dir()  # a trained encoder is saved, not referenced


def test_positive_pair_metrics_rank_every_candidate(tiny_st_dir, monkeypatch):
    from mtst.data.readers import Examples

    model = MultiTaskModel.from_backbone(tiny_st_dir)
    model.add_head("qa", "positive_pairs", [])
    vectors = {"q1": [1.0, 0.0], "q2": [0.0, 1.0], "q3": [0.6, 0.8], "a1": [1.0, 0.0], "a2": [0.8, 0.6],
               "a3": [0.0, 1.0]}
    monkeypatch.setattr(model, "encode", lambda texts, **_: torch.tensor([vectors[t] for t in texts]))
    metrics = evaluate_pairs(model, "qa", Examples([("q1", "a1"), ("q2", "a2"), ("q3", "a3")], [1.0] * 3,
                                                   ["f:1"] * 3))
    # q1 ranks a1 first; q2 ranks a3 (1.0) above a2 (0.6); q3: a2 0.96 > a3 0.8 > a1 0.6, so a3 is second
    assert metrics["qa/recall@1"] == pytest.approx(100 / 3)
    assert metrics["qa/mrr"] == pytest.approx(100 * (1 + 1 / 2 + 1 / 2) / 3)
    assert metrics["qa/recall@10"] == pytest.approx(100.0)


def test_an_export_carries_the_embedding_path_a_pair_task_trained(tmp_path, tiny_st_dir):
    raw = make_config(tmp_path, tiny_st_dir, model={"branch_at": 1}).model_dump(mode="json")
    raw["tasks"] = [pair_task(write_pairs(tmp_path / "p.tsv"))]
    raw["optimizer"].update(max_steps=10, lr=5e-3)
    result = train(TrainConfig.model_validate(raw))
    trained_dir = Path(result.output_dir) / "final"
    sentences = [a for a, _, _ in PAIRS]
    trained = MultiTaskModel.load(trained_dir).encode(sentences)
    exported = load_predictor(export_model(trained_dir, tmp_path / "onnx")).encode(sentences)
    backbone = MultiTaskModel.from_backbone(tiny_st_dir, branch_at=1).encode(sentences)
    assert np.abs(exported - trained).max() <= 1e-4 and np.abs(trained - backbone).max() > 1e-2
