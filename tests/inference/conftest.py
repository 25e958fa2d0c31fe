"""A tiny saved model with a sentence and a token head: what the backend and export-probe tests load and export
(a test module with its own ``model_dir`` fixture overrides it)."""

from __future__ import annotations

import pytest
import torch

from mtst import MultiTaskModel


@pytest.fixture(scope="module")
def model_dir(tiny_st_dir, tmp_path_factory):
    torch.manual_seed(0)
    model = MultiTaskModel.from_backbone(tiny_st_dir)
    model.add_head("topic", "sentence_classification", ["world", "sports", "business"])
    model.add_head("ner", "token_classification", ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"])
    return model.save(tmp_path_factory.mktemp("saved") / "model")
