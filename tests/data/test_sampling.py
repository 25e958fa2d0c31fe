"""TaskSampler: strategies, single-task batches, epochs, resume and rank slicing."""

from __future__ import annotations

from collections import Counter

import pytest

from mtst.data.sampling import TaskSampler, task_probabilities
from mtst.errors import MtstError

SIZES = {"a": 900, "b": 100, "c": 400}


@pytest.mark.parametrize(("strategy", "expected"), [
    ("proportional", {"a": 0.6428571, "b": 0.0714286, "c": 0.2857143}),
    ("temperature", {"a": 30 / 60, "b": 10 / 60, "c": 20 / 60}),  # T=2: sqrt(n)
    ("fixed", {"a": 0.25, "b": 0.5, "c": 0.25}),
    ("round_robin", {"a": 1 / 3, "b": 1 / 3, "c": 1 / 3}),
])
def test_sampled_frequencies_match_strategy(strategy, expected):
    weights = {"a": 1.0, "b": 2.0, "c": None}
    assert task_probabilities(SIZES, strategy, 2.0, weights) == pytest.approx(expected, abs=1e-6)
    sampler = TaskSampler(SIZES, batch_size=4, strategy=strategy, temperature=2.0, weights=weights, seed=1)
    draws = 6000
    counts = Counter(sampler.next_task() for _ in range(draws))
    for task, p in expected.items():
        assert counts[task] / draws == pytest.approx(p, abs=0.02), task


def test_round_robin_order():
    sampler = TaskSampler(SIZES, batch_size=2, strategy="round_robin")
    assert [sampler.next_batch()[0] for _ in range(7)] == ["a", "b", "c", "a", "b", "c", "a"]


def test_batches_are_single_task_and_cover_each_epoch_once():
    sampler = TaskSampler({"x": 10, "y": 7}, batch_size=3, strategy="round_robin", seed=3)
    seen: dict[str, list[int]] = {"x": [], "y": []}
    for _ in range(8):
        task, indices = sampler.next_batch()
        assert len(indices) == 3 and all(0 <= i < (10 if task == "x" else 7) for i in indices)
        seen[task] += indices
    assert sorted(seen["x"][:10]) == list(range(10))  # first epoch of x: a permutation
    assert sorted(seen["y"][:7]) == list(range(7))
    assert sampler.epoch["x"] == 1 and sampler.epoch["y"] == 1
    assert seen["x"][:10] != seen["x"][10:12] + seen["x"][:8]  # sanity: reshuffled stream continues


def test_epochs_reshuffle_with_seed_and_epoch():
    sampler = TaskSampler({"x": 50}, batch_size=50, seed=0)
    first, second = sampler.next_batch()[1], sampler.next_batch()[1]
    assert sorted(first) == sorted(second) == list(range(50))
    assert first != second
    again = TaskSampler({"x": 50}, batch_size=50, seed=0)
    assert again.next_batch()[1] == first  # same seed -> same order


def test_state_round_trip_continues_exactly():
    sampler = TaskSampler(SIZES, batch_size=8, strategy="temperature", seed=5)
    for _ in range(37):
        sampler.next_batch()
    state = sampler.state_dict()
    expected = [sampler.next_batch() for _ in range(50)]
    resumed = TaskSampler(SIZES, batch_size=8, strategy="temperature", seed=5)
    resumed.load_state_dict(state)
    assert [resumed.next_batch() for _ in range(50)] == expected
    import json

    json.dumps(state)


def test_ranks_share_tasks_and_get_disjoint_slices():
    ranks = [TaskSampler(SIZES, batch_size=6, seed=9, rank=r, world_size=2) for r in range(2)]
    full = TaskSampler(SIZES, batch_size=6, seed=9)
    for _ in range(30):
        (t0, i0), (t1, i1), (t, whole) = ranks[0].next_batch(), ranks[1].next_batch(), full.next_batch()
        assert t0 == t1 == t
        assert not set(i0) & set(i1) and sorted(i0 + i1) == sorted(whole)


def test_bad_inputs():
    with pytest.raises(MtstError, match="no training examples"):
        TaskSampler({"a": 0}, batch_size=2)
    with pytest.raises(MtstError, match="smaller than the number of processes"):
        TaskSampler({"a": 5}, batch_size=1, world_size=2)
    with pytest.raises(MtstError, match="tasks"):
        TaskSampler({"a": 5}, batch_size=2).load_state_dict(TaskSampler({"b": 5}, batch_size=2).state_dict())


def test_mix_sizes_set_the_task_mix_while_indices_run_over_every_item():
    # distillation's masked copies (mtst.training.augment): "a" holds 3x its examples, its share stays as it was
    plain = TaskSampler({"a": 9, "b": 4}, batch_size=3, strategy="temperature", seed=2)
    mixed = TaskSampler({"a": 27, "b": 4}, batch_size=3, strategy="temperature", seed=2, mix_sizes={"a": 9, "b": 4})
    assert mixed.probs.tolist() == pytest.approx(plain.probs.tolist())
    assert [mixed.next_task() for _ in range(50)] == [plain.next_task() for _ in range(50)]
    assert sorted(i for _ in range(9) for i in mixed.take("a")) == list(range(27))  # one epoch: copies included
