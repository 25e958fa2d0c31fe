"""The real default model: mtst embeddings equal sentence-transformers' on the same sentences."""

from __future__ import annotations

import numpy as np
import pytest
from sentence_transformers import SentenceTransformer

from mtst import MultiTaskModel
from mtst.model.encoder import default_backbone_path

SENTENCES = [
    "A man is playing a guitar.",
    "Someone is playing an instrument.",
    "The stock market fell sharply on Monday.",
    "Angela Merkel met Emmanuel Macron in Paris to discuss Airbus.",
    "",
    "short",
    "A much longer sentence " * 40,  # longer than max_seq_length: truncated identically
    "Ünïcödé, emoji 🙂 and    odd   spacing\ttoo.",
]


@pytest.mark.slow
def test_default_model_matches_sentence_transformers():
    ours = MultiTaskModel.from_backbone().encode(SENTENCES, batch_size=3)
    reference = SentenceTransformer(str(default_backbone_path()), device="cpu").encode(SENTENCES)
    assert ours.shape == (len(SENTENCES), 384)
    cosine = (ours * reference).sum(1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(reference, axis=1)
    assert cosine.min() >= 0.9999, cosine
