"""mtst: one shared sentence encoder, many task heads, one forward pass."""

from __future__ import annotations

from mtst.errors import MtstError
from mtst.model.config import EncoderConfig, HeadConfig, ModelConfig
from mtst.model.heads import HEADS, Head
from mtst.model.multitask import MultiTaskModel
from mtst.model.pooling import POOLINGS

__all__ = [
    "HEADS",
    "POOLINGS",
    "EncoderConfig",
    "Head",
    "HeadConfig",
    "ModelConfig",
    "MtstError",
    "MultiTaskModel",
]
__version__ = "0.1.0"
