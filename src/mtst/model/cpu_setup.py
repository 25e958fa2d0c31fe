"""How a MultiTaskModel runs on the CPU: its kernels, its precision and the measured path (mtst.model.cpu_paths).

The model's methods ``set_cpu_kernels``, ``use_precision`` and ``use_cpu_path`` call these functions (its
``choose_cpu_path`` runs mtst.model.cpu_probe); they read and set ``model.encoder``, ``model.branch``,
``model.config``, ``model.cpu_path`` and ``model.cpu_path_source``.
"""

from __future__ import annotations

import os
from dataclasses import replace

from mtst.errors import MtstError
from mtst.model.cpu_paths import CpuPath, probe_on_first_use, resolve
from mtst.model.onednn import CPU_KERNELS, cpu_kernels, kernels_from_environment, use_onednn


def set_cpu_kernels(model, kernels: str) -> str:
    """``kernels`` ("torch" | "onednn") for the encoder's and branch's linear layers; returns those now in use."""
    if kernels not in CPU_KERNELS:
        raise MtstError(f"unknown CPU kernels '{kernels}'; choose one of {', '.join(CPU_KERNELS)}")
    for part in (model.encoder, model.branch):
        if part is not None:
            use_onednn(part, enabled=kernels == "onednn")
    return cpu_kernels(model.encoder)


def use_precision(model, precision: str = "auto") -> CpuPath:
    """The CPU path for ``precision`` ("fp32" | "bf16" | "auto": the cached measurement, else fp32), in use."""
    path, model.cpu_path_source = resolve(precision, model.config)
    if model.cpu_path_source == "default" and probe_on_first_use(model):  # nothing cached for this CPU yet
        return model.choose_cpu_path(quick=True)["path"]
    return use_cpu_path(model, path)


def use_cpu_path(model, path: CpuPath) -> CpuPath:
    """``path``'s kernels and precision, in use; ``MTST_ONEDNN``, when set, overrides the kernels."""
    kernels = kernels_from_environment() if os.environ.get("MTST_ONEDNN", "").strip() else path.kernels
    if kernels != cpu_kernels(model.encoder):
        kernels = model.set_cpu_kernels(kernels)
    model.cpu_path = replace(path, kernels=kernels)
    return model.cpu_path

