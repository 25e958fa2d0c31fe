"""Streaming, resumable encoding of a text file (one sentence per line) into one ``.npy`` array.

Memory stays bounded: lines are read and encoded ``chunk_size`` at a time, and each chunk is written
straight into ``OUT.partial`` (an .npy memory map sized after counting lines). After every chunk a
small ``OUT.progress.json`` records how many rows are done, so rerunning the same command after a
kill continues where it stopped. Only a complete array is renamed to ``OUT``. Row i is line i of the
input (an empty line gives the embedding of the empty string), so the two stay aligned.

With ``Workers(processes=N, ...)`` N spawned processes each load the predictor themselves (from a model
path and plain options: a loaded model never crosses a process boundary) with the CPU threads split
between them, take whole chunks from a queue and write their rows straight into the shared memory map.
The parent reads the file and owns the manifest: a chunk counts as done only when it and every chunk
before it are on disk, so a resume never skips a row whichever worker was slower.
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
import os
import queue
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from itertools import islice
from pathlib import Path

import numpy as np
from numpy.lib.format import open_memmap

from mtst.errors import MtstError, first_line
from mtst.progress import progress_bar

logger = logging.getLogger("mtst")

Advance = Callable[[int], None]


@dataclass(frozen=True)
class Workers:
    """Encode with ``processes`` worker processes. Each loads the predictor itself from these plain values
    (the same ones ``mtst encode`` takes), so they must describe the predictor passed to ``encode_file``."""

    processes: int
    threads: int | None = None  # CPU threads in all, split evenly (default: every core this process may use)
    model: str | None = None  # a saved or exported mtst model directory; None: a head-less model on `backbone`
    backend: str = "auto"
    backbone: str | None = None
    pooling: str | None = None
    normalize: bool | None = None
    max_seq_length: int | None = None

    def threads_each(self) -> int:
        total = self.threads or len(os.sched_getaffinity(0))
        return max(1, total // self.processes)

    def load(self, threads: int):
        """The predictor, in a worker process, with ``threads`` CPU threads."""
        if self.model is not None:
            from mtst.backends import load_predictor

            return load_predictor(self.model, self.backend, threads)
        import torch

        from mtst.model import MultiTaskModel

        torch.set_num_threads(threads)
        return MultiTaskModel.from_backbone(self.backbone, self.pooling, self.normalize, self.max_seq_length)


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


def _model_id(predictor, normalize: bool | None) -> str:
    """Identifies the model + backend + settings, so a resume never mixes rows from two models."""
    config = json.dumps(predictor.config.model_dump(mode="json"), sort_keys=True)
    return hashlib.sha256(f"{type(predictor).__name__}:{normalize}:{config}".encode()).hexdigest()


def _write_manifest(path: Path, data: dict) -> None:
    temp = path.with_name(path.name + ".tmp")
    temp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(temp, path)


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


def encode_file(predictor, input_path: str | Path, output_path: str | Path, batch_size: int = 64,
                chunk_size: int = 4096, normalize: bool | None = None, show_progress: bool = False,
                on_chunk: Advance | None = None, workers: Workers | None = None) -> Path:
    """Encode every line of ``input_path`` into ``output_path`` (.npy, float32 (N, H)), resumably.

    Args:
        predictor: anything with ``encode`` and ``config`` (MultiTaskModel or an exported predictor).
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
           "rows": rows, "dim": dim, "model": _model_id(predictor, normalize)}
    partial, manifest = partial_path(output), manifest_path(output)
    if not output.parent.is_dir():
        raise MtstError(f"output folder not found: {output.parent}; create it first")
    if rows == 0:  # a memory map cannot be empty
        with partial.open("wb") as handle:  # a handle: np.save would append .npy to the name
            np.save(handle, np.zeros((0, dim), dtype=np.float32))
        os.replace(partial, output)
        return output
    done = _resumable_rows(manifest, partial, job)
    if done:
        logger.info("resuming %s at row %d of %d", output, done, rows)
    else:
        open_memmap(partial, mode="w+", dtype=np.float32, shape=(rows, dim)).flush()  # sized; writers reopen it
        _write_manifest(manifest, {**job, "done": 0})
    with progress_bar(rows, "encoding", enabled=show_progress) as advance:
        advance(done)

        def commit(done: int, count: int) -> None:  # rows [0, done) are on disk: record them, report
            _write_manifest(manifest, {**job, "done": done})
            advance(count)
            if on_chunk is not None:
                on_chunk(done)

        chunks = _chunks(_lines(source, skip=done), done, chunk_size)
        if workers is None or workers.processes == 1 or done == rows:
            _encode_here(predictor, partial, chunks, batch_size, normalize, commit)
        else:
            with _WorkerPool(workers, partial, batch_size, normalize, job["model"]) as pool:
                pool.run(chunks, done, rows, commit)
    os.replace(partial, output)
    manifest.unlink()
    return output


