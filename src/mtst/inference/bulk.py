"""Streaming, resumable encoding of a text file (one sentence per line) into one ``.npy`` array.

Memory stays bounded: lines are read and encoded ``chunk_size`` at a time, and each chunk is written
straight into ``OUT.partial`` (an .npy memory map sized after counting lines). After every chunk a
small ``OUT.progress.json`` records how many rows are done, so rerunning the same command after a
kill continues where it stopped. Only a complete array is renamed to ``OUT``. Row i is line i of the
input (an empty line gives the embedding of the empty string), so the two stay aligned. A row cannot say its
text was cut at the embedding limit, so ``OUT.truncated.json`` beside it lists the indices of the cut rows
(written with every finished array, an empty list when none was cut: mtst.inference.truncation).

With ``Workers(processes=N, spec=ModelSpec(...))`` N spawned processes each load the predictor themselves (from
the spec's plain values: a loaded model never crosses a process boundary) with the CPU threads split
between them, take whole chunks from a queue and write their rows straight into the shared memory map.
The parent reads the file and owns the manifest: a chunk counts as done only when it and every chunk
before it are on disk, so a resume never skips a row whichever worker was slower.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterator
from itertools import islice
from pathlib import Path

import numpy as np
from numpy.lib.format import open_memmap

from mtst.errors import MtstError
from mtst.files import write_text
from mtst.inference.bulk_workers import WorkerPool, Workers, model_id
from mtst.inference.truncation import embedding_cuts, embedding_limit, write_sidecar
from mtst.progress import progress_bar

logger = logging.getLogger("mtst")

Advance = Callable[[int], None]


def partial_path(output: Path) -> Path:
    return output.with_name(output.name + ".partial")


def manifest_path(output: Path) -> Path:
    return output.with_name(output.name + ".progress.json")


def _lines(path: Path, skip: int = 0) -> Iterator[str]:
    """Lines split on \\n only (as ``mtst encode`` reads files): \\r\\n endings and a UTF-8 BOM are dropped."""
    with path.open("rb") as handle:
        for number, raw in enumerate(handle):
            if number < skip:
                continue
            try:
                line = raw.decode("utf-8-sig" if number == 0 else "utf-8")
            except UnicodeDecodeError as exc:
                raise MtstError(f"{path} is not UTF-8 text (invalid byte on line {number + 1}); "
                                "convert it, e.g. iconv -t utf-8") from exc
            yield line.removesuffix("\n").removesuffix("\r")


def count_lines(path: Path) -> int:
    try:
        return sum(1 for _ in _lines(path))
    except OSError as exc:
        raise MtstError(f"cannot read {path}: {exc.strerror or exc}") from exc


def _write_manifest(path: Path, data: dict) -> None:
    write_text(path, json.dumps(data, indent=2) + "\n")


def _resumable_rows(manifest: Path, partial: Path, expected: dict) -> int:
    """Rows already done by an earlier run of the same job, else 0 (start over)."""
    if not (manifest.exists() and partial.exists()):
        return 0
    try:
        state = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return 0
    if any(state.get(key) != value for key, value in expected.items()):
        logger.warning("%s belongs to a different input or model; starting over", manifest)
        return 0
    return int(state.get("done", 0))


def encode_file(predictor, input_path: str | Path, output_path: str | Path, batch_size: int | None = None,
                chunk_size: int = 4096, normalize: bool | None = None, show_progress: bool = False,
                on_chunk: Advance | None = None, workers: Workers | None = None) -> Path:
    """Encode every line of ``input_path`` into ``output_path`` (.npy, float32 (N, H)), resumably.

    Args:
        predictor: a Predictor on any backend, or a MultiTaskModel.
        chunk_size: lines read, encoded and written per step (memory bound and resume granularity).
        normalize: passed to ``predictor.encode`` (None: what the model's config says).
        on_chunk: called with the number of rows done after each chunk is safely on disk (a hook for
            progress reporting, and for tests that simulate a kill by raising from it).
        workers: encode in that many spawned processes instead of this one (``predictor`` then only
            identifies the job; each worker loads its own copy and must come out identical).
    Returns:
        The path of the finished array.
    """
    source, output = Path(input_path), Path(output_path)
    if output.suffix != ".npy":
        raise MtstError(f"output {output} must end in .npy (bulk encoding writes a NumPy array)")
    if not source.is_file():
        raise MtstError(f"input file not found: {source}; pass a text file with one sentence per line")
    if chunk_size < 1:
        raise MtstError(f"chunk_size must be at least 1, got {chunk_size}")
    if workers is not None and workers.processes < 1:
        raise MtstError(f"--num-processes must be at least 1, got {workers.processes}")
    rows = count_lines(source)
    dim = int(predictor.config.encoder.hidden_size)
    stat = source.stat()
    job = {"input": str(source.resolve()), "input_bytes": stat.st_size, "input_mtime_ns": stat.st_mtime_ns,
           "rows": rows, "dim": dim, "model": model_id(predictor, normalize)}
    partial, manifest = partial_path(output), manifest_path(output)
    if not output.parent.is_dir():
        raise MtstError(f"output folder not found: {output.parent}; create it first")
    limit = embedding_limit(predictor)
    if rows == 0:  # a memory map cannot be empty
        with partial.open("wb") as handle:  # a handle: np.save would append .npy to the name
            np.save(handle, np.zeros((0, dim), dtype=np.float32))
        write_sidecar(output, [], 0, limit)
        os.replace(partial, output)
        return output
    done = _resumable_rows(manifest, partial, job)
    cut: list[int] = []  # rows [0, done) cut at the embedding limit, kept in the manifest for a resume
    if done:
        logger.info("resuming %s at row %d of %d", output, done, rows)
        cut = _resumed_cuts(manifest)
    else:
        open_memmap(partial, mode="w+", dtype=np.float32, shape=(rows, dim)).flush()  # sized; writers reopen it
        _write_manifest(manifest, {**job, "done": 0, "truncated": []})
    pending: list[int] = []  # cut rows of chunks read but not yet committed
    with progress_bar(rows, "encoding", enabled=show_progress) as advance:
        advance(done)

        def commit(done: int, count: int) -> None:  # rows [0, done) are on disk: record them, report
            cut.extend(sorted(row for row in pending if row < done))
            pending[:] = [row for row in pending if row >= done]
            _write_manifest(manifest, {**job, "done": done, "truncated": cut})
            advance(count)
            if on_chunk is not None:
                on_chunk(done)

        def flagged(chunks: Iterator[tuple[int, list[str]]]) -> Iterator[tuple[int, list[str]]]:
            for start, chunk in chunks:  # the cheap tokenizer look, as the chunk is read
                pending.extend(start + i for i, was_cut in enumerate(embedding_cuts(predictor, chunk)) if was_cut)
                yield start, chunk

        chunks = flagged(_chunks(_lines(source, skip=done), done, chunk_size))
        if workers is None or workers.processes == 1 or done == rows:
            _encode_here(predictor, partial, chunks, batch_size, normalize, commit)
        else:
            with WorkerPool(workers, partial, batch_size, normalize, job["model"]) as pool:
                pool.run(chunks, done, rows, commit)
    write_sidecar(output, cut, rows, limit)  # before the array: a finished OUT always has its sidecar
    os.replace(partial, output)
    manifest.unlink()
    return output


def _resumed_cuts(manifest: Path) -> list[int]:
    try:
        return [int(row) for row in json.loads(manifest.read_text(encoding="utf-8")).get("truncated", [])]
    except (OSError, ValueError, TypeError):
        return []


def _chunks(lines: Iterator[str], start: int, chunk_size: int) -> Iterator[tuple[int, list[str]]]:
    """(first row, lines) of each chunk from row ``start`` on."""
    while chunk := list(islice(lines, chunk_size)):
        yield start, chunk
        start += len(chunk)


def _encode_here(predictor, partial: Path, chunks: Iterator[tuple[int, list[str]]], batch_size: int | None,
                 normalize: bool | None, commit: Callable[[int, int], None]) -> None:
    array = open_memmap(partial, mode="r+")
    try:
        for start, chunk in chunks:
            array[start : start + len(chunk)] = predictor.encode(chunk, batch_size=batch_size, normalize=normalize)
            array.flush()  # rows on disk before the manifest says they are
            commit(start + len(chunk), len(chunk))
    finally:
        del array
