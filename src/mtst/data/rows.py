"""Rows of text files: UTF-8 text, csv/tsv fields and JSON-lines objects, each with its ``path:line`` origin.

The format layer under the readers (readers.py turns rows into labelled Examples; pairs.py into sentence pairs).
Every problem a user can fix in a file raises MtstError naming ``path:line`` and the problem.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path

from mtst.data.sources import DataSource
from mtst.errors import MtstError


def read_text(path: Path) -> str:
    """The whole file as UTF-8 text; a decoding error names the line it sits on."""
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise MtstError(f"{path}: file not found; check the data path in the config") from exc
    except IsADirectoryError as exc:
        raise MtstError(f"{path}: is a directory; point the data path at a file") from exc
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise MtstError(f"{path}:{line}: not valid UTF-8 (byte {data[exc.start]:#04x}); re-save the file as UTF-8"
                        ) from exc
    if not text.strip():
        raise MtstError(f"{path}: file is empty; it needs at least one example")
    return text.removeprefix("\ufeff")


def _column_index(column: str | int, header: list[str] | None, path: Path) -> int:
    if isinstance(column, int):
        return column
    if header is None:
        raise MtstError(f"{path}: with header: false, columns are 0-based indices; got '{column}'")
    if column not in header:
        raise MtstError(f"{path}:1: no column '{column}'; the header has {header}")
    return header.index(column)


def read_delimited(source: DataSource, columns: Sequence[str | int]) -> tuple[list[list[str]], list[str]]:
    """csv (normal quoting) or tsv (QUOTE_NONE: SST-2 and STS-B hold stray quotes) -> the wanted
    fields of each non-blank row, stripped, and each row's origin."""
    path = source.path
    stream = io.StringIO(read_text(path), newline="")
    if source.format == "tsv":
        reader = csv.reader(stream, delimiter="\t", quoting=csv.QUOTE_NONE)
    else:
        reader = csv.reader(stream)
    rows: list[list[str]] = []
    origins: list[str] = []
    indices: list[int] | None = None
    try:
        line = 1
        for row in reader:
            origin, line = f"{path}:{line}", reader.line_num + 1  # a quoted field may span lines
            if not any(field.strip() for field in row):
                continue
            if indices is None:
                header = [field.strip() for field in row] if source.header else None
                indices = [_column_index(column, header, path) for column in columns]
                if source.header:
                    continue
            for column, index in zip(columns, indices, strict=True):
                if not -len(row) <= index < len(row):
                    raise MtstError(f"{origin}: row has {len(row)} column(s), so column {column!r} is missing")
            rows.append([row[index].strip() for index in indices])
            origins.append(origin)
    except csv.Error as exc:
        raise MtstError(f"{path}:{reader.line_num}: cannot parse as {source.format}: {exc}") from exc
    if not rows:
        raise MtstError(f"{path}: no examples below the header; the file needs at least one row")
    return rows, origins


def jsonl_objects(path: Path) -> tuple[list[dict], list[str]]:
    """Every non-blank line of a JSON-lines file as an object, and each line's origin."""
    objects, origins = [], []
    for number, line in enumerate(read_text(path).split("\n"), start=1):  # not splitlines: U+2028 is JSON
        if not line.strip():
            continue
        origin = f"{path}:{number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise MtstError(f"{origin}: invalid JSON ({exc.msg}); each line must be one JSON object") from exc
        if not isinstance(row, dict):
            raise MtstError(f"{origin}: each line must be one JSON object, got {type(row).__name__}")
        objects.append(row)
        origins.append(origin)
    return objects, origins


def jsonl_rows(source: DataSource, columns: Sequence[str | int]) -> tuple[list[list], list[str]]:
    """The ``columns`` (key names) of every non-blank line of a JSON-lines file, and each line's origin."""
    if not all(isinstance(column, str) for column in columns):
        raise MtstError(f"{source.path}: jsonl columns are key names, got {list(columns)}")
    objects, origins = jsonl_objects(source.path)
    rows = []
    for row, origin in zip(objects, origins, strict=True):
        for column in columns:
            if column not in row:
                raise MtstError(f"{origin}: no key '{column}' (keys: {sorted(row)}); set text_column / label_column "
                                "to the file's key names")
        rows.append([row[column] for column in columns])
    return rows, origins
