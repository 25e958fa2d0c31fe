"""LangChain's ``Embeddings`` interface on an mtst model running in this process: no server, no HTTP, and none of
the OpenAI client's token-id splitting. ``MtstEmbeddings.load(DIR)`` (any saved model or export) or
``MtstEmbeddings(predictor)``; vector stores and retrievers take it like any LangChain embedding model.

Importing this module needs ``langchain-core`` (``pip install 'mtst[langchain]'``); ``import mtst`` never does.
"""

from __future__ import annotations

try:
    from langchain_core.embeddings import Embeddings
except ImportError as exc:  # a plain ImportError: this is an import, not a command-line problem
    raise ImportError("mtst.integrations.langchain needs langchain-core: pip install 'mtst[langchain]'") from exc

from mtst.inference.backends import ModelSpec


class MtstEmbeddings(Embeddings):
    """Documents and queries -> the model's sentence embeddings (what ``encode`` returns, as lists of floats).

    Args:
        predictor: a Predictor on any backend, or a MultiTaskModel (anything with ``encode``).
        batch_size: sentences per forward pass (each call is length-sorted into such batches).
        normalize: None keeps the model's own setting (unit vectors for the default model).
    """

    def __init__(self, predictor, batch_size: int = 64, normalize: bool | None = None):
        self.predictor, self.batch_size, self.normalize = predictor, batch_size, normalize

    @classmethod
    def load(cls, model: str | None = None, backend: str = "auto", threads: int | None = None) -> MtstEmbeddings:
        """A saved or exported mtst model directory (None: a head-less all-MiniLM-L6-v2)."""
        return cls(ModelSpec(model, backend, threads=threads).load())

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        vectors = self.predictor.encode(list(texts), batch_size=self.batch_size, normalize=self.normalize)
        return vectors.tolist()

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]
