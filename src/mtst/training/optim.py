"""Optimizer grouping and LR schedules (freezing lives in mtst.training.freezing).

``param_groups`` is the one place that decides which parameter gets which learning rate and
weight decay: layer-wise decay ``lr * layer_decay ** depth_from_top`` over the encoder's (or a task branch's) layer
groups (top layer depth 0, embeddings deepest), ``head_lr`` for heads and for a side network (mtst.model.side: it
starts from random weights like a head, so there are no pretrained features for a small lr or layer decay to
keep; LST trains its side network at a head-sized lr too), weight decay only for matrices (``p.dim() >= 2``;
biases, gates and LayerNorm never decay), a separate group for learned loss-weighting parameters.
"""

from __future__ import annotations

import logging
import math

import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR

from mtst.errors import MtstError
from mtst.training.config import TrainConfig
from mtst.training.freezing import NOTHING_TO_TRAIN

logger = logging.getLogger("mtst")



# ---- parameter groups -------------------------------------------------------------------
def encoder_depths(module: nn.Module) -> dict[str, int]:
    """Parameter name -> depth from the top (top layer 0 ... embeddings = number of layers) for an encoder or a
    task branch (anything with ``layer_groups``). Parameters outside every group (BERT's unused pooler) count as
    the top."""
    groups = module.layer_groups()  # bottom (embeddings) to top
    by_id = {}
    for index, (_, group) in enumerate(groups):
        for param in group.parameters():
            by_id[id(param)] = len(groups) - 1 - index
    return {name: by_id.get(id(param), 0) for name, param in module.named_parameters()}


def param_groups(model: nn.Module, cfg: TrainConfig, loss_weighting: nn.Module | None = None,
                 include_frozen: bool = False) -> list[dict]:
    """AdamW parameter groups for ``model`` (a MultiTaskModel) under ``cfg.optimizer``.

    Args:
        loss_weighting: learned loss weights (uncertainty weighting), given their own group
            at ``head_lr`` and without weight decay.
        include_frozen: keep params with ``requires_grad=False`` (gradual unfreezing: the optimizer
            must already hold them; AdamW skips params whose grad is None, so they stay untouched).
    Returns:
        Non-empty groups, each with ``params``, ``lr``, ``weight_decay`` and a readable ``name``
        like ``encoder.depth2.decay`` (``branch.depth0.decay`` for a task branch's layers), ``side.decay``,
        ``heads.no_decay`` or ``loss_weighting``.
    """
    opt = cfg.optimizer
    head_lr = opt.head_lr if opt.head_lr is not None else opt.lr
    buckets: dict[str, dict] = {}

    def add(name: str, param: nn.Parameter, lr: float, weight_decay: float, may_unfreeze: bool = True) -> None:
        if not (param.requires_grad or (include_frozen and may_unfreeze)):
            return
        group = buckets.setdefault(name, {"name": name, "params": [], "lr": lr, "weight_decay": weight_decay})
        group["params"].append(param)

    # the branch (heads fine-tune it) and the encoder (trainable without a branch, or its top under pair tasks)
    for prefix, module in (("branch", model.branch), ("encoder", model.encoder)):
        if module is None:
            continue
        depths = encoder_depths(module)
        unfreezes = module is model.tuned_encoder()  # gradual unfreezing only ever touches this one
        for name, param in module.named_parameters():
            depth = depths[name]
            lr = opt.lr * opt.layer_decay**depth
            if param.dim() >= 2:
                add(f"{prefix}.depth{depth}.decay", param, lr, opt.weight_decay, unfreezes)
            else:
                add(f"{prefix}.depth{depth}.no_decay", param, lr, 0.0, unfreezes)
    for param in model.side.parameters() if model.side is not None else []:  # at head_lr, all depths alike
        add("side.decay" if param.dim() >= 2 else "side.no_decay", param, head_lr,
            opt.weight_decay if param.dim() >= 2 else 0.0)
    for param in model.heads.parameters():
        if param.dim() >= 2:
            add("heads.decay", param, head_lr, opt.weight_decay)
        else:
            add("heads.no_decay", param, head_lr, 0.0)
    if loss_weighting is not None:
        for param in loss_weighting.parameters():
            add("loss_weighting", param, head_lr, 0.0)
    return [group for group in buckets.values() if group["params"]]


def build_optimizer(groups: list[dict], cfg: TrainConfig) -> torch.optim.AdamW:
    if not groups:
        raise MtstError(f"{NOTHING_TO_TRAIN}; change freezing.mode or freezing.heads")
    opt = cfg.optimizer
    return torch.optim.AdamW(groups, lr=opt.lr, betas=opt.betas, eps=opt.eps, weight_decay=opt.weight_decay)


# ---- schedules --------------------------------------------------------------------------
def lr_factor(step: int, total_steps: int, warmup_steps: int, schedule: str) -> float:
    """The LR multiplier after ``step`` optimizer steps: linear warm-up, then linear/cosine decay or constant."""
    if step < warmup_steps:
        return (step + 1) / (warmup_steps + 1)
    if schedule == "constant":
        return 1.0
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    if schedule == "linear":
        return 1.0 - progress
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig, total_steps: int) -> LambdaLR:
    """A LambdaLR over a plain closure, so its state_dict holds only numbers (JSON-safe)."""
    warmup = int(cfg.optimizer.warmup_ratio * total_steps)
    schedule = cfg.optimizer.schedule

    def factor(step: int) -> float:
        return lr_factor(step, total_steps, warmup, schedule)

    return LambdaLR(optimizer, factor)


def training_schedule(cfg: TrainConfig, examples: int, examples_per_step: int, trains: bool) -> tuple[int, int, int]:
    """(steps per epoch, total optimizer steps, evaluate every N steps); no steps when nothing trains."""
    opt = cfg.optimizer
    steps_per_epoch = max(1, math.ceil(examples / examples_per_step))
    total_steps = opt.max_steps or max(1, math.ceil(opt.epochs * steps_per_epoch))
    eval_every = cfg.evaluation.every_steps or (steps_per_epoch if opt.max_steps is None else total_steps)
    return steps_per_epoch, total_steps if trains else 0, eval_every
