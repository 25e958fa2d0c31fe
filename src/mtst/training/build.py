"""What a training run is built from: seeds, the mixed-precision check, and the starting model."""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence

import numpy as np
import torch

from mtst.data.readers import Examples
from mtst.data.splits import check_labels, infer_labels
from mtst.data.task_encoding import EncodedTask, encode_task
from mtst.errors import MtstError
from mtst.model.config import HeadConfig
from mtst.model.cpu_paths import cpu_has_native_bf16
from mtst.model.encoder import resolve_model_path
from mtst.model.multitask import MultiTaskModel
from mtst.model.storage import read_config
from mtst.model.tasks import task_type
from mtst.training.config import EMULATED_BF16, DistillationSection, TrainConfig
from mtst.training.freezing import apply_freezing
from mtst.training.plan import auto_branch_at, backbone_layers

BRANCH_SHAPE = ("branch_layers", "branch_intermediate_size", "branch_attention_heads")  # ModelSection's branch shape

logger = logging.getLogger("mtst")

def check_mixed_precision(mode: str, device: torch.device) -> None:
    """bf16 autocast needs a GPU that has bf16 (Ampere or newer); on a CPU without native bf16 it runs, slowly: warn."""
    if mode == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise MtstError("run.mixed_precision: bf16 is not supported by this GPU; set it to \"no\"")
    if mode == "bf16" and device.type == "cpu" and cpu_has_native_bf16() is False:
        logger.warning("run.mixed_precision: bf16 with %s; set it to \"no\"", EMULATED_BF16)


def _teacher_heads(distillation: DistillationSection) -> dict[str, HeadConfig]:
    """Task -> the head config of the model that teaches it (``DistillationSection.teacher_of``)."""
    heads = {path: read_config(resolve_model_path(path)).heads
             for path in {distillation.teacher, *distillation.task_teachers.values()}}
    tasks = {*heads[distillation.teacher], *distillation.task_teachers}
    return {task: heads[distillation.teacher_of(task)][task] for task in tasks
            if task in heads[distillation.teacher_of(task)]}


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def build_model(config: TrainConfig, splits: dict[str, dict[str, Examples]], device: torch.device | None = None
                ) -> MultiTaskModel:
    """The model a run starts from: ``model.init_from`` or a backbone, plus a new head per task it lacks
    (labels from the config, else inferred from the task's training split); on ``device``, with the components
    ``freezing`` names frozen. A distilled run takes a task's labels from its teacher when the config lists none: its
    logits must line up with the teacher's."""
    section = config.model
    teacher = _teacher_heads(config.distillation) if config.distillation else None
    if section.init_from:
        model = MultiTaskModel.load(section.init_from, precision="fp32")  # dev scores must not depend on the CPU
        if section.branch_at not in (None, "auto") and section.branch_at != model.config.encoder.branch_at:
            raise MtstError(f"model.branch_at {section.branch_at} differs from {section.init_from}'s "
                            f"({model.config.encoder.branch_at}); a model keeps its branch: drop model.branch_at")
        for key in BRANCH_SHAPE:
            if getattr(section, key) not in (None, getattr(model.config.encoder, key)):
                raise MtstError(f"model.{key} differs from {section.init_from}'s; a model keeps its branch's shape: "
                                f"drop model.{key}")
    else:
        branch_at = section.branch_at
        if branch_at == "auto":
            layers = backbone_layers(section.backbone)
            branch_at = None if layers is None else auto_branch_at(layers)
        side = section.side_reduction  # a side network instead of a branch: "auto" then means no branch
        shape = {key: getattr(section, key) for key in BRANCH_SHAPE}
        model = MultiTaskModel.from_backbone(section.backbone, section.pooling, section.normalize,
                                             section.max_seq_length, None if side else branch_at, side_reduction=side,
                                             precision="fp32", **(shape if branch_at is not None and not side else {}))
    for task in config.tasks:
        if task.name in model.config.heads:  # pair tasks included (they have no head module)
            existing = model.config.heads[task.name]
            if existing.type != task.type or (task.labels and task.labels != existing.labels):
                raise MtstError(f"task '{task.name}' differs from the head in {section.init_from} "
                                "(type or labels); rename the task or match it")
            continue
        from_teacher = teacher[task.name].labels if teacher and task.name in teacher else None
        labels = task.labels or from_teacher or infer_labels(splits[task.name]["train"], task.type)
        model.add_head(task.name, task.type, labels, task.hidden_dim, task.dropout, **task.head_options)
        if task_type(task.type).multi_label:
            start_at_label_frequencies(model.heads[task.name], splits[task.name]["train"].labels)
    if device is not None:
        model.to(device)
    apply_freezing(model, config)
    return model


def start_at_label_frequencies(head, gold: Sequence[Sequence[str]]) -> None:
    """A multi-label head's output biases start at each label's log-odds in the training data: from sigmoid 0.5 a
    rare label's bias must climb to about -3.5 at ~lr per step, which took longer than a short run (GoEmotions, 1
    epoch: every score stuck near 0.1-0.3, macro-F1 2.3 at thresholds 0.5)."""
    counts = torch.tensor([sum(label in names for names in gold) for label in head.labels], dtype=torch.float64)
    frequency = ((counts + 0.5) / (len(gold) + 1.0)).clamp(1e-4, 1 - 1e-4)  # smoothed: no infinite log-odds
    with torch.no_grad():
        head.net[-1].bias.copy_(torch.log(frequency / (1 - frequency)))  # the head's output layer


def resolved_config(config: TrainConfig, model: MultiTaskModel) -> dict:
    """The config as run (config.yaml): every task's labels (inferred ones included), the branch point and CRF
    choice written in."""
    raw = config.model_dump(mode="json")
    if raw["model"]["branch_at"] == "auto":  # the branch point the rule chose (mtst.training.plan)
        raw["model"]["branch_at"] = model.config.encoder.branch_at
    for task, spec in zip(raw["tasks"], config.tasks, strict=True):
        task["labels"] = list(model.config.heads[task["name"]].labels)
        task["crf"] = spec.head_options["crf"]
    return raw


def encode_training_data(model: MultiTaskModel, config: TrainConfig, splits: dict[str, dict[str, Examples]]
                         ) -> dict[str, EncodedTask]:
    """Every task's training split tokenized once; the labels of every split checked against the model's."""
    encoded = {}
    for task in config.tasks:
        head = model.config.heads[task.name]
        if task_type(head.type).predicts:  # pairs carry scores, not label names
            for split in ("dev", "test"):
                if split in splits[task.name]:
                    check_labels(splits[task.name][split], head.labels)
        encoded[task.name] = encode_task(model.tokenizer, splits[task.name]["train"], head.labels, head.type)
    return encoded
