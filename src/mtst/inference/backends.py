"""Which runtime answers ``encode``/``predict`` for a model directory, and ``ModelSpec``: a model to load, as plain
values that can travel (to worker processes, Ray actors) where a loaded model cannot.

Whatever the backend, what is loaded is a ``Predictor`` (mtst.model.predictor): the same
``encode`` (sentence-transformers' keywords), ``predict(sentences, tasks, batch_size, include_embedding,
show_progress_bar, device)``, ``similarity``, ``tasks``, ``config`` and ``check_tasks``; ``predictor.runtime`` is
the backend's own object (``runtime.model`` on torch).

A saved mtst model directory runs on torch; a directory written by ``mtst export`` (it has an
``export.json``) runs on the runtime it was exported for. Nothing is exported on the fly.

``precision`` ("auto" | "fp32" | "bf16", mtst.model.cpu_paths) is how torch runs on the CPU, and how OpenVINO runs
an export ("auto": the choice ``mtst bench --probe`` cached for it here, mtst.inference.export_probe, else OpenVINO's
default); an ONNX Runtime export runs at the precision it was exported with, so it takes only "auto".
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from mtst.errors import MtstError

if TYPE_CHECKING:
    from mtst.model.predictor import Predictor

Backend = Literal["auto", "torch", "onnx", "openvino"]
BACKENDS = ("auto", "torch", "onnx", "openvino")


def detect_backend(path: str | Path | None) -> str:
    """"torch" for a saved model, the export format for an exported directory."""
    from mtst.inference.export import read_export_info

    if path in (None, ""):
        return "torch"
    info = read_export_info(Path(path)) if Path(path).is_dir() else None
    return "torch" if info is None else info["format"]


def check_precision(precision: str, backend: str) -> None:
    """``precision`` is one of PRECISIONS, and "auto" for an ONNX export (ONNX Runtime has no precision switch)."""
    from mtst.model.cpu_paths import PRECISIONS

    if precision not in PRECISIONS:
        raise MtstError(f"unknown precision '{precision}'; choose one of {', '.join(PRECISIONS)}")
    if precision != "auto" and backend == "onnx":
        raise MtstError(f"precision {precision} is for torch and OpenVINO; an ONNX export runs at the precision it "
                        "was exported with (fp32, or int8 for a quantized export: ONNX Runtime has no switch); leave "
                        "precision auto, or export to OpenVINO, which takes fp32 / bf16")


def load_predictor(path: str | Path | None = None, backend: str = "auto", threads: int | None = None,
                   device: str | None = None, precision: str = "auto") -> Predictor:
    """Load a model directory for inference with the requested backend ("auto": whatever it holds).

    Args:
        path: a saved mtst model directory, or an exported one (None: the shipped default model).
        backend: "auto", "torch", "onnx" or "openvino"; must match what the directory holds.
        threads: CPU threads for inference (default: every core this process may use).
        device: where torch runs it (None: the CPU; "auto": CUDA, then MPS, then the CPU); exports run on the CPU.
        precision: "auto" | "fp32" | "bf16": how torch runs on the CPU (``MultiTaskModel.load``) or OpenVINO runs
            an export ("auto": the cached probe choice, else OpenVINO's default); ONNX exports: "auto".
    Returns:
        A Predictor; on torch its ``runtime.model`` is the MultiTaskModel (``MultiTaskModel.load`` to train it).
    """
    from mtst.model.predictor import Predictor, TorchRuntime

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
    check_precision(precision, wanted)
    if wanted == "torch":
        import torch

        from mtst.model.multitask import MultiTaskModel

        if threads is not None:
            torch.set_num_threads(threads)
        return Predictor(TorchRuntime(MultiTaskModel.load(path, precision=precision, device=device)))
    from mtst.inference.runtimes import RUNTIMES, OpenVINORuntime

    if wanted == "openvino":
        from mtst.inference.export_probe import inference_precision, measured_choice

        runtime = OpenVINORuntime(path, threads=threads, inference_precision=inference_precision(path, precision),
                                  measured=measured_choice(path) if precision == "auto" else None)
    else:
        runtime = RUNTIMES[wanted](path, threads=threads)
    predictor = Predictor(runtime)
    return predictor if device is None else predictor.to(device)


@dataclass(frozen=True)
class ModelSpec:
    """Which model to load, as plain values: they pickle and travel to worker processes and Ray actors on other
    machines (a loaded model does not); each loads its own copy with ``load()``.

    ``model``: a saved or exported mtst model directory (any backend ``load_predictor`` takes); None builds a
    head-less model on ``backbone`` (default all-MiniLM-L6-v2) with ``pooling`` / ``normalize`` /
    ``max_seq_length``. For a model directory ``normalize`` is what ``encode`` is asked for (None: the model's
    setting); callers pass it along. ``threads``: CPU threads for inference (None: every core); ``device``: where
    torch runs it (None: the CPU, "auto": CUDA, MPS, CPU); ``precision``: how torch or OpenVINO runs on the CPU
    ("auto" | "fp32" | "bf16"; an ONNX export takes only "auto"). A path must be
    readable wherever the spec is loaded (on a cluster: a shared file system, or the same path on each machine).
    """

    model: str | None = None
    backend: str = "auto"
    backbone: str | None = None
    pooling: str | None = None
    normalize: bool | None = None
    max_seq_length: int | None = None
    threads: int | None = None
    device: str | None = None
    precision: str = "auto"

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise MtstError(f"unknown backend '{self.backend}'; choose one of {', '.join(BACKENDS)}")
        fixed = [name for name in ("backbone", "pooling", "max_seq_length") if getattr(self, name) is not None]
        if self.model is not None and fixed:
            raise MtstError(f"{fixed[0]} cannot be combined with a model directory: it fixes its encoder settings")
        if self.model is None and self.backend not in ("auto", "torch"):
            raise MtstError(f"backend {self.backend} needs a model directory (an mtst export); backbones run on torch")
        if self.threads is not None and self.threads < 1:
            raise MtstError(f"threads must be at least 1, got {self.threads}")
        check_precision(self.precision, self.backend)  # an export behind backend "auto": refused at load()

    def load(self) -> Predictor:
        """The predictor this spec describes, with ``threads`` CPU threads."""
        if self.model is not None:
            return load_predictor(self.model, self.backend, self.threads, self.device, self.precision)
        import torch

        from mtst.model.multitask import MultiTaskModel
        from mtst.model.predictor import Predictor, TorchRuntime

        if self.threads is not None:
            torch.set_num_threads(self.threads)
        model = MultiTaskModel.from_backbone(self.backbone, self.pooling, self.normalize, self.max_seq_length,
                                             precision=self.precision, device=self.device,
                                             embedding_max_seq_length=self.max_seq_length)  # asked: embed there
        return Predictor(TorchRuntime(model))
