"""Writing files so that a crash never leaves one half-written: a temp file or folder beside the target,
then a rename. Every module that writes user-visible output goes through here."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from mtst.errors import MtstError


def write_atomic(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    """Write via a temp file in the same folder, then rename: the target is never half-written."""
    if not path.parent.is_dir():
        raise MtstError(f"output folder not found: {path.parent}; create it first")
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
        os.chmod(temp, 0o666 & ~current_umask())  # mkstemp makes it private (0600); give it a normal file's mode
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def write_text(path: Path, text: str) -> None:
    """``path`` replaced by ``text`` (UTF-8) in one rename."""
    write_atomic(path, lambda handle: handle.write(text.encode("utf-8")))


def write_json(path: Path, data: object) -> None:
    """Pretty JSON, for files inside a staging folder that is renamed into place as a whole."""
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def current_umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def _give_normal_modes(folder: Path) -> None:
    """mkdtemp makes a private folder (0700) and some writers private files: give the tree the modes a plain
    mkdir / open would have, so a model saved for others (a package, a shared disk) can be read by them."""
    umask = current_umask()
    folder.chmod(0o777 & ~umask)
    for item in folder.rglob("*"):
        if not item.is_symlink():  # chmod would follow it to a file outside the folder
            item.chmod((0o777 if item.is_dir() else 0o666) & ~umask)


def swap_into_place(staging: Path, path: Path) -> None:
    """Replace ``path`` (a directory, or nothing) by the finished ``staging`` directory."""
    _give_normal_modes(staging)
    if not path.exists():
        os.replace(staging, path)
        return
    if not path.is_dir():
        raise MtstError(f"{path} exists and is not a directory; choose another output path")
    retired = path.with_name(f".{path.name}.old-{os.getpid()}")
    os.replace(path, retired)
    os.replace(staging, path)
    shutil.rmtree(retired, ignore_errors=True)


@contextmanager
def staged_dir(path: Path) -> Iterator[Path]:
    """A fresh temp folder beside ``path`` (same file system: one rename) to fill; when the block ends
    without an error it replaces ``path``, otherwise it is removed and ``path`` is left as it was."""
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        yield staging
        swap_into_place(staging, path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
