"""The micro-batcher on its own, with fake ``run_batch`` functions (no model, no HTTP)."""

from __future__ import annotations

import asyncio
import threading

import pytest

from mtst.inference.batching import MicroBatcher, QueueFullError, ShuttingDownError, _resolve, pass_size


class Recorder:
    """run_batch that upper-cases sentences and remembers every call; can be held on an Event."""

    def __init__(self, hold: threading.Event | None = None):
        self.calls: list[tuple[object, list[str]]] = []
        self.hold = hold
        self.started = threading.Event()

    def __call__(self, key, sentences):
        self.started.set()
        if self.hold is not None:
            self.hold.wait(5)
        self.calls.append((key, list(sentences)))
        return [f"{key}:{text.upper()}" for text in sentences]


def test_each_caller_gets_its_own_rows_in_order_and_batches_form():
    run = Recorder()
    batcher = MicroBatcher(run, max_batch=16, max_wait_ms=20)

    async def main():
        jobs = [[f"s{i}-{j}" for j in range(i % 3 + 1)] for i in range(30)]
        results = await asyncio.gather(*(batcher.submit("k", job) for job in jobs))
        return jobs, results

    jobs, results = asyncio.run(main())
    batcher.close()
    for job, result in zip(jobs, results, strict=True):
        assert result == [f"k:{text.upper()}" for text in job]
    sizes = [len(sentences) for _, sentences in run.calls]
    assert sum(sizes) == sum(len(job) for job in jobs)
    assert max(sizes) > 1  # really batched
    assert max(sizes) <= 16  # never more than max_batch (no single job is larger)


def test_a_batch_holds_one_key_only():
    run = Recorder()
    batcher = MicroBatcher(run, max_batch=64, max_wait_ms=20)

    async def main():
        return await asyncio.gather(*(batcher.submit(("embed", i % 2 == 0), [f"t{i}"]) for i in range(20)))

    results = asyncio.run(main())
    batcher.close()
    assert results[3] == [f"{('embed', False)}:T3"]
    for key, sentences in run.calls:
        expected_even = key[1]
        assert all((int(text[1:]) % 2 == 0) == expected_even for text in sentences)


def test_a_job_larger_than_max_batch_runs_alone():
    run = Recorder()
    batcher = MicroBatcher(run, max_batch=4, max_wait_ms=0)
    result = asyncio.run(batcher.submit("k", [str(i) for i in range(10)]))
    batcher.close()
    assert len(result) == 10 and run.calls == [("k", [str(i) for i in range(10)])]


def test_queue_full_raises_and_frees_up_after_the_batch():
    hold = threading.Event()
    run = Recorder(hold)
    batcher = MicroBatcher(run, max_batch=1, max_wait_ms=0, max_queue=2)

    async def main():
        first = asyncio.ensure_future(batcher.submit("k", ["a"]))
        await asyncio.to_thread(run.started.wait, 5)  # the worker holds "a"; the queue is empty again
        second = asyncio.ensure_future(batcher.submit("k", ["b", "c"]))
        await asyncio.sleep(0)
        assert batcher.queue_depth == 2
        with pytest.raises(QueueFullError):
            await batcher.submit("k", ["d"])
        hold.set()
        return await first, await second

    first, second = asyncio.run(main())
    batcher.close()
    assert first == ["k:A"] and second == ["k:B", "k:C"]


def test_timeout_raises_and_the_abandoned_job_is_skipped():
    hold = threading.Event()
    run = Recorder(hold)
    batcher = MicroBatcher(run, max_batch=1, max_wait_ms=0)

    async def main():
        blocker = asyncio.ensure_future(batcher.submit("k", ["busy"]))
        await asyncio.to_thread(run.started.wait, 5)
        with pytest.raises(TimeoutError):
            await batcher.submit("k", ["late"], timeout=0.05)
        hold.set()
        return await blocker

    assert asyncio.run(main()) == ["k:BUSY"]
    batcher.close()
    assert [sentences for _, sentences in run.calls] == [["busy"]]


def test_an_error_reaches_every_caller_of_the_batch_and_the_worker_survives():
    hold, started = threading.Event(), threading.Event()

    def run(key, sentences):
        if sentences == ["first"]:  # holds the worker so "boom" and "fine" queue up and share one batch
            started.set()
            hold.wait(5)
        if "boom" in sentences:
            raise ValueError("model failed")
        return sentences

    batcher = MicroBatcher(run, max_batch=8, max_wait_ms=20)

    async def main():
        first = asyncio.ensure_future(batcher.submit("k", ["first"]))
        await asyncio.to_thread(started.wait, 5)
        pair = asyncio.gather(batcher.submit("k", ["boom"]), batcher.submit("k", ["fine"]), return_exceptions=True)
        await asyncio.sleep(0)
        hold.set()
        outcome = await pair
        return await first, outcome, await batcher.submit("k", ["again"])

    first, outcome, after = asyncio.run(main())
    batcher.close()
    assert first == ["first"]
    assert all(isinstance(item, ValueError) for item in outcome)  # both were in the failing batch
    assert after == ["again"]


