"""Where a model runs: ``resolve_device`` turns a user's choice into a torch device, ``to_device`` moves a batch.

None keeps the model where it is (the CPU after ``load``); "auto" picks CUDA, then Apple's MPS, then the CPU;
anything else is a torch device string ("cpu", "cuda", "cuda:1", "mps"). Batches are built on the CPU by the
tokenizer and moved to the model's device just before the forward pass; what is decoded (logits, embeddings)
comes back as CPU copies, so rows are built the same way on every device.
"""

from __future__ import annotations

import torch
from torch import nn

from mtst.errors import MtstError

DEVICE_CHOICES = "auto, cpu, cuda, cuda:N or mps"


def resolve_device(device: str | torch.device) -> torch.device:
    """``device`` as a torch device; "auto": CUDA when available, then MPS, then the CPU."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError):
        raise MtstError(f"unknown device '{device}'; use {DEVICE_CHOICES}") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise MtstError(f"device '{device}' asked for, but CUDA is not available here; use 'cpu' or 'auto'")
    if resolved.type == "mps" and not torch.backends.mps.is_available():
        raise MtstError(f"device '{device}' asked for, but MPS is not available here; use 'cpu' or 'auto'")
    return resolved


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's parameters (the CPU for a model without any)."""
    parameter = next(model.parameters(), None)
    return torch.device("cpu") if parameter is None else parameter.device


def to_device(batch: dict, device: torch.device) -> dict:
    """The batch's tensors on ``device`` (the same tensors when they are there already); other values as they are."""
    return {key: value.to(device) if isinstance(value, torch.Tensor) else value for key, value in batch.items()}
