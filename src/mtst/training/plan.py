"""What a config leaves open, decided before a run starts: the branch point, the training length, the run
directory, when to checkpoint.

The rules (docs/training.md, "The recipe"):

- ``model.branch_at: auto`` -> ``round(L / 3)`` for a backbone of ``L >= 3`` layers: the guide measured k = 2 of the
  6-layer default (the bottom third shared and frozen, the heads fine-tune a copy of the top two thirds: CoNLL 89.29,
  embeddings exact) and k = 4 lost 0.9 F1, so the share, not the count, is what carries to other depths (12 layers:
  4). Below 3 layers no branch: the copy would be one layer over a one-layer bottom, which nothing measured.
- No ``optimizer.epochs`` / ``max_steps`` -> 3 epochs over the sampled mixture, kept within 200..8,000 optimizer
  steps: the guide's full-data single-task runs used 2.2 (SST-2, 4,550 steps) and 4.7 epochs (CoNLL, 2,080), its
  three-task recipe 8,000 steps; 200 steps is its short budget, the floor for small data sets.
- No ``run.output_dir`` -> ``runs/<YYYYmmdd-HHMMSS>-<n>``, a directory that does not exist yet.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

from mtst.training.config import TrainConfig

DEFAULT_EPOCHS = 3
MIN_STEPS, MAX_STEPS = 200, 8000
RUNS_DIR = Path("runs")


def auto_branch_at(layers: int) -> int | None:
    """The branch point for a backbone of ``layers`` layers (module docstring)."""
    return round(layers / 3) if layers >= 3 else None


def backbone_layers(backbone: str | Path | None) -> int | None:
    """The layer count in a backbone's config.json (None when it does not say)."""
    from mtst.model.encoder import default_backbone_path

    directory = default_backbone_path() if backbone in (None, "") else Path(backbone)
    try:
        config = json.loads((directory / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # load_backbone reports the missing directory with its own message
    for key in ("num_hidden_layers", "n_layers", "num_layers"):
        if isinstance(config.get(key), int):
            return config[key]
    return None


def training_length(config: TrainConfig, examples: int) -> TrainConfig:
    """``config`` with ``optimizer.max_steps`` set when neither it nor ``epochs`` is (module docstring)."""
    opt = config.optimizer
    if opt.epochs is not None or opt.max_steps is not None:
        return config
    per_step = opt.batch_size * opt.grad_accumulation
    steps = min(MAX_STEPS, max(MIN_STEPS, DEFAULT_EPOCHS * math.ceil(examples / per_step)))
    evaluation = config.evaluation
    if evaluation.every_steps is None:  # a dev score (and a checkpoint) about once an epoch, at most 10 in all
        evaluation = evaluation.model_copy(update={"every_steps": max(1, math.ceil(steps / min(10, DEFAULT_EPOCHS)))})
    return config.model_copy(update={"optimizer": opt.model_copy(update={"max_steps": steps}),
                                     "evaluation": evaluation})


def checkpoint_every(config: TrainConfig, eval_every: int) -> int | None:
    """Optimizer steps between checkpoints: ``checkpoint_every_steps``, else every evaluation; None: none."""
    if not config.run.checkpoints:
        return None
    return config.run.checkpoint_every_steps or eval_every


def new_run_dir(parent: Path = RUNS_DIR) -> Path:
    """``parent/<date>-<time>-<n>``: the first n for which the directory does not exist yet."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    n = 1
    while (parent / f"{stamp}-{n}").exists():
        n += 1
    return parent / f"{stamp}-{n}"


def with_run_dir(config: TrainConfig) -> TrainConfig:
    """``config`` with ``run.output_dir`` decided (a fresh directory when unset)."""
    if config.run.output_dir is not None:
        return config
    return config.model_copy(update={"run": config.run.model_copy(update={"output_dir": new_run_dir()})})