def test_wrong_number_of_results_is_an_error():
    batcher = MicroBatcher(lambda key, sentences: sentences[:-1], max_wait_ms=0)
    with pytest.raises(RuntimeError, match="returned 1 results for 2 sentences"):
        asyncio.run(batcher.submit("k", ["a", "b"]))
    batcher.close()


def test_close_drains_queued_jobs_and_refuses_new_ones():
    hold = threading.Event()
    run = Recorder(hold)
    batcher = MicroBatcher(run, max_batch=2, max_wait_ms=0)

    async def main():
        futures = [asyncio.ensure_future(batcher.submit("k", [f"q{i}"])) for i in range(6)]
        await asyncio.to_thread(run.started.wait, 5)
        closer = asyncio.ensure_future(asyncio.to_thread(batcher.close, 5))
        while not batcher.closing:
            await asyncio.sleep(0.01)
        with pytest.raises(ShuttingDownError):
            await batcher.submit("k", ["too late"])
        hold.set()
        drained = await closer
        return drained, await asyncio.gather(*futures)

    drained, results = asyncio.run(main())
    assert drained is True
    assert results == [[f"k:Q{i}"] for i in range(6)]


def test_empty_submit_and_bad_settings():
    batcher = MicroBatcher(Recorder())
    assert asyncio.run(batcher.submit("k", [])) == []
    assert batcher.close() is True  # never started a worker
    with pytest.raises(ValueError):
        MicroBatcher(Recorder(), max_batch=0)


def test_a_lone_sequential_caller_does_not_wait_for_company():
    run = Recorder()
    batcher = MicroBatcher(run, max_batch=64, max_wait_ms=60_000)  # waiting would hit the 10 s timeout

    async def main():
        return [await batcher.submit("k", [f"s{i}"], timeout=10) for i in range(3)]

    assert asyncio.run(main()) == [["k:S0"], ["k:S1"], ["k:S2"]]
    batcher.close()
    assert [len(sentences) for _, sentences in run.calls] == [1, 1, 1]


def test_results_go_back_in_one_event_loop_call_per_batch():
    hold = threading.Event()
    run = Recorder(hold)
    batcher = MicroBatcher(run, max_batch=64, max_wait_ms=0)

    async def main():
        loop = asyncio.get_running_loop()
        calls = []
        original = loop.call_soon_threadsafe
        loop.call_soon_threadsafe = lambda *args: calls.append(args) or original(*args)  # type: ignore[method-assign]
        first = asyncio.ensure_future(batcher.submit("k", ["first"]))
        await asyncio.to_thread(run.started.wait, 5)  # the worker holds "first"; the next 8 queue up together
        rest = [asyncio.ensure_future(batcher.submit("k", [f"r{i}"])) for i in range(8)]
        await asyncio.sleep(0)
        hold.set()
        return await first, await asyncio.gather(*rest), calls

    first, rest, calls = asyncio.run(main())
    batcher.close()
    assert first == ["k:FIRST"] and rest == [[f"k:R{i}"] for i in range(8)]
    assert [len(sentences) for _, sentences in run.calls] == [1, 8]
    resolutions = [args for args in calls if args[0] is _resolve]
    assert len(resolutions) == 2  # one wake-up of the event loop per batch, not one per caller


# ---- pass_size: cutting one gathered batch into forward passes ------------------------------------
@pytest.mark.parametrize(("lengths", "max_batch", "expected"), [
    ([10] * 64, 64, 64),  # equal lengths: no padding to save, one pass is cheapest
    ([12] * 48, 48, 48),  # max_batch need not be a power of two
    ([40] * 8 + [8] * 56, 64, 8),  # 8 long + 56 short: passes of 8 keep the long ones together
    ([8] * 56 + [40] * 8, 64, 8),  # arrival order does not matter: the predictor sorts by length
    ([20, 9, 9, 9], 64, 4),  # too little padding to pay for a second pass
    ([25], 64, 1),
    ([10] * 100, 16, 16),  # never more than max_batch per pass
])
def test_pass_size_minimises_padding_plus_per_pass_cost(lengths, max_batch, expected):
    assert pass_size(lengths, max_batch, overhead_tokens=32) == expected


def test_pass_size_cost_arithmetic():
    # 8 x 40 tokens + 56 x 8 tokens, overhead 32: one pass pads everyone to 40; passes of 16 put 8 short
    # sentences with the long ones
    def cost(size):
        ordered = sorted([40] * 8 + [8] * 56, reverse=True)
        return sum(32 + len(ordered[i:i + size]) * ordered[i] for i in range(0, 64, size))

    assert (cost(64), cost(16), cost(8), cost(4)) == (2592, 1152, 1024, 1280)
    with pytest.raises(ValueError):
        pass_size([1], 0)
