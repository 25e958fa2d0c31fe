"""Task types: the registry, what each type allows, and adding a new kind with one class + one registry entry."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from helpers import make_config
from mtst import MultiTaskModel
from mtst.errors import MtstError
from mtst.model.config import HeadConfig
from mtst.model.heads import Head
from mtst.model.tasks import TASK_TYPES, PairObjective, SentenceClassification, task_type
from mtst.training.evaluation import evaluate_task, main_metric


def test_every_registry_entry_is_named_by_its_key():
    assert TASK_TYPES and all(kind.name == name for name, kind in TASK_TYPES.items())


def test_an_unknown_type_is_one_line_naming_the_choices():
    with pytest.raises(MtstError, match="unknown task type 'regression'; choose one of sentence_classification"):
        task_type("regression")


@pytest.mark.parametrize("name", sorted(TASK_TYPES))
def test_each_type_builds_its_part_and_declares_what_it_reads(name):
    kind = task_type(name)
    labels = ["O", "B-X", "I-X"] if kind.predicts else []
    config = HeadConfig(type=name, labels=labels, input_dim=8)
    if kind.predicts:
        head = kind.build_head(config)
        assert isinstance(head, Head) and head.reads == kind.reads
        sentence_reads = ("task_embedding", "sentence_embedding")  # a zero-shot head reads the exact embedding
        assert kind.reads == "token_embeddings" if kind.token_level else kind.reads in sentence_reads
    else:
        assert isinstance(kind.build_objective(config), PairObjective) and kind.reads == "sentence_embedding"
        with pytest.raises(MtstError, match="has no head"):
            kind.build_head(config)


@pytest.mark.parametrize(("options", "message"), [
    ({"type": "sentence_classification", "labels": ["a", "b"], "crf": True}, "token-head options"),
    ({"type": "sentence_classification", "labels": ["a"]}, "needs at least 2 labels"),
    ({"type": "scored_pairs", "labels": ["a", "b"]}, "has no labels"),
])
def test_a_type_rejects_options_it_does_not_have(options, message):
    config = HeadConfig(input_dim=8, **options)
    with pytest.raises(MtstError, match=message):
        task_type(config.type).check(config)


def test_pair_objectives_train_the_embedding_from_both_sides():
    objective = task_type("scored_pairs").build_objective(HeadConfig(type="scored_pairs", input_dim=8))
    first, second = torch.randn(4, 8, requires_grad=True), torch.randn(4, 8)
    loss = objective.loss(first, second, torch.rand(4))
    loss.backward()
    assert loss.ndim == 0 and first.grad.abs().sum() > 0


def test_main_metric_comes_from_the_type():
    assert [main_metric("t", name) for name in ("sentence_classification", "windowed_token_classification",
                                                  "scored_pairs", "positive_pairs")] == \
        ["t/accuracy", "t/f1", "t/spearman", "t/mrr"]


def test_token_targets_sit_on_first_sub_tokens(tiny_model):
    kind = task_type("token_classification")
    (item,) = tiny_model.tokenizer([["unbelievable", "john"]], is_split_into_words=True)  # un ##believ ##able
    target = kind.target(["B-PER", "O"], {"O": 0, "B-PER": 1}, item)
    assert target == [-100, 1, -100, -100, 0, -100]


# ---- a new kind of task: one class + one registry entry --------------------------------------------
class CentroidHead(Head):
    """A toy head: distance of the sentence embedding to one learned centroid per label."""

    reads = "task_embedding"

    def __init__(self, config: HeadConfig):
        super().__init__(config)
        self.centroids = nn.Parameter(torch.randn(len(config.labels), config.input_dim) * 0.1)

    def forward(self, features: torch.Tensor, shape_ids: torch.Tensor | None = None) -> torch.Tensor:
        return -torch.cdist(features, self.centroids)  # (B, C)

    def decode(self, logits, items, texts) -> list[dict]:
        return [{"label": self.labels[i], "nearest": True} for i in logits.argmax(-1).tolist()]


class CentroidClassification(SentenceClassification):
    name = "centroid_classification"
    head = CentroidHead
    main_metric = "error_rate"

    def metrics(self, task: str, gold: list, predicted: list) -> dict[str, float]:
        return {f"{task}/error_rate": 100 * sum(g != p for g, p in zip(gold, predicted, strict=True)) / len(gold)}


def test_a_registered_toy_type_trains_saves_loads_predicts_and_evaluates(tmp_path, tiny_st_dir, monkeypatch):
    from mtst.data.readers import Examples
    from mtst.training.recipe import train

    monkeypatch.setitem(TASK_TYPES, "centroid_classification", CentroidClassification())
    config = make_config(tmp_path, tiny_st_dir)
    config.tasks[0].type = "centroid_classification"
    config.tasks[0].hidden_dim = None
    config.tasks = config.tasks[:1]
    result = train(config)
    assert "topic/error_rate" in result.best_metrics and "mean/main" in result.best_metrics

    model = MultiTaskModel.load(Path(result.output_dir) / "final")
    assert model.config.heads["topic"].type == "centroid_classification"
    assert isinstance(model.heads["topic"], CentroidHead)
    (row,) = model.predict(["john lives in paris"])
    assert row["topic"]["nearest"] is True and row["topic"]["label"] in ("business", "sports", "world")
    metrics = evaluate_task(model, "topic", Examples(["john lives in paris"], [row["topic"]["label"]], ["x:1"]))
    assert metrics == {"topic/error_rate": 0.0}
