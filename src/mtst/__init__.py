"""mtst: one shared sentence encoder, many task heads, one forward pass.

The public names below are imported on first use (PEP 562 ``__getattr__``), so ``import mtst`` and the command
line's ``--help`` do not pay for torch and transformers; ``mtst.MultiTaskModel`` imports them when asked for.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from mtst.errors import MtstError

if TYPE_CHECKING:
    from mtst.model.config import EncoderConfig, HeadConfig, ModelConfig
    from mtst.model.heads import Head
    from mtst.model.multitask import MultiTaskModel
    from mtst.model.pooling import POOLINGS
    from mtst.model.tasks import TASK_TYPES, TaskType
    from mtst.training.api import train
    from mtst.training.few_shot import fit_few_shot, update

__version__ = "0.1.0"

# public name -> the module that defines it
_LAZY = {
    "POOLINGS": "mtst.model.pooling",
    "TASK_TYPES": "mtst.model.tasks",
    "EncoderConfig": "mtst.model.config",
    "Head": "mtst.model.heads",
    "HeadConfig": "mtst.model.config",
    "ModelConfig": "mtst.model.config",
    "MultiTaskModel": "mtst.model.multitask",
    "TaskType": "mtst.model.tasks",
    "train": "mtst.training.api",
    "fit_few_shot": "mtst.training.few_shot",
    "update": "mtst.training.few_shot",
}

# MtstError and the keys of _LAZY (tests/test_extras.py checks)
__all__ = ["POOLINGS", "TASK_TYPES", "EncoderConfig", "Head", "HeadConfig", "ModelConfig", "MtstError",
           "MultiTaskModel", "TaskType", "fit_few_shot", "train", "update"]


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'mtst' has no attribute {name!r}")
    try:
        module = importlib.import_module(_LAZY[name])
    except ModuleNotFoundError as exc:  # e.g. mtst.train without the 'train' extra: say which extra to install
        from mtst.extras import MissingExtraError, extra_for, message

        extra = extra_for(exc.name or "")
        if extra is None:
            raise
        raise MissingExtraError(message(extra, f"mtst.{name}", exc.name), name=exc.name) from exc
    value = getattr(module, name)
    globals()[name] = value  # the next access skips this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
