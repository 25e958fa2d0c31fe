"""The torch runtime of a Predictor (mtst.model.predictor): a MultiTaskModel's backbone and heads, run in eval and
inference mode (bf16 autocast when the model's CPU path says so)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager

import numpy as np
import torch
from torch import nn

from mtst.model.config import ModelConfig
from mtst.model.cpu_paths import DEFAULT_BATCH_SIZE, MEASURED
from mtst.model.devices import model_device, to_device
from mtst.model.heads import Head
from mtst.model.modes import eval_mode
from mtst.model.tokenization import TextTokenizer


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
        with eval_mode(self.model), torch.inference_mode(), torch.autocast("cpu", torch.bfloat16,
                                                                           enabled=self._bf16()):
            yield

    def _bf16(self) -> bool:
        path = getattr(self.model, "cpu_path", None)
        return path is not None and path.precision == "bf16" and next(self.model.parameters()).is_cpu

    def batching(self, call: str) -> tuple[int, int | None]:
        """A measured (or cached) CPU path's batching for ``call``; 32 rows otherwise and off the CPU."""
        path = getattr(self.model, "cpu_path", None)
        if path is None or self.model.cpu_path_source not in MEASURED or not next(self.model.parameters()).is_cpu:
            return DEFAULT_BATCH_SIZE, None
        return path.batching(call)

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
