"""Which predictor a command runs: an exported or saved model directory, a head-less model on a backbone, or
the shipped default (falling back to the seeded, untrained demo model with a warning)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from mtst.errors import MtstError

if TYPE_CHECKING:
    from mtst.inference.backends import ModelSpec
    from mtst.model.predictor import Predictor


def check_choice(value: str | None, choices: Iterable[str], option: str) -> None:
    choices = tuple(choices)
    if value is not None and value not in choices:
        raise MtstError(f"unknown {option} '{value}'; choose one of {', '.join(choices)}")


def encoder_spec(model_dir: Path | None, backbone: str | None, pooling: str | None, normalize: bool | None,
                 max_seq_length: int | None, backend: str, threads: int | None = None,
                 precision: str = "auto") -> ModelSpec:
    """The encoding commands' model options, checked under their flag names: --model DIR (any backend), or a
    head-less model on a backbone."""
    from mtst.inference.backends import BACKENDS, ModelSpec
    from mtst.model.pooling import POOLINGS

    check_choice(backend, BACKENDS, "backend")
    check_choice(pooling, POOLINGS, "pooling")
    if max_seq_length is not None and max_seq_length < 2:
        raise MtstError(f"--max-seq-length must be at least 2 (room for [CLS] and [SEP]), got {max_seq_length}")
    if model_dir is not None:
        fixed = [flag for flag, value in (("--backbone", backbone), ("--pooling", pooling),
                                          ("--max-seq-length", max_seq_length)) if value is not None]
        if fixed:
            raise MtstError(f"{fixed[0]} cannot be combined with --model: a model directory fixes its encoder settings")
    else:
        if backend not in ("auto", "torch"):
            raise MtstError(f"--backend {backend} needs --model DIR (an exported mtst model); a backbone runs on torch")
        check_threads(threads)
    return ModelSpec(None if model_dir is None else str(model_dir), backend, backbone, pooling, normalize,
                     max_seq_length, threads, precision=precision)


def load_encoder(model_dir: Path | None, backbone: str | None, pooling: str | None,
                 normalize: bool | None, max_seq_length: int | None, backend: str, threads: int | None = None,
                 device: str | None = None, precision: str = "auto") -> Predictor:
    """--model DIR -> its predictor (any backend); otherwise a head-less model on a backbone; on ``device``, at
    ``precision`` (torch on the CPU)."""
    spec = encoder_spec(model_dir, backbone, pooling, normalize, max_seq_length, backend, threads, precision)
    predictor = spec.load()
    return predictor if device is None else predictor.to(device)


def check_threads(threads: int | None) -> None:
    if threads is not None and threads < 1:
        raise MtstError(f"--threads must be at least 1, got {threads}")


def torch_threads(threads: int | None) -> None:
    check_threads(threads)
    if threads is not None:
        import torch

        torch.set_num_threads(threads)


def load_task_model(model_dir: Path | None, backend: str, threads: int | None = None,
                    device: str | None = None, precision: str = "auto") -> Predictor:
    """--model DIR, else the shipped default model, else the seeded untrained demo model (with a warning); on
    ``device`` (None: the CPU), at ``precision`` (torch on the CPU)."""
    predictor = _task_predictor(model_dir, backend, threads, precision)
    return predictor if device is None else predictor.to(device)


def _task_predictor(model_dir: Path | None, backend: str, threads: int | None, precision: str) -> Predictor:
    from mtst.cli.showcase import DEMO_SEED, demo_model, trained_default_available
    from mtst.inference.backends import BACKENDS, load_predictor
    from mtst.model.predictor import as_predictor

    check_choice(backend, BACKENDS, "backend")
    if model_dir is not None or trained_default_available():
        return load_predictor(model_dir, backend, threads, precision=precision)
    if backend not in ("auto", "torch"):
        raise MtstError(f"--backend {backend} needs --model DIR: no trained default model is installed")
    torch_threads(threads)
    typer.echo("warning: no trained default model is installed; using the demo model, whose heads are UNTRAINED "
               f"(random weights, seed {DEMO_SEED}); pass --model DIR for real predictions", err=True)
    model = demo_model()
    model.use_precision(precision)
    return as_predictor(model)
