"""Command-line input and output: sentences from arguments, a file or stdin; JSON lines to stdout or a file
(written atomically through mtst.files)."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, redirect_stdout
from pathlib import Path

import typer

from mtst.errors import MtstError
from mtst.files import write_atomic

PROGRESS_THRESHOLD = 256  # inputs above this show a progress bar on stderr


def decode_lines(data: bytes, source: str) -> list[str]:
    """UTF-8 bytes -> one sentence per line. Blank lines stay (line N = row N), a final newline does not."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise MtstError(f"{source} is not UTF-8 text (invalid byte at offset {exc.start}); "
                        "convert it, e.g. iconv -t utf-8") from exc
    if not text:
        return []
    lines = text.replace("\r\n", "\n").split("\n")
    return lines[:-1] if text.endswith("\n") else lines


def read_sentences(sentences: list[str] | None, input_path: str | None) -> list[str]:
    """Sentences from the arguments, a file, or stdin (``--input -``, or nothing given and stdin piped)."""
    if sentences and input_path is not None:
        raise MtstError("give sentences as arguments or with --input, not both")
    if sentences:
        return list(sentences)
    if input_path == "-" or (input_path is None and not sys.stdin.isatty()):
        stdin = getattr(sys.stdin, "buffer", None)  # bytes, so a bad encoding gets our one-line error
        return decode_lines(stdin.read() if stdin is not None else sys.stdin.read().encode("utf-8"), "stdin")
    if input_path is None:
        raise MtstError("no sentences: pass them as arguments, with --input FILE, or pipe them on stdin")
    path = Path(input_path)
    if not path.exists() or path.is_dir():
        raise MtstError(f"input file not found: {path}" + (" (it is a directory)" if path.is_dir() else ""))
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise MtstError(f"cannot read {path}: {exc.strerror}") from exc
    return decode_lines(data, str(path))


def _jsonl_bytes(rows: Iterable[dict]) -> bytes:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows).encode("utf-8")


def emit_jsonl(rows: list[dict], output: Path | None) -> None:
    if output is None:
        for row in rows:
            typer.echo(json.dumps(row, ensure_ascii=False))
    else:
        data = _jsonl_bytes(rows)
        write_atomic(output, lambda handle: handle.write(data))


def wants_progress(texts: list[str]) -> bool:
    return len(texts) > PROGRESS_THRESHOLD and sys.stderr.isatty()  # a bar in a log file is noise


def stdout_is_terminal() -> bool:
    return sys.stdout.isatty()


def short(text: str, width: int = 40) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


@contextmanager
def stdout_kept_clean() -> Iterator[None]:
    """Send everything written to stdout inside the block to stderr, at the file-descriptor level: libraries that
    print progress or keep their own handle on stdout (NNCF's logger, its progress bars) cannot corrupt a machine-
    readable answer printed after the block."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        with redirect_stdout(sys.stderr):  # and whatever looks sys.stdout up when it writes
            yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def task_argument(argument: str, option: str, example: str) -> tuple[str, Path, str | None]:
    """``task=PATH`` or ``task=PATH:FORMAT`` -> (task, path, the format when given: csv, tsv, jsonl, conll, spans,
    hf_disk); ``option`` and ``example`` name the flag in the one-line error."""
    from typing import get_args

    from mtst.data.sources import DataFormat

    task, equals, path = argument.partition("=")
    if not equals or not task or not path:
        raise MtstError(f"{option} '{argument}': expected TASK=PATH or TASK=PATH:FORMAT, e.g. {example}")
    stem, colon, fmt = path.rpartition(":")
    if colon and fmt in get_args(DataFormat):
        return task, Path(stem), fmt
    return task, Path(path), None
