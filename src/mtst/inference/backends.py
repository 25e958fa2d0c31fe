"""Pick the runtime that answers ``encode``/``predict`` for a model directory.

Every backend object offers the same inference surface as MultiTaskModel:
``encode(sentences, batch_size, normalize, show_progress, convert_to)``,
``predict(sentences, tasks, batch_size, include_embedding, show_progress)``, ``tasks`` and ``config``.

A saved mtst model directory runs on torch; a directory written by ``mtst export`` (it has an
``export.json``) runs on the runtime it was exported for. Nothing is exported on the fly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from mtst.errors import MtstError

Backend = Literal["auto", "torch", "onnx", "openvino"]
BACKENDS = ("auto", "torch", "onnx", "openvino")


def detect_backend(path: str | Path | None) -> str:
    """"torch" for a saved model, the export format for an exported directory."""
    from mtst.inference.export import read_export_info

    if path in (None, ""):
        return "torch"
    info = read_export_info(Path(path)) if Path(path).is_dir() else None
    return "torch" if info is None else info["format"]


def load_predictor(path: str | Path | None = None, backend: str = "auto", threads: int | None = None):
    """Load a model directory for inference with the requested backend ("auto": whatever it holds).

    Args:
        path: a saved mtst model directory, or an exported one (None: the shipped default model).
        backend: "auto", "torch", "onnx" or "openvino"; must match what the directory holds.
        threads: CPU threads for inference (default: every core this process may use).
    """
    if backend not in BACKENDS:
        raise MtstError(f"unknown backend '{backend}'; choose one of {', '.join(BACKENDS)}")
    if threads is not None and threads < 1:
        raise MtstError(f"threads must be at least 1, got {threads}")
    found = detect_backend(path)
    wanted = found if backend == "auto" else backend
    if wanted != found:
        if found == "torch":
            raise MtstError(f"{path or 'the default model'} is a torch model directory; export it first: "
                            f"mtst export --model {path or 'DIR'} --format {wanted} --out EXPORT_DIR, "
                            f"then load EXPORT_DIR")
        raise MtstError(f"{path} holds a {found} export; load it with backend '{found}' or 'auto'")
    if wanted == "torch":
        import torch

        from mtst.model.multitask import MultiTaskModel

        if threads is not None:
            torch.set_num_threads(threads)
        return MultiTaskModel.load(path)
    from mtst.inference.runtimes import PREDICTORS

    return PREDICTORS[wanted](path, threads=threads)
