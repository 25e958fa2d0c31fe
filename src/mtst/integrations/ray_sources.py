"""Inputs as Ray datasets of whole, numbered chunks: a text file (one sentence per line, read exactly as ``mtst
encode`` reads it), a JSON-lines file, or Parquet (a file or a folder of them).

Why not ``ray.data.read_text`` / ``read_parquet``: read_text reads a whole file in one task and splits lines on
every Unicode line break (mtst splits on ``\\n`` only), and neither numbers rows. Here the driver plans the rows
first (one fast scan for line offsets, which also checks the UTF-8; Parquet footers for row counts) and every read
task yields whole ``chunk_size``-row chunks of the global order, each row with its ``row`` number. Actors then encode
exactly the chunks the single-process path encodes, and the driver can check that each row came back once.
Paths must be readable on every node (a shared file system).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from ray.data.block import BlockMetadata
from ray.data.datasource import Datasource, ReadTask

from mtst.errors import MtstError
from mtst.integrations.ray_data import ROW

FORMATS = {".txt": "text", ".text": "text", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}
MAX_CHUNKS_PER_TASK = 16  # bounds a block (what one actor call gets): 16 x 4096 rows by default
TASKS = 256  # read tasks for inputs of up to 256 chunks: one chunk each, so every actor gets work
SCAN_BYTES = 1 << 24


def input_format(path: Path) -> str:
    """text | jsonl | parquet, from the suffix (a folder is Parquet; any other file is text)."""
    if path.is_dir():
        return "parquet"
    return FORMATS.get(path.suffix.lower(), "text")


@dataclass(frozen=True)
class Plan:
    """Where every chunk of rows lives: for lines, the byte offset of each chunk's first line; for Parquet, each
    file's row count (rows are numbered across files in sorted-name order)."""

    kind: str
    files: tuple[str, ...]
    rows: int
    chunk_size: int
    starts: tuple[int, ...]  # lines: byte offset per chunk; parquet: rows per file

    @property
    def chunks(self) -> int:
        return math.ceil(self.rows / self.chunk_size)


def plan_input(path: Path, chunk_size: int, text_column: str) -> Plan:
    """Check the input on the driver (one-line errors before any actor starts) and plan its chunks."""
    if chunk_size < 1:
        raise MtstError(f"chunk_size must be at least 1, got {chunk_size}")
    if not path.exists():
        raise MtstError(f"input not found: {path}; pass a text, .jsonl or .parquet file (or a folder of .parquet)")
    kind = input_format(path)
    if kind == "parquet":
        return _plan_parquet(path, chunk_size, text_column)
    rows, offsets = scan_lines(path, chunk_size)
    return Plan(kind, (str(path.resolve()),), rows, chunk_size, tuple(offsets))


def scan_lines(path: Path, chunk_size: int) -> tuple[int, list[int]]:
    """(lines, byte offset of every chunk's first line), splitting on \\n only; invalid UTF-8 is an error here."""
    offsets, lines, position, carry, ends_with_newline = [0], 0, 0, b"", True
    try:
        with path.open("rb") as handle:
            while block := handle.read(SCAN_BYTES):
                newlines = np.flatnonzero(np.frombuffer(block, dtype=np.uint8) == 10)  # positions of \n
                numbers = lines + np.arange(1, len(newlines) + 1)  # the line each \n ends, counted from 1
                offsets.extend((position + newlines[numbers % chunk_size == 0] + 1).tolist())
                whole = carry + block[: newlines[-1] + 1] if len(newlines) else b""
                carry = block[newlines[-1] + 1 :] if len(newlines) else carry + block
                _check_utf8(whole, path, lines)
                lines, position = lines + len(newlines), position + len(block)
                ends_with_newline = block.endswith(b"\n")
            _check_utf8(carry, path, lines)
    except OSError as exc:
        raise MtstError(f"cannot read {path}: {exc.strerror or exc}") from exc
    rows = lines + (0 if ends_with_newline else 1)
    return rows, [offset for offset in offsets if offset < position][: math.ceil(rows / chunk_size)]


def _check_utf8(data: bytes, path: Path, first_line: int) -> None:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = first_line + data[: exc.start].count(b"\n") + 1
        raise MtstError(f"{path} is not UTF-8 text (invalid byte on line {line}); convert it, e.g. iconv -t utf-8"
                        ) from exc


def _plan_parquet(path: Path, chunk_size: int, text_column: str) -> Plan:
    files = sorted(str(p) for p in path.rglob("*.parquet")) if path.is_dir() else [str(path)]
    if not files:
        raise MtstError(f"no .parquet files in {path}; pass a text, .jsonl or .parquet file (or a folder of .parquet)")
    counts, schema = [], None
    for file in files:
        try:
            meta = pq.ParquetFile(file)
        except (OSError, pa.ArrowException) as exc:
            raise MtstError(f"cannot read {file} as Parquet ({str(exc).strip()[:120]}); check the file") from exc
        if schema is None:
            schema = meta.schema_arrow
        elif not meta.schema_arrow.equals(schema):
            raise MtstError(f"{file} has other columns than {files[0]}; every Parquet file must have the same schema")
        counts.append(meta.metadata.num_rows)
    if text_column not in schema.names:
        raise MtstError(f"no column '{text_column}' in {path} (columns: {', '.join(schema.names)}); "
                        "name the text column (--column NAME)")
    if ROW in schema.names:
        raise MtstError(f"{path} already has a column '{ROW}' (mtst numbers rows in it); rename that column")
    return Plan("parquet", tuple(files), sum(counts), chunk_size, tuple(counts))


