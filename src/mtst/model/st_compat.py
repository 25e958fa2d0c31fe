"""sentence-transformers' conventions that ``Predictor.encode`` / ``predict`` follow, in one place: the keywords
mtst used before (accepted for one release, with a DeprecationWarning), ST's progress-bar rule and its
quantisation of embeddings (``precision``).
"""

from __future__ import annotations

import logging
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mtst.errors import MtstError

CONVERT_TO = ("numpy", "torch")  # the deprecated convert_to's values
PRECISIONS = ("float32", "int8", "uint8", "binary", "ubinary")  # sentence-transformers' quantize_embeddings
# The keywords encode/predict took before they followed sentence-transformers -> the keyword to use now.
RENAMED = {"show_progress": "show_progress_bar", "convert_to": "convert_to_tensor=True / convert_to_numpy=True"}


def renamed_keywords(method: str, renamed: dict, allowed: Sequence[str] = tuple(RENAMED)) -> dict:
    """The old keywords given, each with a DeprecationWarning naming its new one; any other name is a TypeError."""
    for name in renamed:
        if name not in allowed:
            raise TypeError(f"{method}() got an unexpected keyword argument '{name}'")
        warnings.warn(f"{method}({name}=...) is deprecated and goes in the next release; use {RENAMED[name]}",
                      DeprecationWarning, stacklevel=_outside_mtst())
    return renamed


def _outside_mtst() -> int:
    """The stacklevel of the first caller outside the mtst package, so the warning names the user's line (and
    Python's default filters show it there)."""
    package = str(Path(__file__).resolve().parents[1])
    frame, level = sys._getframe(2), 2  # level 1: renamed_keywords, which warns
    while frame is not None and frame.f_code.co_filename.startswith(package):
        frame, level = frame.f_back, level + 1
    return level


def show_progress(show: bool | None) -> bool:
    """sentence-transformers' rule for None: a bar when logging is at INFO or DEBUG."""
    return logging.getLogger("mtst").getEffectiveLevel() <= logging.INFO if show is None else bool(show)


def quantize(embeddings: np.ndarray, precision: str) -> np.ndarray:
    """sentence-transformers' quantisation (int8/uint8 ranges from these embeddings; binary packs 8 dims a byte)."""
    try:
        from sentence_transformers.util.quantization import quantize_embeddings
    except ImportError:
        raise MtstError(f"precision '{precision}' needs sentence-transformers: pip install sentence-transformers"
                        ) from None
    return quantize_embeddings(embeddings, precision=precision)
