"""Where a Ray job's rows go, each output written so that a failed or killed run leaves nothing half-written.

``.npy`` / ``.jsonl`` / ``.parquet``: one file written by the driver, rows in input order, via a temp file beside
it and one rename; a ``.npy`` gets the ``OUT.npy.truncated.json`` sidecar ``mtst encode`` writes (its rows cut at
the embedding limit), written atomically before the array. Any other name: a folder of Parquet parts written by
the actors themselves (data that does not fit through one machine), staged beside the target and swapped in when
complete; each part is named after its first row, so a retried task rewrites its own part and never adds a second
one. Every sink keeps a ledger of the row numbers that came back and fails unless each row came back exactly once.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from numpy.lib.format import open_memmap

from mtst.errors import MtstError
from mtst.files import current_umask, swap_into_place
from mtst.inference.truncation import write_sidecar
from mtst.integrations.ray_data import EMBEDDING, ROW, TRUNCATED, MtstPredictor, PredictOptions

FILE_KINDS = {".npy": "npy", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}


def output_kind(output: Path, options: PredictOptions) -> str:
    """npy | jsonl | parquet (one file) | parts (a folder), checked before any work starts."""
    kind = "parts" if output.is_dir() else FILE_KINDS.get(output.suffix.lower(), "parts")
    if kind == "parts" and output.suffix:
        raise MtstError(f"cannot tell the output format from '{output.name}'; use .npy, .jsonl, .parquet, "
                        "or a folder name without a suffix for Parquet parts")
    if kind == "npy" and (options.tasks != () or not options.embedding):
        raise MtstError(f"{output.name}: a .npy file holds embeddings only; use .jsonl or .parquet for predictions")
    if not output.parent.is_dir():
        raise MtstError(f"output folder not found: {output.parent}; create it first")
    if kind != "parts" and output.is_dir():
        raise MtstError(f"{output} is a directory; name a file, or a new folder for Parquet parts")
    return kind


class Ledger:
    """Which rows came back: a second copy or a missing row is an error, never a silent duplicate or gap."""

    def __init__(self, rows: int):
        self.seen = np.zeros(rows, dtype=bool)
        self.done = 0

    def mark(self, rows: np.ndarray) -> None:
        if self.seen[rows].any():
            raise MtstError(f"row {int(rows[self.seen[rows]][0])} came back twice; the output was not kept")
        self.seen[rows] = True
        self.done += len(rows)

    def check_complete(self) -> None:
        if not self.seen.all():
            missing = np.flatnonzero(~self.seen)
            raise MtstError(f"{len(missing)} rows never came back (first: row {int(missing[0])}); rerun the command")


class FileSink:
    """One output file from the driver: a temp file in the target's folder, renamed into place when complete.
    ``limit``: the tokens the embedding reads, recorded in a ``.npy``'s sidecar."""

    def __init__(self, kind: str, output: Path, rows: int, schema: pa.Schema, limit: int | None = None):
        self.kind, self.output, self.ledger, self.schema = kind, output, Ledger(rows), schema
        self.limit, self.cut = limit, []  # .npy: the rows cut at the embedding limit, in any order
        fd, name = tempfile.mkstemp(prefix=f".{output.name}.", suffix=".tmp", dir=output.parent)
        os.close(fd)
        self.temp = Path(name)
        self.pending: dict[int, pa.Table] = {}  # first row -> a block that came early (file order = input order)
        self.next_row, self.writer, self.handle, self.array = 0, None, None, None
        if kind == "npy" and rows:  # a memory map cannot be empty
            dim = schema.field(EMBEDDING).type.list_size
            self.array = open_memmap(self.temp, mode="w+", dtype=np.float32, shape=(rows, dim))
        elif kind == "jsonl":
            self.handle = self.temp.open("wb")

    def add(self, block: pa.Table) -> None:
        rows = block.column(ROW).to_numpy()
        self.ledger.mark(rows)
        if self.kind == "npy":  # rows land where they belong: no ordering needed
            values = block.column(EMBEDDING).combine_chunks().flatten().to_numpy()
            self.array[rows] = values.reshape(len(rows), -1)
            if TRUNCATED in block.column_names:
                self.cut.extend(rows[block.column(TRUNCATED).to_numpy(zero_copy_only=False)].tolist())
            return
        if len(rows) and not np.array_equal(rows, np.arange(rows[0], rows[0] + len(rows))):
            raise MtstError("a block came back out of row order; the output was not kept")
        self.pending[int(rows[0]) if len(rows) else self.next_row] = block
        while self.next_row in self.pending:
            ready = self.pending.pop(self.next_row)
            self.next_row += ready.num_rows
            self._write(ready.drop_columns([ROW]))

    def _write(self, table: pa.Table) -> None:
        if self.kind == "jsonl":
            rows = (_as_one_process_row(row) for row in table.to_pylist())
            lines = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
            self.handle.write(lines.encode("utf-8"))
            return
        if self.writer is None:
            self.writer = pq.ParquetWriter(self.temp, table.schema)
        try:
            table = table.cast(self.writer.schema)
        except (pa.ArrowInvalid, ValueError) as exc:
            raise MtstError(f"rows from row {self.next_row - table.num_rows} on have other fields or types than "
                            f"the first ones ({str(exc)[:100]}); write .jsonl, or make the input uniform") from exc
        self.writer.write_table(table)

    def finish(self) -> None:
        self.ledger.check_complete()
        if self.kind == "npy":  # before the array: a finished OUT always has its sidecar, as in mtst encode
            write_sidecar(self.output, self.cut, len(self.ledger.seen), self.limit)
        if self.array is not None:
            self.array.flush()
            self.array = None
        elif self.kind == "npy":  # no rows: a (0, H) array
            with self.temp.open("wb") as handle:
                np.save(handle, np.zeros((0, self.schema.field(EMBEDDING).type.list_size), dtype=np.float32))
        elif self.handle is not None:
            self.handle.close()
        elif self.writer is not None:
            self.writer.close()
        else:  # no rows: an empty Parquet file with the columns it would have had
            pq.write_table(self.schema.empty_table(), self.temp)
        os.chmod(self.temp, 0o666 & ~current_umask())
        os.replace(self.temp, self.output)

    def abort(self) -> None:
        for closing in (self.handle, self.writer):
            if closing is not None:
                closing.close()
        self.array = None
        self.temp.unlink(missing_ok=True)


