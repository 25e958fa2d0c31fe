"""mtst: one shared sentence encoder, many task heads, one forward pass."""

from __future__ import annotations

from mtst.errors import MtstError
from mtst.model.config import EncoderConfig, HeadConfig, ModelConfig
from mtst.model.heads import Head
from mtst.model.multitask import MultiTaskModel
from mtst.model.pooling import POOLINGS
from mtst.model.tasks import TASK_TYPES, TaskType

__all__ = [
    "POOLINGS",
    "TASK_TYPES",
    "EncoderConfig",
    "Head",
    "HeadConfig",
    "ModelConfig",
    "MtstError",
    "MultiTaskModel",
    "TaskType",
]
__version__ = "0.1.0"
