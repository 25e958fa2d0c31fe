"""MtstEmbeddings: LangChain's Embeddings interface on a model in this process gives exactly ``encode``'s vectors,
and the docs/serving.md snippet (an in-memory vector store) finds the right text."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from helpers import run_doc_snippet

pytest.importorskip("langchain_core")
from mtst.integrations.langchain import MtstEmbeddings  # noqa: E402

TEXTS = ["john smith lives in paris", "the cat sat on the mat", "", "stock fell today"]


def test_documents_and_queries_are_encode_vectors(bare_model):
    embeddings = MtstEmbeddings(bare_model, batch_size=2)
    assert np.array_equal(np.float32(embeddings.embed_documents(TEXTS)), bare_model.encode(TEXTS, batch_size=2))
    assert np.array_equal(np.float32(embeddings.embed_query(TEXTS[1])), bare_model.encode([TEXTS[1]])[0])
    assert np.array_equal(np.float32(asyncio.run(embeddings.aembed_query(TEXTS[0]))), bare_model.encode(TEXTS[:1])[0])


def test_normalize_false_gives_raw_vectors(bare_model):
    raw = MtstEmbeddings(bare_model, normalize=False).embed_documents(TEXTS[:2])
    assert np.array_equal(np.float32(raw), bare_model.encode(TEXTS[:2], normalize=False))


def test_the_docs_snippet_finds_the_nearest_text(tiny_model, tmp_path):
    model_dir = tiny_model.save(tmp_path / "model")
    names = run_doc_snippet("serving.md", "langchain-native", {"path/to/model": str(model_dir)})
    assert [hit.page_content for hit in names["hits"]] == ["the cat sat on the mat"]