class PartsSink:
    """A folder of Parquet parts written by the actors (``PartWriter``); the driver only keeps the ledger."""

    def __init__(self, output: Path, rows: int):
        self.output, self.ledger = output, Ledger(rows)
        self.staging = Path(tempfile.mkdtemp(prefix=f".{output.name}.", dir=output.parent))

    def add(self, block: pa.Table) -> None:
        self.ledger.mark(block.column(ROW).to_numpy())

    def finish(self) -> None:
        self.ledger.check_complete()
        for leftover in self.staging.glob(".*.tmp"):  # a killed attempt's unfinished part
            leftover.unlink()
        swap_into_place(self.staging, self.output)

    def abort(self) -> None:
        shutil.rmtree(self.staging, ignore_errors=True)


class PartWriter(MtstPredictor):
    """MtstPredictor that writes its rows as ``part-<first row>.parquet`` in ``folder`` and returns only their
    row numbers, so the embeddings never travel through the driver."""

    def __init__(self, spec, options: PredictOptions, threads: int | None, folder: str):
        super().__init__(spec, options, threads)
        self.folder = Path(folder)

    def __call__(self, batch) -> pa.Table:
        table = super().__call__(batch)
        if table.num_rows:
            target = self.folder / f"part-{table.column(ROW)[0].as_py():012d}.parquet"
            temp = self.folder / f".{target.name}.{os.getpid()}.tmp"
            pq.write_table(table, temp)
            os.replace(temp, target)  # a retry of the same rows replaces the same part
        return table.select([ROW])


def _as_one_process_row(row: dict) -> dict:
    """A JSON line as one process writes it: Arrow gives every row a ``truncated`` column, JSON rows carry the key
    only when the text was cut."""
    if row.get("truncated") is False:
        row = {key: value for key, value in row.items() if key != "truncated"}
    return row
