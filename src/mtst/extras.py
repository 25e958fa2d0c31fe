"""Optional dependencies: which extra (``pip install 'mtst[EXTRA]'``) brings which libraries, and the one-line
error when a command or function needs one that is not installed.

Core mtst (``import mtst``, encode, predict, similarity on PyTorch) needs none of them. A command checks its extra
before it starts (``check``: looks the modules up without importing them, so it costs nothing); library code
imports an optional library through ``require``. Both raise ``MissingExtraError``, an MtstError (the CLI prints one
line, exit code 1) and an ImportError (what callers of a library expect). The extras themselves are declared in
pyproject.toml; ``EXTRAS`` lists the modules mtst imports from each.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from mtst.errors import MtstError

# extra -> the top-level modules mtst imports from it (what makes the extra "installed")
EXTRAS: dict[str, tuple[str, ...]] = {
    "train": ("accelerate", "sentence_transformers", "sklearn", "seqeval", "scipy", "matplotlib", "datasets"),
    "export": ("onnx", "onnxruntime", "openvino", "nncf"),
    "serve": ("fastapi", "starlette", "uvicorn", "prometheus_client", "orjson"),
    "ray": ("ray", "pyarrow", "pandas"),
    "langchain": ("langchain_core",),
    "llama-index": ("llama_index",),
}


class MissingExtraError(MtstError, ImportError):
    """An optional library is not installed; the message names the extra that brings it."""


def message(extra: str, what: str, module: str | None = None) -> str:
    """``mtst serve needs the 'serve' extra: pip install 'mtst[serve]' (no module named 'fastapi')``."""
    missing = f" (no module named '{module}')" if module else ""
    return f"{what} needs the '{extra}' extra: pip install 'mtst[{extra}]'{missing}"


def extra_for(module: str) -> str | None:
    """The extra that brings ``module`` (a dotted name is looked up by its top level); None for any other."""
    top = module.partition(".")[0]
    return next((extra for extra, modules in EXTRAS.items() if top in modules), None)


def missing_module(extra: str) -> str | None:
    """The first of the extra's modules that is not installed (found without importing it), else None."""
    return next((name for name in EXTRAS[extra] if importlib.util.find_spec(name) is None), None)


def check(extra: str, what: str) -> None:
    """Raise MissingExtraError unless every library of ``extra`` is installed; imports nothing."""
    module = missing_module(extra)
    if module is not None:
        raise MissingExtraError(message(extra, what, module), name=module)


def require(extra: str, module: str, what: str | None = None) -> ModuleType:
    """``import module``, or MissingExtraError naming ``extra`` when it (or a library it needs) is missing."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        raise MissingExtraError(message(extra, what or f"'{module}'", exc.name), name=exc.name) from exc
