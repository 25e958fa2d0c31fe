"""Shared fixtures: tiny random encoders built offline, and automatic seeding."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import BertConfig, BertModel, BertTokenizerFast

# Enough real words for readable tests; everything else maps to [UNK] or sub-word pieces.
VOCAB = [
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", ",", "!", "?", "'", "-", "(", ")",
    "a", "the", "is", "in", "at", "of", "and", "to", "on", "was", "works", "lives", "visited",
    "john", "smith", "mary", "paris", "london", "new", "york", "google", "acme", "corp",
    "cat", "dog", "sat", "mat", "good", "bad", "great", "terrible", "movie", "film", "market",
    "stock", "fell", "rose", "today", "play", "game", "team", "won", "guitar", "man",
    "##s", "##ed", "##ing", "##er", "##ly", "un", "##believ", "##able", "x", "y", "z",
]


def build_tiny_encoder(directory: Path, sentence_transformers_layout: bool = False) -> Path:
    """A 2-layer BERT (hidden 32) with a small WordPiece vocab, saved as a local directory."""
    directory.mkdir(parents=True, exist_ok=True)
    vocab = {token: index for index, token in enumerate(VOCAB)}
    tokenizer = BertTokenizerFast(vocab=vocab, do_lower_case=True, model_max_length=64)
    tokenizer.save_pretrained(str(directory))
    config = BertConfig(
        vocab_size=len(VOCAB), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=64, type_vocab_size=2,
    )
    torch.manual_seed(0)
    BertModel(config).save_pretrained(str(directory))
    if sentence_transformers_layout:
        (directory / "1_Pooling").mkdir(exist_ok=True)
        (directory / "1_Pooling" / "config.json").write_text(
            '{"word_embedding_dimension": 32, "pooling_mode_cls_token": false,'
            ' "pooling_mode_mean_tokens": true, "pooling_mode_max_tokens": false}'
        )
        (directory / "modules.json").write_text(
            '[{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},'
            ' {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},'
            ' {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}]'
        )
        (directory / "sentence_bert_config.json").write_text('{"max_seq_length": 48, "do_lower_case": false}')
    return directory


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
def _seed_everything():
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    yield