def _chunks(lines: Iterator[str], start: int, chunk_size: int) -> Iterator[tuple[int, list[str]]]:
    """(first row, lines) of each chunk from row ``start`` on."""
    while chunk := list(islice(lines, chunk_size)):
        yield start, chunk
        start += len(chunk)


def _encode_here(predictor, partial: Path, chunks: Iterator[tuple[int, list[str]]], batch_size: int,
                 normalize: bool | None, commit: Callable[[int, int], None]) -> None:
    array = open_memmap(partial, mode="r+")
    try:
        for start, chunk in chunks:
            array[start : start + len(chunk)] = predictor.encode(chunk, batch_size=batch_size, normalize=normalize)
            array.flush()  # rows on disk before the manifest says they are
            commit(start + len(chunk), len(chunk))
    finally:
        del array


# ---- worker processes ---------------------------------------------------------------------------
class _WorkerPool:
    """Spawned encoders fed whole chunks through a queue; results come back as (start row, count).

    At most two chunks per worker are in flight, so memory stays bounded and no worker waits for text.
    """

    def __init__(self, workers: Workers, partial: Path, batch_size: int, normalize: bool | None, model_id: str):
        context = multiprocessing.get_context("spawn")  # fork would copy torch's thread pools and locks
        self.tasks, self.results = context.Queue(), context.Queue()
        self.model_id = model_id
        threads = workers.threads_each()
        self.processes = [
            context.Process(target=_worker, daemon=True, name=f"mtst-encode-{rank}",
                            args=(rank, asdict(workers), threads, str(partial), batch_size, normalize,
                                  self.tasks, self.results, os.getpid()))
            for rank in range(workers.processes)
        ]

    def __enter__(self) -> _WorkerPool:
        for process in self.processes:
            process.start()
        return self

    def __exit__(self, *exc_info) -> None:
        for process in self.processes:
            if process.is_alive() and exc_info[0] is not None:
                process.terminate()  # a failure or a kill of the parent: stop at once, the manifest is right
            process.join(timeout=30)
            if process.is_alive():
                process.kill()
                process.join()

    def run(self, chunks: Iterator[tuple[int, list[str]]], done: int, rows: int,
            commit: Callable[[int, int], None]) -> None:
        """Send the chunks; commit each one once every row before its end is on disk (``done`` = rows so far)."""
        in_flight = 0
        finished: dict[int, int] = {}  # start row -> row count, for chunks that ended after a gap
        while done < rows:
            while in_flight < 2 * len(self.processes) and (chunk := next(chunks, None)) is not None:
                self.tasks.put(chunk)
                in_flight += 1
            start, count = self._receive(done)
            in_flight -= 1
            finished[start] = count
            while done in finished:
                count = finished.pop(done)
                done += count
                commit(done, count)
        for _ in self.processes:
            self.tasks.put(None)

    def _receive(self, done: int) -> tuple[int, int]:
        while True:
            try:
                message = self.results.get(timeout=0.5)
            except queue.Empty:
                stopped = next((p for p in self.processes if p.exitcode is not None), None)
                if stopped is not None:
                    raise MtstError(f"bulk-encoding process {stopped.name} stopped (exit code {stopped.exitcode}) "
                                    f"at row {done}; rerun the same command to resume") from None
                continue
            if message[0] == "error":
                raise MtstError(message[1])
            if message[0] == "ready":
                if message[2] != self.model_id:
                    raise MtstError("a worker process loaded a different model than the one given; "
                                    "pass encode_file the predictor its Workers describe")
                continue
            return message[1], message[2]


def _worker(rank: int, spec: dict, threads: int, partial: str, batch_size: int, normalize: bool | None,
            tasks, results, parent_pid: int) -> None:
    """One process: load the predictor, then encode chunks into the shared memory map until told to stop."""
    os.environ["OMP_NUM_THREADS"] = str(threads)  # before torch / onnxruntime start their thread pools
    os.environ["RAYON_NUM_THREADS"] = str(threads)  # the fast tokenizer's pool
    try:
        predictor = Workers(**spec).load(threads)
        results.put(("ready", rank, _model_id(predictor, normalize)))
        array = open_memmap(partial, mode="r+")
        while (task := _next_task(tasks, parent_pid)) is not None:
            start, texts = task
            array[start : start + len(texts)] = predictor.encode(texts, batch_size=batch_size, normalize=normalize)
            array.flush()  # on disk before the parent records the chunk as done
            results.put(("done", start, len(texts)))
    except MtstError as exc:
        results.put(("error", str(exc)))
    except Exception as exc:  # anything else: one line for the parent, which stops every worker
        results.put(("error", f"bulk-encoding process {rank} failed: {type(exc).__name__}: {first_line(exc)}"))


def _next_task(tasks, parent_pid: int):
    """The next (start row, texts), or None when told to stop or when the parent is gone (killed)."""
    while True:
        try:
            return tasks.get(timeout=1.0)
        except queue.Empty:
            if os.getppid() != parent_pid:
                return None
