"""Pick the runtime that answers ``encode``/``predict`` for a model directory.

Every backend object offers the same inference surface as MultiTaskModel:
``encode(sentences, batch_size, normalize, show_progress, convert_to)``,
``predict(sentences, tasks, batch_size, include_embedding, show_progress)``, ``tasks`` and ``config``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from mtst.errors import MtstError

Backend = Literal["auto", "torch", "onnx", "openvino"]
BACKENDS = ("auto", "torch", "onnx", "openvino")


def load_predictor(path: str | Path | None = None, backend: str = "auto"):
    """Load a model directory for inference with the requested backend ("auto": whatever it holds)."""
    if backend not in BACKENDS:
        raise MtstError(f"unknown backend '{backend}'; choose one of {', '.join(BACKENDS)}")
    if backend in ("auto", "torch"):
        from mtst.model import MultiTaskModel

        return MultiTaskModel.load(path)
    raise MtstError(f"backend '{backend}' is not available yet; use --backend torch")
