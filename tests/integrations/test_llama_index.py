"""MtstEmbedding: LlamaIndex's BaseEmbedding on a model in this process gives exactly ``encode``'s vectors, and
the docs/serving.md snippet (a vector index over two nodes) retrieves the right one."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from helpers import run_doc_snippet

pytest.importorskip("llama_index.core")
from mtst.integrations.llama_index import MtstEmbedding  # noqa: E402

TEXTS = ["john smith lives in paris", "the cat sat on the mat", "", "stock fell today"]


def test_texts_and_queries_are_encode_vectors(bare_model):
    embedding = MtstEmbedding(bare_model, batch_size=2)
    assert np.array_equal(np.float32(embedding.get_text_embedding_batch(TEXTS)), bare_model.encode(TEXTS, batch_size=2))
    assert np.array_equal(np.float32(embedding.get_query_embedding(TEXTS[1])), bare_model.encode([TEXTS[1]])[0])
    assert np.array_equal(np.float32(asyncio.run(embedding.aget_query_embedding(TEXTS[0]))),
                          bare_model.encode(TEXTS[:1])[0])


def test_the_docs_snippet_retrieves_the_nearest_node(tiny_model, tmp_path):
    model_dir = tiny_model.save(tmp_path / "model")
    names = run_doc_snippet("serving.md", "llama-index-native", {"path/to/model": str(model_dir)})
    assert [hit.node.get_content() for hit in names["hits"]] == ["the cat sat on the mat"]
