"""mtst: one shared sentence encoder, many task heads, one forward pass."""

from __future__ import annotations

from mtst.config import EncoderConfig, HeadConfig, ModelConfig
from mtst.errors import MtstError
from mtst.heads import HEADS, Head
from mtst.model import MultiTaskModel
from mtst.pooling import POOLINGS

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
