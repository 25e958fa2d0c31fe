"""Shared fixtures: tiny random encoders built offline, and automatic seeding."""

from __future__ import annotations

import os
import random
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import build_tiny_encoder

# Set before any fixture runs: module- and session-scoped fixtures (a model loaded once per module, a Ray cluster)
# are built before the function-scoped one below, and the processes they start inherit this environment. Without
# it they read and wrote the user's CPU-path cache (~/.cache/mtst) and ran bf16 where a probe had chosen it.
os.environ["MTST_CPU_PROBE"] = "0"
os.environ["MTST_CACHE_DIR"] = tempfile.mkdtemp(prefix="mtst-test-cache-")


@pytest.fixture(scope="session")
def tiny_encoder_dir(tmp_path_factory) -> Path:
    """A plain Hugging Face encoder directory (no modules.json)."""
    return build_tiny_encoder(tmp_path_factory.mktemp("tiny_hf"))


@pytest.fixture(scope="session")
def tiny_st_dir(tmp_path_factory) -> Path:
    """The same tiny encoder laid out as a sentence-transformers directory (mean + normalise)."""
    return build_tiny_encoder(tmp_path_factory.mktemp("tiny_st"), sentence_transformers_layout=True)


@pytest.fixture
def tiny_model(tiny_st_dir):
    """A MultiTaskModel on the tiny encoder with a topic head and an NER head."""
    from mtst import MultiTaskModel

    model = MultiTaskModel.from_backbone(tiny_st_dir)
    model.add_head("topic", "sentence_classification", ["world", "sports", "business"], hidden_dim=16)
    model.add_head("ner", "token_classification", ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"])
    return model


@pytest.fixture
def bare_model(tiny_st_dir):
    """A MultiTaskModel on the tiny encoder with no heads: an embedding model."""
    from mtst import MultiTaskModel

    return MultiTaskModel.from_backbone(tiny_st_dir)


@pytest.fixture(autouse=True)
def _private_cpu_path_cache(tmp_path_factory, monkeypatch):
    """A CPU path chosen by `mtst bench --probe` on this machine must not change what the tests compute."""
    monkeypatch.setenv("MTST_CACHE_DIR", str(tmp_path_factory.mktemp("mtst-cache")))
    monkeypatch.setenv("MTST_CPU_PROBE", "0")  # fp32 unless a test asks: results must not depend on this CPU


@pytest.fixture(autouse=True)
def _seed_everything():
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    yield
