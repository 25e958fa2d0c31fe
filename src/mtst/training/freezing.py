"""Freezing by component name (``freezing.mode``, ``freezing.heads``) and gradual unfreezing from the top."""

from __future__ import annotations

import logging
import math

from torch import nn

from mtst.errors import MtstError
from mtst.training.config import TrainConfig

logger = logging.getLogger("mtst")

NOTHING_TO_TRAIN = "nothing to train: only evaluation makes sense"
INPUT_GROUPS = ("embeddings", "side.input")  # the bottom group that ``embeddings`` mode freezes, when there is one


def _set_trainable(module: nn.Module, trainable: bool) -> None:
    for param in module.parameters():
        param.requires_grad_(trainable)


def apply_freezing(model: nn.Module, cfg: TrainConfig) -> list[str]:
    """Freeze components by name per ``cfg.freezing``; returns the names of frozen components.

    Modes: ``encoder`` (all of it), ``embeddings``, ``bottom_k`` (embeddings + the lowest k layers),
    ``all`` (encoder and every head: nothing left to train), plus ``heads`` by task name. With a task
    branch the modes apply to the branch (its layers are "the encoder" the heads fine-tune) and the
    backbone itself always stays frozen: the embedding path never trains. The same for a side network (its input
    projection is its ``embeddings``); pair tasks, which train the embedding path, cannot train beside one.
    """
    freezing = cfg.freezing
    tuned = model.tuned_encoder()
    prefix = "encoder" if tuned is model.encoder else "side" if tuned is model.side else "branch"
    groups = tuned.layer_groups()  # bottom to top
    has_input = bool(groups) and groups[0][0] in INPUT_GROUPS
    frozen: list[str] = []
    _set_trainable(model, True)
    if tuned is not model.encoder:
        _set_trainable(model.encoder, False)
    if model.side is not None and model.objectives:
        raise MtstError(f"pair task '{next(iter(model.objectives))}' trains the embedding path, which a side network "
                        "keeps the frozen backbone's; train it on a model without model.side_reduction")
    if freezing.mode in ("encoder", "all"):
        _set_trainable(tuned, False)
        frozen.append(prefix)
    elif freezing.mode == "embeddings":
        frozen += _freeze_groups(groups, 1 if has_input else 0)
    elif freezing.mode == "bottom_k":
        n_layers = len(groups) - (1 if has_input else 0)
        if freezing.bottom_k > n_layers:
            raise MtstError(f"freezing.bottom_k={freezing.bottom_k} but the {prefix} has only {n_layers} layers")
        frozen += _freeze_groups(groups, len(groups) - n_layers + freezing.bottom_k)
    tasks = list(model.config.heads)  # pair tasks too: they have no head, so naming one freezes nothing
    unknown = [name for name in freezing.heads if name not in tasks]
    if unknown:
        raise MtstError(f"freezing.heads names unknown task '{unknown[0]}'; tasks are: {', '.join(tasks)}")
    if model.branch is not None and model.objectives and freezing.mode != "all":
        # pair tasks train the embedding path: above the branch point it is the backbone's own top layers,
        # which nothing else reads; the shared bottom stays frozen, so the task branch's input does not move
        for layer in model.encoder.layers[model.branch.at:]:
            _set_trainable(layer, True)
    head_names = list(model.heads) if freezing.mode == "all" else [n for n in freezing.heads if n in model.heads]
    for name in head_names:
        _set_trainable(model.heads[name], False)
        frozen.append(f"heads.{name}")
    if freezing.mode == "all" or not any(p.requires_grad for p in model.parameters()):
        logger.warning(NOTHING_TO_TRAIN)
    return frozen


def _freeze_groups(groups: list[tuple[str, nn.Module]], count: int) -> list[str]:
    for _, module in groups[:count]:
        _set_trainable(module, False)
    return [name if name.startswith(("branch.", "side.")) else f"encoder.{name}" for name, _ in groups[:count]]


def nothing_to_train(model: nn.Module, loss_weighting: nn.Module | None = None) -> bool:
    modules = [model] + ([loss_weighting] if loss_weighting is not None else [])
    return not any(p.requires_grad for module in modules for p in module.parameters())


class GradualUnfreezer:
    """Start with the whole encoder (or task branch) frozen; unfreeze one layer group from the top every
    N steps/epochs.

    Groups frozen by ``freezing.mode`` stay frozen. Encoder params outside every group unfreeze
    with the top layer. The optimizer must be built with ``include_frozen=True``.
    """

    def __init__(self, model: nn.Module, every: int, unit: str):
        self.every, self.unit = every, unit
        tuned = model.tuned_encoder()
        statically_frozen = {id(p) for p in tuned.parameters() if not p.requires_grad}
        groups = list(reversed(tuned.layer_groups()))  # top first
        in_groups = {id(p) for _, module in groups for p in module.parameters()}
        extra = [p for p in tuned.parameters() if id(p) not in in_groups]
        self.schedule: list[tuple[str, list[nn.Parameter]]] = []
        for index, (name, module) in enumerate(groups):
            params = [p for p in module.parameters() if id(p) not in statically_frozen]
            if index == 0:
                params += [p for p in extra if id(p) not in statically_frozen]
            if params:
                self.schedule.append((name, params))
        _set_trainable(tuned, False)
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


def set_train_modes(model: nn.Module) -> None:
    """Heads (and trainable encoder parts) in train mode; a fully frozen encoder (or branch) runs in eval mode, so it
    is a fixed feature extractor without dropout noise."""
    model.train()
    for part in (model.encoder, model.branch, model.side):
        if part is not None and not any(p.requires_grad for p in part.parameters()):
            part.eval()


def check_saved_encoder(model: nn.Module, unfreezer: GradualUnfreezer | None, keep_encoder: bool) -> None:
    """A saved model may leave its encoder out only when the backbone itself never trains (a task branch's or
    side network's unfreezing touches only that)."""
    may_change = any(p.requires_grad for p in model.encoder.parameters()) or (
        unfreezer is not None and model.tuned_encoder() is model.encoder)
    if not keep_encoder and may_change:
        raise MtstError("run.keep_encoder_in_saved_model: false needs an encoder that does not train "
                        "(freezing.mode: encoder, model.branch_at or model.side_reduction); otherwise the trained "
                        "encoder would be lost")