class ChunkedSource(Datasource):
    """A Ray datasource over a Plan: each read task yields a run of whole chunks, rows numbered in ``row``.

    Read with ``ray.data.read_datasource(source, override_num_blocks=source.num_tasks)``: the number of tasks is
    fixed here, and Ray, given fewer tasks than the parallelism it wants, splits each task's output into smaller
    blocks, which would cut chunks apart (other batches, other float roundings).
    """

    def __init__(self, plan: Plan):
        super().__init__()
        self.plan = plan
        self.chunks_per_task = min(MAX_CHUNKS_PER_TASK, max(1, math.ceil(plan.chunks / TASKS)))
        self.num_tasks = math.ceil(plan.chunks / self.chunks_per_task)

    def estimate_inmemory_data_size(self) -> int:
        return sum(Path(file).stat().st_size for file in self.plan.files)

    def get_read_tasks(self, parallelism: int, per_task_row_limit: int | None = None,
                       data_context=None) -> list[ReadTask]:
        """The planned tasks, whatever ``parallelism`` Ray asks for (see the class docstring)."""
        plan, per_task = self.plan, self.chunks_per_task
        size = self.estimate_inmemory_data_size()
        tasks = []
        for first in range(0, plan.chunks, per_task):
            last = min(plan.chunks, first + per_task)
            rows = min(plan.rows, last * plan.chunk_size) - first * plan.chunk_size
            read = (partial(_read_lines, plan.kind, plan.files[0], plan.starts[first], first * plan.chunk_size,
                            rows, plan.chunk_size)
                    if plan.kind != "parquet" else partial(_read_parquet, plan, first * plan.chunk_size, rows))
            meta = BlockMetadata(num_rows=rows, size_bytes=max(1, size * rows // max(1, plan.rows)),
                                 exec_stats=None, input_files=plan.files if plan.kind == "parquet" else plan.files[:1])
            tasks.append(ReadTask(read, meta, per_task_row_limit=per_task_row_limit))
        return tasks


def _read_lines(kind: str, file: str, offset: int, first_row: int, rows: int, chunk_size: int):
    """Chunks of lines from ``offset`` on (line ``first_row`` starts there), as ``mtst encode`` reads lines."""
    with open(file, "rb") as handle:
        handle.seek(offset)
        for start in range(first_row, first_row + rows, chunk_size):
            count = min(chunk_size, first_row + rows - start)
            lines = []
            for number in range(start, start + count):
                text = handle.readline().decode("utf-8-sig" if number == 0 else "utf-8")
                lines.append(text.removesuffix("\n").removesuffix("\r"))
            numbers = pa.array(np.arange(start, start + count, dtype=np.int64))
            if kind == "text":
                yield pa.table({"text": lines, ROW: numbers})
            else:
                yield pa.Table.from_pylist([_json_object(line, file, n) for n, line in enumerate(lines, start)]
                                           ).append_column(ROW, numbers)


def _json_object(line: str, file: str, number: int) -> dict:
    try:
        value = json.loads(line)
    except ValueError as exc:
        raise MtstError(f"{file} line {number + 1} is not valid JSON ({exc.msg}); one JSON object per line") from exc
    if not isinstance(value, dict):
        raise MtstError(f"{file} line {number + 1} is not a JSON object; one object per line, e.g. {{\"text\": ...}}")
    if ROW in value:
        raise MtstError(f"{file} line {number + 1} has a field '{ROW}' (mtst numbers rows in it); rename that field")
    return value


def _read_parquet(plan: Plan, first_row: int, rows: int):
    """Chunks of rows [first_row, first_row + rows) across the files, reading only the row groups they touch."""
    pieces, base = [], 0
    for file, count in zip(plan.files, plan.starts, strict=True):
        low, high = max(first_row, base), min(first_row + rows, base + count)
        if low < high:
            handle = pq.ParquetFile(file)
            groups, group_base, skip = [], 0, None
            for index in range(handle.num_row_groups):
                size = handle.metadata.row_group(index).num_rows
                if group_base + size > low - base and group_base < high - base:
                    groups.append(index)
                    skip = group_base if skip is None else skip
                group_base += size
            table = handle.read_row_groups(groups)
            pieces.append(table.slice(low - base - skip, high - low))
        base += count
    table = pa.concat_tables(pieces) if pieces else None
    for start in range(0, rows, plan.chunk_size):
        chunk = table.slice(start, min(plan.chunk_size, rows - start))
        numbers = np.arange(first_row + start, first_row + start + chunk.num_rows, dtype=np.int64)
        yield chunk.append_column(ROW, pa.array(numbers))
