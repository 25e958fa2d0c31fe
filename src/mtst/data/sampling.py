"""Single-task batches from several tasks: which task next, and which of its examples.

Batches never mix tasks (each head sees a clean batch; token and sentence tasks pad differently).
The sampler owns a seeded ``torch.Generator`` for the task choice; each task's examples form an
endless stream of shuffled epochs, reshuffled with ``seed + epoch`` when one runs out, so every
batch is full. ``state_dict()`` / ``load_state_dict()`` make a resumed run draw exactly what the
uninterrupted run would have drawn. Under data parallelism every rank builds the same sampler,
draws the same task sequence and keeps its own disjoint slice of each batch (``rank::world_size``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import torch

from mtst.errors import MtstError

STRATEGIES = ("proportional", "temperature", "round_robin", "fixed")


def task_probabilities(sizes: Mapping[str, int], strategy: str, temperature: float = 2.0,
                       weights: Mapping[str, float | None] | None = None) -> dict[str, float]:
    """p(task) for one strategy: proportional p ~ n, temperature p ~ n^(1/T), fixed p ~ weight.

    Round robin visits tasks in turn, so its long-run share is uniform.
    """
    if strategy == "proportional":
        raw = {name: float(n) for name, n in sizes.items()}
    elif strategy == "temperature":
        raw = {name: float(n) ** (1.0 / temperature) for name, n in sizes.items()}
    elif strategy == "fixed":
        weights = weights or {}
        raw = {name: float(weights.get(name) or 1.0) for name in sizes}
    elif strategy == "round_robin":
        raw = {name: 1.0 for name in sizes}
    else:
        raise MtstError(f"unknown sampling strategy '{strategy}'; choose one of {', '.join(STRATEGIES)}")
    total = sum(raw.values())
    return {name: value / total for name, value in raw.items()}


class TaskSampler:
    """Yields ``(task, indices)``; each batch holds ``batch_size`` indices of one task (this rank's slice).

    ``sizes``: the items each task's indices run over; ``mix_sizes`` (default: ``sizes``): the example counts the
    task probabilities follow, so items added for distillation (mtst.training.augment) leave the task mix as it was.
    """

    def __init__(self, sizes: Mapping[str, int], batch_size: int, strategy: str = "proportional",
                 temperature: float = 2.0, weights: Mapping[str, float | None] | None = None, seed: int = 0,
                 rank: int = 0, world_size: int = 1, mix_sizes: Mapping[str, int] | None = None):
        empty = [name for name, n in sizes.items() if n < 1]
        if empty:
            raise MtstError(f"task '{empty[0]}' has no training examples; check its data file")
        if batch_size < world_size:
            raise MtstError(f"batch_size {batch_size} is smaller than the number of processes {world_size}")
        self.tasks = list(sizes)
        self.sizes = dict(sizes)
        self.batch_size, self.strategy, self.seed = batch_size, strategy, seed
        self.rank, self.world_size = rank, world_size
        probs = task_probabilities(sizes if mix_sizes is None else mix_sizes, strategy, temperature, weights)
        self.probs = torch.tensor([probs[name] for name in self.tasks], dtype=torch.float64)
        self.generator = torch.Generator().manual_seed(seed)
        self.batches = 0  # batches drawn so far (round robin position)
        self.epoch = dict.fromkeys(self.tasks, 0)  # per task: completed passes over its data
        self.position = dict.fromkeys(self.tasks, 0)  # per task: next index into the current permutation
        self._orders: dict[str, tuple[int, list[int]]] = {}

    def _order(self, task: str) -> list[int]:
        """This task's permutation for its current epoch, seeded by (seed, task, epoch): no hidden state."""
        epoch = self.epoch[task]
        cached = self._orders.get(task)
        if cached is None or cached[0] != epoch:
            seed = self.seed * 1_000_003 + self.tasks.index(task) * 10_007 + epoch
            order = torch.randperm(self.sizes[task], generator=torch.Generator().manual_seed(seed)).tolist()
            self._orders[task] = cached = (epoch, order)
        return cached[1]

    def next_task(self) -> str:
        if self.strategy == "round_robin":
            task = self.tasks[self.batches % len(self.tasks)]
        else:
            task = self.tasks[int(torch.multinomial(self.probs, 1, generator=self.generator))]
        self.batches += 1
        return task

    def take(self, task: str) -> list[int]:
        """The next ``batch_size`` indices of ``task`` (all ranks), continuing into a fresh epoch."""
        indices: list[int] = []
        while len(indices) < self.batch_size:
            order = self._order(task)
            start = self.position[task]
            chunk = order[start : start + self.batch_size - len(indices)]
            indices += chunk
            self.position[task] = start + len(chunk)
            if self.position[task] >= len(order):
                self.epoch[task] += 1
                self.position[task] = 0
        return indices

    def next_batch(self) -> tuple[str, list[int]]:
        task = self.next_task()
        return task, self.take(task)[self.rank :: self.world_size]

    def __iter__(self) -> Iterator[tuple[str, list[int]]]:
        while True:
            yield self.next_batch()

    # ---- resume -------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """JSON-safe state: the generator state as a list of byte values, counters per task."""
        return {
            "generator": self.generator.get_state().tolist(),
            "batches": self.batches,
            "epoch": dict(self.epoch),
            "position": dict(self.position),
            "tasks": list(self.tasks),
        }

    def load_state_dict(self, state: Mapping) -> None:
        if list(state["tasks"]) != self.tasks:
            raise MtstError(f"checkpoint sampler has tasks {state['tasks']}, the config has {self.tasks}")
        self.generator.set_state(torch.tensor(state["generator"], dtype=torch.uint8))
        self.batches = int(state["batches"])
        self.epoch = {name: int(value) for name, value in state["epoch"].items()}
        self.position = {name: int(value) for name, value in state["position"].items()}
