"""Dynamic micro-batching: many small requests, one model forward pass.

Requests from the event loop are queued as jobs; one worker thread takes the oldest job, gathers
more queued jobs *with the same key* (e.g. ``("embed", True)`` or ``("predict", ("ner",))``) until
``max_batch`` sentences are collected or ``max_wait_ms`` has passed, runs ``run_batch(key, sentences)``
once, and hands each caller back its own rows, in order.

Why one key per batch: an embedding request and a predict request for different tasks need different
outputs (and ``normalize=False`` cannot be recovered from a normalised embedding), so mixing them would
mean computing the union for everyone. Keys keep each forward pass exactly what its callers asked for;
jobs with other keys stay queued and are served oldest first.

Why a thread: the model call blocks for milliseconds; the event loop must keep accepting and parsing
requests meanwhile. Results go back through ``loop.call_soon_threadsafe`` onto asyncio futures, one
call per batch and event loop (each call writes to the loop's wake-up pipe).

``pass_size`` is the other half of batching: how to cut one gathered batch of mixed-length sentences
into forward passes (see its docstring).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

RunBatch = Callable[[Hashable, list[str]], Sequence[Any]]  # (key, sentences) -> one result per sentence

# What one forward pass costs besides its padded tokens, in tokens. A fit of OpenVINO bf16 CPU time for
# MiniLM-L6 at batch 1-64 x 8-48 tokens gave 14-46. On gathered STS-B groups (benchmarks/load/pass_sizes.py,
# CPU ms per sentence, busy 2-core machine, two runs) 64 split 64-sentence groups well (1.74-1.75 vs 2.06-2.09
# in one pass; 32: 1.79-1.81) and left 16-sentence groups about as they were (2.07 vs 2.04-2.10), where 32
# split too eagerly (2.14-2.21); 128 was within 2 % of 64 everywhere.
PASS_OVERHEAD_TOKENS = 64


def pass_size(lengths: Sequence[int], max_batch: int, overhead_tokens: int = PASS_OVERHEAD_TOKENS) -> int:
    """The forward-pass size for one gathered batch with these token ``lengths``.

    The predictor sorts a call's sentences by length and cuts them into passes of ``batch_size``, each
    padded to its longest member. One big pass pads short sentences to the longest (gathered requests
    come in arrival order: on STS-B a pass of 64 carries 1.8x the real tokens, sorted 1.04x); many small
    passes pay the per-pass cost more often. This returns the size in 1, 2, 4, ..., ``max_batch`` whose
    sorted passes cost the fewest ``padded tokens + overhead_tokens x passes``.
    """
    if max_batch < 1:
        raise ValueError(f"max_batch must be >= 1, got {max_batch}")
    ordered = sorted(lengths, reverse=True)
    sizes = sorted({min(1 << k, max_batch) for k in range(max_batch.bit_length() + 1)})
    best_size, best_cost = max_batch, None
    for size in sizes:
        # ordered[i] is the longest sentence of the pass starting at i: (sentences in it) x that length
        cost = sum(overhead_tokens + min(size, len(ordered) - i) * ordered[i] for i in range(0, len(ordered), size))
        if best_cost is None or cost < best_cost:
            best_size, best_cost = size, cost
    return best_size


class QueueFullError(Exception):
    """The queue holds ``max_queue`` sentences already; the caller should retry later (HTTP 429)."""


class ShuttingDownError(Exception):
    """The batcher is closing and accepts no new work (HTTP 503)."""


@dataclass
class _Job:
    key: Hashable
    sentences: list[str]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future
    abandoned: bool = False  # set by the caller on timeout; the worker then skips the job
    enqueued: float = field(default_factory=time.perf_counter)


def _resolve(outcomes: list[tuple[asyncio.Future, Any, BaseException | None]]) -> None:
    # Runs on the event loop thread; a caller may have timed out and cancelled already.
    for future, result, error in outcomes:
        if future.done():
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)


class MicroBatcher:
    """A bounded queue plus one worker thread that runs ``run_batch`` on gathered jobs.

    Args:
        run_batch: ``(key, sentences) -> results`` with one result per sentence, in order.
        max_batch: most sentences per ``run_batch`` call (a single larger job still runs, alone).
        max_wait_ms: how long the worker waits for more jobs after the first one arrives (only when the
            previous batch or the queue shows concurrent callers).
        max_queue: most sentences waiting at once; beyond it ``submit`` raises QueueFullError.
        on_batch: optional callback ``(n_sentences, n_jobs, seconds)`` after every batch (metrics).
    """

    def __init__(self, run_batch: RunBatch, max_batch: int = 64, max_wait_ms: float = 5.0, max_queue: int = 1024,
                 on_batch: Callable[[int, int, float], None] | None = None):
        if max_batch < 1 or max_queue < 1 or max_wait_ms < 0:
            raise ValueError("max_batch and max_queue must be >= 1 and max_wait_ms >= 0")
        self.run_batch = run_batch
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000.0
        self.max_queue = max_queue
        self.on_batch = on_batch
        self._jobs: deque[_Job] = deque()
        self._pending = 0  # sentences queued, not yet taken by the worker
        self._cond = threading.Condition()
        self._closing = False
        self._last_jobs = 0  # jobs in the previous batch: > 1 means callers are concurrent
        self._thread: threading.Thread | None = None

    # ---- caller side (event loop) ---------------------------------------------------------
    @property
    def queue_depth(self) -> int:
        """Sentences waiting for the worker (not counting the batch being computed)."""
        return self._pending

    @property
    def closing(self) -> bool:
        """True once ``close`` was called: new work is refused, queued work still runs."""
        return self._closing

    async def submit(self, key: Hashable, sentences: Sequence[str], timeout: float | None = None) -> list[Any]:
        """Queue ``sentences`` under ``key`` and wait for their results (one per sentence, in order).

        Raises QueueFullError, ShuttingDownError, TimeoutError (after ``timeout`` seconds), or whatever
        ``run_batch`` raised for the batch this job was part of.
        """
        sentences = list(sentences)
        if not sentences:
            return []
        loop = asyncio.get_running_loop()
        job = _Job(key, sentences, loop, loop.create_future())
        with self._cond:
            if self._closing:
                raise ShuttingDownError("the server is shutting down; retry on another instance")
            if self._pending + len(sentences) > self.max_queue:
                raise QueueFullError(f"queue full ({self._pending} of {self.max_queue} sentences waiting)")
            self._start_locked()
            self._jobs.append(job)
            self._pending += len(sentences)
            # Wake the worker only when it has something new to decide: the first job to start a batch,
            # or enough sentences to fill one. Waking it on every job costs a GIL hand-off per request.
            if len(self._jobs) == 1 or self._pending >= self.max_batch:
                self._cond.notify()
        try:
            return await asyncio.wait_for(job.future, timeout)
        except (TimeoutError, asyncio.CancelledError):
            job.abandoned = True  # a worker that has not taken it yet drops it
            raise

    def close(self, timeout: float | None = None) -> bool:
        """Stop accepting work, finish every queued job, stop the worker. True when it drained in time."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
            return not self._thread.is_alive()
        return True

    # ---- worker side (its own thread) -------------------------------------------------------
    def _start_locked(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="mtst-batcher", daemon=True)
            self._thread.start()

    def _work(self) -> None:
        while True:
            batch = self._gather()
            if batch is None:
                return
            self._run(batch)

    def _gather(self) -> list[_Job] | None:
        """Block for the oldest job, then collect same-key jobs until full or ``max_wait`` passes.

        The wait only happens when callers are concurrent (the last batch, or the queue now, holds more
        than one job): a lone sequential client gains nothing from waiting and would pay it on every call.
        """
        with self._cond:
            while not self._jobs:
                if self._closing:
                    return None
                self._cond.wait()
            key = self._jobs[0].key
            concurrent = self._last_jobs > 1 or len(self._jobs) > 1
            deadline = time.perf_counter() + (self.max_wait if concurrent else 0.0)
            while not self._closing and self._count_locked(key) < self.max_batch:
                left = deadline - time.perf_counter()
                if left <= 0:
                    break
                self._cond.wait(left)
            return self._take_locked(key)

    def _count_locked(self, key: Hashable) -> int:
        return sum(len(job.sentences) for job in self._jobs if job.key == key)

    def _take_locked(self, key: Hashable) -> list[_Job]:
        # Same-key jobs in arrival order until the next one would overflow max_batch (the first job
        # is always taken, even when it alone is larger); every other job keeps its place.
        taken: list[_Job] = []
        kept: deque[_Job] = deque()
        size = 0
        full = False
        for job in self._jobs:
            if job.key == key and not full and (not taken or size + len(job.sentences) <= self.max_batch):
                taken.append(job)
                size += len(job.sentences)
            else:
                full = full or job.key == key
                kept.append(job)
        self._jobs = kept
        self._pending -= size
        return taken

    def _run(self, jobs: list[_Job]) -> None:
        self._last_jobs = len(jobs)
        live = [job for job in jobs if not job.abandoned]
        sentences = [text for job in live for text in job.sentences]
        start = time.perf_counter()
        results: Sequence[Any] = []
        error: BaseException | None = None
        if sentences:
            try:
                results = self.run_batch(live[0].key, sentences)
                if len(results) != len(sentences):
                    raise RuntimeError(f"run_batch returned {len(results)} results for {len(sentences)} sentences")
            except Exception as exc:  # handed to every caller of this batch, the worker keeps going
                error = exc
        by_loop: dict[asyncio.AbstractEventLoop, list] = {}
        offset = 0
        for job in live:
            rows = None if error else list(results[offset : offset + len(job.sentences)])
            offset += len(job.sentences)
            by_loop.setdefault(job.loop, []).append((job.future, rows, error))
        for loop, outcomes in by_loop.items():
            try:
                loop.call_soon_threadsafe(_resolve, outcomes)
            except RuntimeError:  # that event loop is closed: nobody there is waiting any more
                pass
        if sentences and self.on_batch is not None:
            self.on_batch(len(sentences), len(live), time.perf_counter() - start)
