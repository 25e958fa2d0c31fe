"""``mtst train --dry-run``: the plan of a run (examples per task and split, optimizer steps, the settings the
recipe chose) and its estimated time on this machine, from a short timed probe; writes nothing.

The probe trains ``PROBE_STEPS`` steps (after one untimed warm-up step) of the same config on the first
``PROBE_EXAMPLES`` examples of each split, in a temporary directory that is removed afterwards. The estimate is
steps x seconds per probe step: evaluation and the one-off pass that caches the frozen bottom's outputs come on top.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field

from mtst.data.splits import infer_labels, read_task_splits
from mtst.model.tasks import task_type
from mtst.training.config import EMULATED_BF16, TrainConfig
from mtst.training.optim import training_schedule
from mtst.training.plan import auto_branch_at, backbone_layers, training_length

PROBE_STEPS = 3
PROBE_EXAMPLES = 64


@dataclass
class Plan:
    examples: dict[str, dict[str, int]] = field(default_factory=dict)  # task -> split -> examples
    steps: int = 0
    steps_per_epoch: int = 0
    eval_every: int = 0
    seconds_per_step: float | None = None  # None: not probed

    @property
    def estimated_seconds(self) -> float | None:
        return None if self.seconds_per_step is None else self.seconds_per_step * self.steps

    def lines(self, config: TrainConfig) -> list[str]:
        opt, model = config.optimizer, config.model
        out = [f"task {name} ({task.type}): " + ", ".join(f"{split} {n}" for split, n in splits.items())
               for (name, splits), task in zip(self.examples.items(), config.tasks, strict=True)]
        out += [f"steps: {self.steps} optimizer steps of {opt.batch_size * opt.grad_accumulation} examples "
                f"({self.steps / self.steps_per_epoch:.1f} epochs), dev evaluation every {self.eval_every} steps",
                f"recipe: branch_at {_branch_at(model)}, lr {opt.lr:g} (layer decay {opt.layer_decay:g}), head lr "
                f"{opt.head_lr if opt.head_lr is not None else opt.lr:g}, warm-up {opt.warmup_ratio:g}, "
                f"{config.sampling.strategy} sampling, checkpoints {'on' if config.run.checkpoints else 'off'}"]
        distil = config.distillation
        if distil is not None:
            own = "".join(f", {task} from {path}" for task, path in distil.task_teachers.items())
            out.append(f"distillation from {distil.teacher}{own}: their outputs on the training data are computed "
                       "once at setup (one teacher pass, not in the estimate)")
        if distil is not None and distil.augment:
            out.append(f"distillation augment: {distil.augment} masked copies (p={distil.mask_probability:g}) of each "
                       "distilled sentence-task example join the batches and the teacher pass; steps and task mix as "
                       "above")
        out.append(precision_line(config))
        if self.estimated_seconds is not None:
            out.append(f"estimated time on this machine: {self.estimated_seconds / 60:.1f} min "
                       f"({self.seconds_per_step:.2f} s/step over a {PROBE_STEPS}-step probe; evaluation and the "
                       "one-off feature cache come on top)")
        out.append(f"output: {config.run.output_dir or 'a new runs/<date>-<time>-<n>'} (nothing written: dry run)")
        return out


def precision_line(config: TrainConfig) -> str:
    """What the steps run in, and where bf16 would be faster (a CPU that runs it natively) or slow (one that does
    not): the dry run is where a user decides."""
    from mtst.model.cpu_paths import cpu_has_native_bf16

    native = cpu_has_native_bf16() if config.run.on_cpu() else None
    if config.run.mixed_precision == "bf16":
        slow = f" ({EMULATED_BF16})" if native is False else ""
        return f"precision: bf16 autocast; weights, optimizer state and evaluation fp32{slow}"
    hint = (": this CPU runs bf16 natively, and --mixed-precision bf16 trained 1.5-2.1x faster on the project's two "
            "such CPUs with test scores within seed noise (docs/training-guide.md, budget on a CPU)") if native else ""
    return f"precision: fp32{hint}"


def _branch_at(model) -> int | None:
    if model.branch_at != "auto" or model.init_from:
        return model.branch_at
    layers = backbone_layers(model.backbone)
    return None if layers is None else auto_branch_at(layers)


def _probe_config(config: TrainConfig, directory: str, labels: dict[str, list[str]]) -> TrainConfig:
    """The same run on the first PROBE_EXAMPLES examples of each split, no evaluation or checkpoints; ``labels``:
    each task's labels from its whole training split (the first rows may lack some the dev rows have)."""
    raw = config.model_dump(mode="json")
    for task in raw["tasks"]:
        task["labels"] = task["labels"] or labels.get(task["name"])
        for source in task["data"].values():
            if isinstance(source, dict) and "path" in source:
                source["max_examples"] = min(source.get("max_examples") or PROBE_EXAMPLES, PROBE_EXAMPLES)
    raw["optimizer"].update(max_steps=PROBE_STEPS + 1, epochs=None)
    raw["evaluation"].update(every_steps=PROBE_STEPS + 10, sts=None)
    raw["run"].update(output_dir=directory, checkpoints=False, checkpoint_every_steps=None)
    return TrainConfig.model_validate(raw)


def probe_seconds_per_step(config: TrainConfig, labels: dict[str, list[str]]) -> float | None:
    """Seconds per optimizer step, timed over PROBE_STEPS steps on a copy; None when nothing trains."""
    from mtst.training.recipe import Recipe
    from mtst.training.run_files import LossWindow

    with tempfile.TemporaryDirectory(prefix="mtst-dry-run-") as directory:
        recipe = Recipe(_probe_config(config, directory, labels))
        try:
            recipe.setup()
            if not recipe.total_steps:
                return None
            trainable = [p for group in recipe.optimizer.param_groups for p in group["params"]]
            window = LossWindow(recipe.examples_per_step)
            recipe._optimizer_step(trainable, window)  # warm-up: first-call allocations
            start = time.perf_counter()
            for _ in range(PROBE_STEPS):
                recipe._optimizer_step(trainable, window)
            return (time.perf_counter() - start) / PROBE_STEPS
        finally:
            recipe.cleanup()


def plan_run(config: TrainConfig, probe: bool = True) -> Plan:
    """What a run of ``config`` would do, without writing anything."""
    splits = {task.name: read_task_splits(task.name, task.type, task.data) for task in config.tasks}
    labels = {task.name: infer_labels(splits[task.name]["train"], task.type) for task in config.tasks
              if task.labels is None and task_type(task.type).predicts and not config.model.init_from
              and not config.distillation}  # a distilled run takes its teacher's labels
    examples = {name: {split: len(part) for split, part in parts.items()} for name, parts in splits.items()}
    config = training_length(config, sum(parts["train"] for parts in examples.values()))
    per_step = config.optimizer.batch_size * config.optimizer.grad_accumulation
    steps_per_epoch, steps, eval_every = training_schedule(
        config, sum(parts["train"] for parts in examples.values()), per_step, True)
    return Plan(examples, steps, steps_per_epoch, eval_every,
                probe_seconds_per_step(config, labels) if probe else None)
