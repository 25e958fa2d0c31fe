"""One inference surface over any runtime: ``Predictor(runtime).encode`` / ``predict``.

A runtime is what differs between backends (torch here; ONNX Runtime and OpenVINO in mtst.inference.runtimes): it
embeds a batch, and runs the heads on one. The predictor owns what does not: input checks, the one task check,
length-sorted batching (``map_batches``) and prediction rows built by each head's ``decode``. So every backend
gives the same rows, in input order, with the same errors. ``encode`` takes sentence-transformers' keywords and
defaults (``SentenceTransformer.encode``); ``similarity`` / ``similarity_pairwise`` score its vectors as ST does.

    runtime.embed(batch, normalize)          (B, H) float32 numpy: the embedding path alone
    runtime.run(batch, tasks, embedding)     {"logits": {task: (B, C) | (B, T, C) float tensor},
                                              "sentence_embedding": (B, H) float32 (tensor or array)}
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Protocol

import numpy as np
import torch
from torch import nn

from mtst.errors import MtstError
from mtst.model.config import ModelConfig
from mtst.model.devices import model_device, resolve_device, to_device
from mtst.model.heads import Head
from mtst.model.similarity import check_similarity_fn, similarity, similarity_pairwise
from mtst.model.st_compat import CONVERT_TO, PRECISIONS, quantize, renamed_keywords, show_progress
from mtst.model.tokenization import TextTokenizer, Tokenized, map_batches


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

    def embed(self, batch: dict[str, torch.Tensor], normalize: bool) -> np.ndarray: ...

    def run(self, batch: dict[str, torch.Tensor], tasks: Sequence[str], include_embedding: bool) -> dict: ...


class TorchRuntime:
    """A MultiTaskModel as a runtime: ``embed`` runs the backbone alone, ``run`` one forward pass for every task."""

    backend = "torch"
    normalized = False  # embed pools the backbone's states itself: it can normalise or not

    def __init__(self, model: nn.Module):
        self.model = model  # a MultiTaskModel (not imported: mtst.model.multitask imports this module)

    @property
    def config(self) -> ModelConfig:
        return self.model.config

    @property
    def tokenizer(self) -> TextTokenizer:
        return self.model.tokenizer

    @property
    def heads(self) -> Mapping[str, Head]:
        return self.model.heads

    @property
    def max_tokens(self) -> int | None:
        return self.model.max_tokens

    @max_tokens.setter
    def max_tokens(self, value: int | None) -> None:
        self.model.max_tokens = value

    @contextmanager
    def running(self):
        """Eval mode and inference mode for the call (bf16 autocast when the model's CPU path says so: its
        ``cpu_path``, mtst.model.cpu_paths); the model's training mode is restored after."""
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.inference_mode(), torch.autocast("cpu", torch.bfloat16, enabled=self._bf16()):
                yield
        finally:
            self.model.train(was_training)

    def _bf16(self) -> bool:
        path = getattr(self.model, "cpu_path", None)
        return path is not None and path.precision == "bf16" and next(self.model.parameters()).is_cpu

    def decoding(self) -> AbstractContextManager:
        return torch.autocast("cpu", enabled=False)  # heads decode float32 logits in float32

    def embed(self, batch: dict[str, torch.Tensor], normalize: bool) -> np.ndarray:
        batch = to_device(batch, model_device(self.model))  # the tokenizer builds CPU tensors
        token_embeddings = self.model.encoder(batch["input_ids"], batch["attention_mask"])  # the backbone alone
        pooled = self.model.pooling(token_embeddings, batch["attention_mask"])  # (B, H)
        if normalize:
            pooled = nn.functional.normalize(pooled, p=2, dim=-1)
        return pooled.float().cpu().numpy()

    def run(self, batch: dict[str, torch.Tensor], tasks: Sequence[str], include_embedding: bool) -> dict:
        out = self.model(to_device(batch, model_device(self.model)), tasks=tasks, embedding=include_embedding)
        embedding = out["sentence_embedding"].float().cpu() if include_embedding else None
        logits = {task: values.float().cpu() for task, values in out["logits"].items()}  # bf16 under autocast
        return {"logits": logits, "sentence_embedding": embedding}


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

    def encode(self, sentences: Sequence[str] | str, batch_size: int = 32, show_progress_bar: bool | None = None,
               convert_to_numpy: bool = True, convert_to_tensor: bool = False, normalize_embeddings: bool = False,
               device: str | None = None, precision: str = "float32", normalize: bool | None = None, **renamed
               ) -> np.ndarray | torch.Tensor | list:
        """Sentences -> embeddings (N, H) float32 numpy, in input order (one string -> one (H,) vector).

        Keywords and defaults are sentence-transformers': ``normalize_embeddings`` L2-normalises (a model that
        normalises does so anyway), ``convert_to_tensor`` gives one tensor, ``convert_to_numpy=False`` a list of
        tensors, ``device`` moves the model first, ``precision`` quantises as ST's ``quantize_embeddings``.
        ``show_progress_bar`` None shows one when the "mtst" logger is at INFO or DEBUG. Batches are sorted by
        token length. ``normalize`` (mtst's own) overrides the model's L2 normalisation: False gives the raw pooled
        vectors even of a normalising model, which sentence-transformers' keywords cannot ask for. ``show_progress``
        and ``convert_to`` still work for one release (deprecated).
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
        with self.runtime.running():  # embeddings need no word ids or offsets (ids_only)
            rows = map_batches(self.tokenizer, texts, batch_size, self.max_tokens, show, embed, ids_only=True)
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

    def predict(self, sentences: Sequence[str] | str, tasks: Sequence[str] | None = None, batch_size: int = 32,
                include_embedding: bool = False, show_progress_bar: bool | None = None, device: str | None = None,
                **renamed) -> list[dict] | dict:
        """Per sentence: ``{"text", task: prediction, ..., ["embedding"]}`` from one pass of the runtime (one
        string -> one row).

        Sentence tasks give ``{label, score, distribution}``; token tasks give a list of entities
        ``{text, label, start, end, score}`` with character offsets into the input text. ``device`` moves the
        model first; ``show_progress`` still works for one release (deprecated: ``show_progress_bar``).
        """
        old = renamed_keywords("predict", renamed, allowed=("show_progress",))
        show = show_progress(old.get("show_progress", show_progress_bar))
        tasks = self.check_tasks(tasks)
        if device is not None:
            self.to(device)
        texts = as_texts(sentences)
        heads = self.runtime.heads

        def run(batch: dict[str, torch.Tensor], items: Sequence[Tokenized], batch_texts: list[str]) -> list[dict]:
            out = self.runtime.run(batch, tasks, include_embedding)
            rows = [{"text": text} for text in batch_texts]
            with self.runtime.decoding():
                for task in tasks:
                    decoded = heads[task].decode(out["logits"][task], items, batch_texts)
                    for row, value in zip(rows, decoded, strict=True):
                        row[task] = value
            if include_embedding:
                for row, vector in zip(rows, out["sentence_embedding"].tolist(), strict=True):
                    row["embedding"] = vector
            return rows

        with self.runtime.running():
            rows = map_batches(self.tokenizer, texts, batch_size, self.max_tokens, show, run)
        return rows[0] if isinstance(sentences, str) else rows


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


def as_texts(sentences: Sequence[str] | str) -> list[str]:
    """One string or a sequence of strings -> a list of strings (an error names the first other type)."""
    if isinstance(sentences, str):
        return [sentences]
    texts = list(sentences)
    bad = next((t for t in texts if not isinstance(t, str)), None)
    if bad is not None:
        raise MtstError(f"sentences must be strings, got {type(bad).__name__}")
    return texts
