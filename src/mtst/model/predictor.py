"""One inference surface over any runtime: ``Predictor(runtime).encode`` / ``predict``.

A runtime is what differs between backends (torch: mtst.model.torch_runtime; ONNX Runtime and OpenVINO in
mtst.inference.runtimes): it embeds a batch, and runs the heads on one. The predictor owns what does not: input
checks, the one task check, length-sorted batching (``map_batches``), long texts (mtst.model.windows: windows for
token tasks, chunks on request) and prediction rows built by each head's ``decode``. So every backend
gives the same rows, in input order, with the same errors. ``encode`` takes sentence-transformers' keywords and
defaults (``SentenceTransformer.encode``); ``similarity`` / ``similarity_pairwise`` score its vectors as ST does.

    runtime.embed(batch, normalize)          (B, H) float32 numpy: the embedding path alone
    runtime.run(batch, tasks, embedding)     {"logits": {task: (B, C) | (B, T, C) float tensor},
                                              "sentence_embedding": (B, H) float32 (tensor or array)}
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Protocol

import numpy as np
import torch
from torch import nn

from mtst.errors import MtstError
from mtst.model.config import ModelConfig
from mtst.model.devices import model_device, resolve_device
from mtst.model.heads import Head
from mtst.model.similarity import check_similarity_fn, similarity, similarity_pairwise
from mtst.model.st_compat import CONVERT_TO, PRECISIONS, quantize, renamed_keywords, show_progress
from mtst.model.tasks import task_type
from mtst.model.tokenization import TextTokenizer, Tokenized, as_texts, map_batches, map_items
from mtst.model.torch_runtime import TorchRuntime
from mtst.model.windows import chunked_rows, mean_vectors, pool_chunks, stitched_rows, windowed_rows


class Runtime(Protocol):
    """What a backend provides to a Predictor."""

    backend: str  # "torch" | "onnx" | "openvino"
    normalized: bool  # embed's vectors come L2-normalised and cannot be un-normalised (a graph that normalises)
    max_tokens: int | None  # padded tokens per batch (None: batch_size alone cuts batches)

    @property
    def config(self) -> ModelConfig: ...

    @property
    def tokenizer(self) -> TextTokenizer: ...

    @property
    def heads(self) -> Mapping[str, Head]:
        """The tasks that predict, name -> head: used to decode logits (labels, a CRF's transitions)."""
        ...

    def running(self) -> AbstractContextManager:
        """Entered around each encode / predict call."""
        ...

    def decoding(self) -> AbstractContextManager:
        """Entered while heads decode a batch's logits."""
        ...

    def batching(self, call: str) -> tuple[int, int | None]:
        """(rows, padded-token budget) per pass for "encode" | "predict" when the caller gives no batch size."""
        ...

    def embed(self, batch: dict[str, torch.Tensor], normalize: bool) -> np.ndarray: ...

    def run(self, batch: dict[str, torch.Tensor], tasks: Sequence[str], include_embedding: bool) -> dict: ...


class Predictor:
    """Sentences in, embeddings or prediction rows out, on any runtime (``predictor.runtime``)."""

    similarity_fn_name = "cosine"  # what similarity() computes: cosine, dot, euclidean or manhattan (as in ST)

    def __init__(self, runtime: Runtime):
        self.runtime = runtime

    @property
    def backend(self) -> str:
        return self.runtime.backend

    @property
    def config(self) -> ModelConfig:
        return self.runtime.config

    @property
    def tokenizer(self) -> TextTokenizer:
        return self.runtime.tokenizer

    @property
    def tasks(self) -> list[str]:
        """The tasks ``predict`` answers; pair tasks only train the embedding."""
        return list(self.runtime.heads)

    @property
    def max_tokens(self) -> int | None:
        """Padded tokens per batch: a long text does not make a batch without bound (None: batch_size alone)."""
        return self.runtime.max_tokens

    @max_tokens.setter
    def max_tokens(self, value: int | None) -> None:
        self.runtime.max_tokens = value

    def check_tasks(self, tasks: Sequence[str] | None) -> list[str]:
        """``tasks`` (None: all of the model's) as a list, each one the model predicts; else the one error."""
        return check_tasks(self.tasks if tasks is None else tasks, self.runtime.heads, self.config)

    @property
    def device(self) -> torch.device:
        """Where the model runs: its parameters' device on torch, the CPU for exported runtimes."""
        return model_device(self.runtime.model) if isinstance(self.runtime, TorchRuntime) else torch.device("cpu")

    def to(self, device: str | torch.device) -> Predictor:
        """Run on ``device`` ("auto": CUDA, then MPS, then the CPU); exported runtimes run on the CPU only."""
        target = resolve_device(device)
        if isinstance(self.runtime, TorchRuntime):
            self.runtime.model.to(target)
        elif target.type != "cpu":
            raise MtstError(f"the {self.backend} runtime runs on the CPU; device '{device}' needs the torch backend")
        return self

    def batching(self, call: str, batch_size: int | None = None) -> tuple[int, int | None]:
        """(rows, padded-token budget) per pass: ``batch_size`` with ``max_tokens``; None: the runtime's batching
        for ``call`` (a measured CPU path's, mtst.model.cpu_paths; else 32 rows), its budget and ``max_tokens``
        both capping a pass."""
        if batch_size is not None:
            return batch_size, self.max_tokens
        rows, tokens = self.runtime.batching(call)
        budgets = [budget for budget in (tokens, self.max_tokens) if budget is not None]
        return rows, min(budgets) if budgets else None

    def encode(self, sentences: Sequence[str] | str, batch_size: int | None = None,
               show_progress_bar: bool | None = None, convert_to_numpy: bool = True, convert_to_tensor: bool = False,
               normalize_embeddings: bool = False, device: str | None = None, precision: str = "float32",
               normalize: bool | None = None, chunking: bool = False, stride: int | None = None,
               **renamed) -> np.ndarray | torch.Tensor | list:
        """Sentences -> embeddings (N, H) float32 numpy, in input order (one string -> one (H,) vector).

        Keywords and defaults are sentence-transformers': ``normalize_embeddings`` L2-normalises (a model that
        normalises does so anyway), ``convert_to_tensor`` gives one tensor, ``convert_to_numpy=False`` a list of
        tensors, ``device`` moves the model first, ``precision`` quantises as ST's ``quantize_embeddings``.
        ``show_progress_bar`` None shows one when the "mtst" logger is at INFO or DEBUG. Batches are sorted by
        token length; ``batch_size`` None takes the batching measured fastest on this CPU (``batching``), else 32.
        ``normalize`` (mtst's own) overrides the model's L2 normalisation: False gives the raw pooled vectors even
        of a normalising model, which sentence-transformers' keywords cannot ask for. ``show_progress``
        and ``convert_to`` still work for one release (deprecated). Texts are truncated at the backbone's own limit
        (``embedding_max_seq_length``), as sentence-transformers does; ``chunking=True`` embeds a longer text as the
        mean of its overlapping chunks' embeddings (windows sharing ``stride`` tokens: mtst.model.windows),
        normalised again when the embeddings are: one forward row per chunk.
        """
        old = renamed_keywords("encode", renamed)
        if precision not in PRECISIONS:
            raise MtstError(f"unknown precision '{precision}'; choose one of {', '.join(PRECISIONS)}")
        if "convert_to" in old:
            if old["convert_to"] not in CONVERT_TO:
                raise MtstError(f"unknown convert_to '{old['convert_to']}'; use 'numpy' or 'torch'")
            convert_to_tensor = old["convert_to"] == "torch"
        if normalize is None:
            normalize = self.config.encoder.normalize or normalize_embeddings
        if not normalize and self.runtime.normalized:
            raise MtstError("this exported graph L2-normalises its embeddings; encode with normalize=None or True")
        if device is not None:
            self.to(device)
        texts = as_texts(sentences)

        def embed(batch: dict[str, torch.Tensor], items: Sequence[Tokenized], batch_texts: list[str]) -> list:
            return list(self.runtime.embed(batch, normalize))  # B rows of (H,)

        show = show_progress(old.get("show_progress", show_progress_bar))
        limit = self.config.encoder.embedding_max_seq_length  # the backbone's own limit (None: the heads')
        with self.runtime.running():  # embeddings need no word ids or offsets (ids_only) unless cut in chunks
            if chunking:
                chunks, owners = chunked_rows(self.tokenizer(texts, max_length=0),
                                              limit or self.config.encoder.max_seq_length, stride)
                vectors = map_items(self.tokenizer, chunks, owners, *self.batching("encode", batch_size), show, embed)
                rows = mean_vectors(vectors, owners, len(texts), normalize)
            else:
                rows = map_batches(self.tokenizer, texts, *self.batching("encode", batch_size), show, embed,
                                   ids_only=True, max_length=limit)
        result = np.stack(rows) if rows else np.zeros((0, self.config.encoder.hidden_size), dtype=np.float32)
        result = result if precision == "float32" else quantize(result, precision)
        if convert_to_tensor:
            result = torch.from_numpy(result)
        elif not convert_to_numpy:
            result = list(torch.from_numpy(result))
        return result[0] if isinstance(sentences, str) else result

    def similarity(self, embeddings1, embeddings2) -> torch.Tensor:
        """(N, M) scores of every embedding in the first against every one in the second (``similarity_fn_name``)."""
        return similarity(embeddings1, embeddings2, check_similarity_fn(self.similarity_fn_name))

    def similarity_pairwise(self, embeddings1, embeddings2) -> torch.Tensor:
        """(N,) scores of ``embeddings1[i]`` against ``embeddings2[i]`` (``similarity_fn_name``)."""
        return similarity_pairwise(embeddings1, embeddings2, check_similarity_fn(self.similarity_fn_name))

    def predict(self, sentences: Sequence[str] | str, tasks: Sequence[str] | None = None, batch_size: int | None = None,
                include_embedding: bool = False, show_progress_bar: bool | None = None, device: str | None = None,
                stride: int | None = None, chunking: bool = False, **renamed) -> list[dict] | dict:
        """Per sentence: ``{"text", task: prediction, ..., ["embedding"]}`` from one pass of the runtime (one
        string -> one row).

        Sentence tasks give ``{label, score, distribution}``; token tasks give a list of entities
        ``{text, label, start, end, score}`` with character offsets into the input text. Sentence tasks and the
        embedding read the first ``max_seq_length`` tokens; token tasks read the whole text, in overlapping
        windows (mtst.model.windows) that share ``stride`` tokens (None: a quarter of the window). A row read cut
        says ``"truncated": true``; ``chunking=True`` instead gives a long text's sentence tasks the mean of its
        windows' probabilities and its embedding the mean of theirs. ``device``
        moves the model first; ``show_progress`` still works for one release (deprecated: ``show_progress_bar``).
        """
        old = renamed_keywords("predict", renamed, allowed=("show_progress",))
        show = show_progress(old.get("show_progress", show_progress_bar))
        tasks = self.check_tasks(tasks)
        if device is not None:
            self.to(device)
        texts = as_texts(sentences)
        limit = self.config.encoder.max_seq_length
        token_tasks = [task for task in tasks if task_type(self.config.heads[task].type).token_level]
        items = self.tokenizer(texts, max_length=0 if token_tasks or chunking else None)
        reads_cut = include_embedding or len(token_tasks) < len(tasks)  # what reads a text's first limit tokens
        rows_items, owners, windows = windowed_rows(items, limit, stride, bool(token_tasks) or chunking,
                                                    own_row=reads_cut and not chunking)
        reads_cut = reads_cut and not chunking
        if reads_cut:
            self.tokenizer.warn_truncated(sum(item.truncated for item in rows_items), limit)
        heads = self.runtime.heads

        def run(batch: dict[str, torch.Tensor], items: Sequence[Tokenized], owner: list[int]) -> list[dict]:
            out = self.runtime.run(batch, tasks, include_embedding)
            rows = [{"text": texts[index], **({"truncated": True} if item.truncated and reads_cut else {})}
                    for index, item in zip(owner, items, strict=True)]  # a sentence task or the embedding: cut
            with self.runtime.decoding():
                for task in tasks:
                    decoded = heads[task].decode(out["logits"][task], items, [row["text"] for row in rows])
                    for row, value, item, logits in zip(rows, decoded, items, out["logits"][task], strict=True):
                        row[task] = value
                        if task in token_tasks:  # a window's logits, kept for stitching
                            row.setdefault("_logits", {})[task] = logits[: len(item.input_ids)]
            if include_embedding:
                for row, vector in zip(rows, out["sentence_embedding"].tolist(), strict=True):
                    row["embedding"] = vector
            return rows

        with self.runtime.running():
            done = map_items(self.tokenizer, rows_items, owners, *self.batching("predict", batch_size), show, run)
        with self.runtime.decoding():  # a long text's token tasks: decoded once, on logits stitched per word
            results = stitched_rows(done, len(texts), windows, items, {task: heads[task] for task in token_tasks})
        if chunking:
            pool_chunks(done, results, windows, {task: heads[task] for task in tasks if task not in token_tasks},
                        include_embedding, self.config.encoder.normalize)
        return results[0] if isinstance(sentences, str) else results


def as_predictor(model) -> Predictor:
    """``model`` behind the one inference surface: a MultiTaskModel on torch; anything else as it is."""
    return Predictor(TorchRuntime(model)) if isinstance(model, nn.Module) else model


def check_tasks(tasks: Sequence[str], heads: Collection[str], config: ModelConfig) -> list[str]:
    """``tasks`` as a list when each has a head; else the one error: a pair task (in the config without a head)
    has no per-sentence prediction, any other name is unknown."""
    unknown = [task for task in tasks if task not in heads]
    if unknown and unknown[0] in config.heads:
        raise MtstError(f"'{unknown[0]}' is a pair task: it has no per-sentence prediction; its training shows "
                        "in encode()")
    if unknown:
        known = ", ".join(heads) or "none (this model has no heads)"
        raise MtstError(f"unknown task '{unknown[0]}'; this model's tasks are: {known}")
    return list(tasks)
