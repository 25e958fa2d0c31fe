"""Optimizer grouping, freezing by component name, gradual unfreezing and LR schedules.

``param_groups`` is the one place that decides which parameter gets which learning rate and
weight decay: layer-wise decay ``lr * layer_decay ** depth_from_top`` over the encoder's layer
groups (top layer depth 0, embeddings deepest), ``head_lr`` for heads, weight decay only for
matrices (``p.dim() >= 2``; biases and LayerNorm never decay), a separate group for learned
loss-weighting parameters.
"""

from __future__ import annotations

import logging
import math

import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR

from mtst.errors import MtstError
from mtst.train_config import TrainConfig

logger = logging.getLogger("mtst")

NOTHING_TO_TRAIN = "nothing to train: only evaluation makes sense"


# ---- parameter groups -------------------------------------------------------------------
def encoder_depths(model: nn.Module) -> dict[str, int]:
    """Encoder parameter name -> depth from the top (top layer 0 ... embeddings = number of layers).

    Encoder parameters outside every layer group (e.g. BERT's unused pooler) count as the top.
    """
    groups = model.encoder.layer_groups()  # bottom (embeddings) to top
    by_id = {}
    for index, (_, module) in enumerate(groups):
        for param in module.parameters():
            by_id[id(param)] = len(groups) - 1 - index
    return {name: by_id.get(id(param), 0) for name, param in model.encoder.named_parameters()}


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
        like ``encoder.depth2.decay``, ``heads.no_decay`` or ``loss_weighting``.
    """
    opt = cfg.optimizer
    head_lr = opt.head_lr if opt.head_lr is not None else opt.lr
    buckets: dict[str, dict] = {}

    def add(name: str, param: nn.Parameter, lr: float, weight_decay: float) -> None:
        if not (param.requires_grad or include_frozen):
            return
        group = buckets.setdefault(name, {"name": name, "params": [], "lr": lr, "weight_decay": weight_decay})
        group["params"].append(param)

    depths = encoder_depths(model)
    for name, param in model.encoder.named_parameters():
        depth = depths[name]
        lr = opt.lr * opt.layer_decay**depth
        if param.dim() >= 2:
            add(f"encoder.depth{depth}.decay", param, lr, opt.weight_decay)
        else:
            add(f"encoder.depth{depth}.no_decay", param, lr, 0.0)
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


# ---- freezing ---------------------------------------------------------------------------
def _set_trainable(module: nn.Module, trainable: bool) -> None:
    for param in module.parameters():
        param.requires_grad_(trainable)


def apply_freezing(model: nn.Module, cfg: TrainConfig) -> list[str]:
    """Freeze components by name per ``cfg.freezing``; returns the names of frozen components.

    Modes: ``encoder`` (all of it), ``embeddings``, ``bottom_k`` (embeddings + the lowest k layers),
    ``all`` (encoder and every head: nothing left to train), plus ``heads`` by task name.
    """
    freezing = cfg.freezing
    groups = model.encoder.layer_groups()  # bottom to top
    frozen: list[str] = []
    _set_trainable(model, True)
    if freezing.mode in ("encoder", "all"):
        _set_trainable(model.encoder, False)
        frozen.append("encoder")
    elif freezing.mode == "embeddings":
        frozen += _freeze_groups(groups, 1 if groups and groups[0][0] == "embeddings" else 0)
    elif freezing.mode == "bottom_k":
        n_layers = len(groups) - (1 if groups and groups[0][0] == "embeddings" else 0)
        if freezing.bottom_k > n_layers:
            raise MtstError(f"freezing.bottom_k={freezing.bottom_k} but the encoder has only {n_layers} layers")
        frozen += _freeze_groups(groups, len(groups) - n_layers + freezing.bottom_k)
    unknown = [name for name in freezing.heads if name not in model.heads]
    if unknown:
        raise MtstError(f"freezing.heads names unknown task '{unknown[0]}'; tasks are: {', '.join(model.heads)}")
    head_names = list(model.heads) if freezing.mode == "all" else list(freezing.heads)
    for name in head_names:
        _set_trainable(model.heads[name], False)
        frozen.append(f"heads.{name}")
    if freezing.mode == "all" or not any(p.requires_grad for p in model.parameters()):
        logger.warning(NOTHING_TO_TRAIN)
    return frozen


def _freeze_groups(groups: list[tuple[str, nn.Module]], count: int) -> list[str]:
    for _, module in groups[:count]:
        _set_trainable(module, False)
    return [f"encoder.{name}" for name, _ in groups[:count]]


def nothing_to_train(model: nn.Module, loss_weighting: nn.Module | None = None) -> bool:
    modules = [model] + ([loss_weighting] if loss_weighting is not None else [])
    return not any(p.requires_grad for module in modules for p in module.parameters())


class GradualUnfreezer:
    """Start with the whole encoder frozen; unfreeze one layer group from the top every N steps/epochs.

    Groups frozen by ``freezing.mode`` stay frozen. Encoder params outside every group unfreeze
    with the top layer. The optimizer must be built with ``include_frozen=True``.
    """

    def __init__(self, model: nn.Module, every: int, unit: str):
        self.every, self.unit = every, unit
        statically_frozen = {id(p) for p in model.encoder.parameters() if not p.requires_grad}
        groups = list(reversed(model.encoder.layer_groups()))  # top first
        in_groups = {id(p) for _, module in groups for p in module.parameters()}
        extra = [p for p in model.encoder.parameters() if id(p) not in in_groups]
        self.schedule: list[tuple[str, list[nn.Parameter]]] = []
        for index, (name, module) in enumerate(groups):
            params = [p for p in module.parameters() if id(p) not in statically_frozen]
            if index == 0:
                params += [p for p in extra if id(p) not in statically_frozen]
            if params:
                self.schedule.append((name, params))
        _set_trainable(model.encoder, False)
        self.unfrozen = 0

    def step(self, step: int, epoch: float) -> bool:
        """Unfreeze the groups due by ``step`` (optimizer steps done) or ``epoch``; True if any changed."""
        progress = step if self.unit == "steps" else epoch
        due = min(len(self.schedule), int(math.floor(progress / self.every)))
        changed = due > self.unfrozen
        while self.unfrozen < due:
            name, params = self.schedule[self.unfrozen]
            for param in params:
                param.requires_grad_(True)
            logger.info("gradual unfreezing: %s now trains", name)
            self.unfrozen += 1
        return changed

    @property
    def unfrozen_names(self) -> list[str]:
        return [name for name, _ in self.schedule[: self.unfrozen]]


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
