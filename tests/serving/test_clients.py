"""The client snippets of docs/serving.md, cut out of the page and run against a live server: the official
``openai`` client, LangChain's ``OpenAIEmbeddings`` and LlamaIndex's ``OpenAIEmbedding`` get ``model.encode``'s
vectors. The page's code is the tested code, so the two cannot drift apart."""

from __future__ import annotations

import numpy as np
import pytest

from helpers import live_server, run_doc_snippet
from mtst.serving.app import ServeSettings, create_app

DOCS_URL = "http://127.0.0.1:8000"


@pytest.mark.parametrize(("snippet", "module"), [("openai", "openai"), ("langchain", "langchain_openai"),
                                                 ("llama-index", "llama_index.embeddings.openai")])
def test_doc_snippet_against_a_live_server(tiny_model, snippet, module):
    pytest.importorskip(module)
    with live_server(create_app(tiny_model, ServeSettings(model_name="tiny"))) as url:
        names = run_doc_snippet("serving.md", snippet, {DOCS_URL: url})
    # JSON carries the float32 values as decimal text; they come back as the same float32 numbers
    assert np.array_equal(np.float32(names["vectors"]), tiny_model.encode(names["texts"]))
    if "query" in names:
        assert np.array_equal(np.float32(names["query"]), tiny_model.encode([names["question"]])[0])
