"""Which texts a model reads cut at its token limit, for outputs that say so without running the model twice.

``token_counts`` is a cheap look at each sentence's length (one plain tokenizer call), used by the server (pass
sizes, the ``mtst_truncated_texts`` counter, ``"truncated"`` on embedding items), Ray's embedding-only rows and
``mtst encode``. The embedding reads a text up to ``encoder.embedding_max_seq_length`` (the backbone's own
limit), the heads up to ``max_seq_length``. Bulk ``.npy`` output cannot carry a flag per row, so the indices of
its cut rows go into a sidecar JSON beside it (``truncated_sidecar``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from mtst.files import write_text


def embedding_limit(predictor) -> int | None:
    """Tokens the embedding reads (with [CLS] and [SEP]): the backbone's limit, else the heads'."""
    config = getattr(predictor, "config", None)
    encoder = getattr(config, "encoder", None)
    return None if encoder is None else encoder.embedding_max_seq_length or encoder.max_seq_length


def token_counts(predictor, sentences: Sequence[str], embedding: bool) -> tuple[list[int], list[bool]]:
    """Tokens per sentence as the model truncates them (the embedding at its own limit), and which were cut."""
    wrapper = getattr(predictor, "tokenizer", None)
    hf = getattr(wrapper, "tokenizer", None)
    if callable(hf) and hasattr(wrapper, "max_seq_length"):
        limit = (embedding and predictor.config.encoder.embedding_max_seq_length) or wrapper.max_seq_length
        # The plain HF call: ~17 us per sentence against ~26 us for TextTokenizer (offsets). One token past the
        # limit tells a cut sentence from one that fits exactly.
        ids = hf(list(sentences), truncation=True, max_length=limit + 1, return_attention_mask=False,
                 return_token_type_ids=False)["input_ids"]
        return [min(len(row), limit) for row in ids], [len(row) > limit for row in ids]
    if callable(wrapper):
        items = wrapper(list(sentences))
        return [len(item.input_ids) for item in items], [item.truncated for item in items]
    return [len(text.split()) + 2 for text in sentences], [False] * len(sentences)  # rough: words + [CLS]/[SEP]


def embedding_cuts(predictor, sentences: Sequence[str]) -> list[bool]:
    """Per sentence: does ``encode`` read it cut at the embedding limit?"""
    return token_counts(predictor, sentences, embedding=True)[1] if sentences else []


def sidecar_path(output: Path) -> Path:
    """Where the indices of an ``OUT.npy``'s cut rows go: ``OUT.npy.truncated.json``."""
    return output.with_name(output.name + ".truncated.json")


def write_sidecar(output: Path, truncated: Sequence[int], rows: int, limit: int | None) -> Path:
    """Write ``{"rows", "max_seq_length", "truncated": [row indices cut at the embedding limit]}`` atomically
    beside ``output`` (always, so a stale file from an earlier run never describes a new array)."""
    path = sidecar_path(Path(output))
    data = {"rows": rows, "max_seq_length": limit, "truncated": sorted(int(index) for index in truncated)}
    write_text(path, json.dumps(data) + "\n")
    return path
