"""Worker processes for bulk encoding: N spawned encoders, each loading the predictor itself from a ModelSpec
(plain values: a loaded model never crosses a process boundary), taking whole chunks from a queue and writing their
rows straight into the shared memory map. The parent (``mtst.inference.bulk``) owns the manifest."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import queue
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from numpy.lib.format import open_memmap

from mtst.errors import MtstError, first_line
from mtst.inference.backends import ModelSpec
from mtst.model.predictor import as_predictor


@dataclass(frozen=True)
class Workers:
    """Encode with ``processes`` worker processes, each loading ``spec`` itself (the options ``mtst encode``
    takes), so it must describe the predictor passed to ``encode_file``. ``spec.threads`` are the CPU threads
    in all, split evenly (default: every core this process may use)."""

    processes: int
    spec: ModelSpec = field(default_factory=ModelSpec)

    def threads_each(self) -> int:
        total = self.spec.threads or len(os.sched_getaffinity(0))
        return max(1, total // self.processes)


def model_id(predictor, normalize: bool | None) -> str:
    """Identifies the model + backend + settings, so a resume never mixes rows from two models."""
    predictor = as_predictor(predictor)  # a MultiTaskModel runs on torch
    config = json.dumps(predictor.config.model_dump(mode="json"), sort_keys=True)
    return hashlib.sha256(f"{predictor.backend}:{normalize}:{config}".encode()).hexdigest()


class WorkerPool:
    """Spawned encoders fed whole chunks through a queue; results come back as (start row, count).

    At most two chunks per worker are in flight, so memory stays bounded and no worker waits for text.
    """

    def __init__(self, workers: Workers, partial: Path, batch_size: int | None, normalize: bool | None, model_id: str):
        context = multiprocessing.get_context("spawn")  # fork would copy torch's thread pools and locks
        self.tasks, self.results = context.Queue(), context.Queue()
        self.model_id = model_id
        threads = workers.threads_each()
        self.processes = [
            context.Process(target=_worker, daemon=True, name=f"mtst-encode-{rank}",
                            args=(rank, replace(workers.spec, threads=threads), str(partial), batch_size, normalize,
                                  self.tasks, self.results, os.getpid()))
            for rank in range(workers.processes)
        ]

    def __enter__(self) -> WorkerPool:
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


def _worker(rank: int, spec: ModelSpec, partial: str, batch_size: int | None, normalize: bool | None, tasks, results,
            parent_pid: int) -> None:
    """One process: load the predictor, then encode chunks into the shared memory map until told to stop."""
    os.environ["OMP_NUM_THREADS"] = str(spec.threads)  # before torch / onnxruntime start their thread pools
    os.environ["RAYON_NUM_THREADS"] = str(spec.threads)  # the fast tokenizer's pool
    try:
        predictor = spec.load()
        results.put(("ready", rank, model_id(predictor, normalize)))
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
