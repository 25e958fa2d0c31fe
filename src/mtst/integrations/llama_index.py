"""LlamaIndex's ``BaseEmbedding`` on an mtst model running in this process: ``Settings.embed_model =
MtstEmbedding.load(DIR)`` and indexes embed documents and queries without a server.

Importing this module needs ``llama-index-core`` (``pip install 'mtst[llama-index]'``); ``import mtst`` never does.
"""

from __future__ import annotations

from typing import Any

try:
    from llama_index.core.embeddings import BaseEmbedding
except ImportError as exc:  # a plain ImportError: this is an import, not a command-line problem
    raise ImportError("mtst.integrations.llama_index needs llama-index-core: pip install 'mtst[llama-index]'"
                      ) from exc
from pydantic import PrivateAttr

from mtst.inference.backends import ModelSpec


class MtstEmbedding(BaseEmbedding):
    """Texts and queries -> the model's sentence embeddings (what ``encode`` returns, as lists of floats).

    LlamaIndex hands over ``embed_batch_size`` texts per call; each call is length-sorted into forward passes
    of ``batch_size``. ``normalize`` None keeps the model's own setting.
    """

    _predictor: Any = PrivateAttr()
    _batch_size: int = PrivateAttr()
    _normalize: bool | None = PrivateAttr()

    def __init__(self, predictor, embed_batch_size: int = 256, batch_size: int = 64, normalize: bool | None = None):
        super().__init__(model_name="mtst", embed_batch_size=embed_batch_size)
        self._predictor, self._batch_size, self._normalize = predictor, batch_size, normalize

    @classmethod
    def load(cls, model: str | None = None, backend: str = "auto", threads: int | None = None) -> MtstEmbedding:
        """A saved or exported mtst model directory (None: a head-less all-MiniLM-L6-v2)."""
        return cls(ModelSpec(model, backend, threads=threads).load())

    @classmethod
    def class_name(cls) -> str:
        return "MtstEmbedding"

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return self._predictor.encode(list(texts), batch_size=self._batch_size, normalize=self._normalize).tolist()

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._get_text_embeddings([text])[0]

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._get_text_embedding(query)

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._get_query_embedding(query)
