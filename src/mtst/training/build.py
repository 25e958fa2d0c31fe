"""What a training run is built from: seeds, the mixed-precision check, and the starting model."""

from __future__ import annotations

import random

import numpy as np
import torch

from mtst.data.readers import Examples
from mtst.data.splits import check_labels, infer_labels
from mtst.data.task_encoding import EncodedTask, encode_task
from mtst.errors import MtstError
from mtst.model.multitask import MultiTaskModel
from mtst.model.tasks import task_type
from mtst.training.config import TrainConfig
from mtst.training.freezing import apply_freezing


def check_mixed_precision(mode: str, device: torch.device) -> None:
    """bf16 autocast needs a GPU that has bf16 (Ampere or newer); CPUs always run it (fast with AVX512-BF16/AMX)."""
    if mode == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise MtstError("run.mixed_precision: bf16 is not supported by this GPU; set it to \"no\"")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def build_model(config: TrainConfig, splits: dict[str, dict[str, Examples]], device: torch.device | None = None
                ) -> MultiTaskModel:
    """The model a run starts from: ``model.init_from`` or a backbone, plus a new head per task it lacks
    (labels from the config, else inferred from the task's training split); on ``device``, with the components
    ``freezing`` names frozen."""
    section = config.model
    if section.init_from:
        model = MultiTaskModel.load(section.init_from)
        if section.branch_at is not None and section.branch_at != model.config.encoder.branch_at:
            raise MtstError(f"model.branch_at {section.branch_at} differs from {section.init_from}'s "
                            f"({model.config.encoder.branch_at}); a model keeps its branch: drop model.branch_at")
    else:
        model = MultiTaskModel.from_backbone(section.backbone, section.pooling, section.normalize,
                                             section.max_seq_length, section.branch_at)
    for task in config.tasks:
        if task.name in model.config.heads:  # pair tasks included (they have no head module)
            existing = model.config.heads[task.name]
            if existing.type != task.type or (task.labels and task.labels != existing.labels):
                raise MtstError(f"task '{task.name}' differs from the head in {section.init_from} "
                                "(type or labels); rename the task or match it")
            continue
        labels = task.labels or infer_labels(splits[task.name]["train"], task.type)
        model.add_head(task.name, task.type, labels, task.hidden_dim, task.dropout, word_shape=task.word_shape,
                       crf=task.crf)
    if device is not None:
        model.to(device)
    apply_freezing(model, config)
    return model


def resolved_config(config: TrainConfig, model: MultiTaskModel) -> dict:
    """The config as run (config.yaml): every task's labels written in, inferred ones included."""
    raw = config.model_dump(mode="json")
    for task in raw["tasks"]:
        task["labels"] = list(model.config.heads[task["name"]].labels)
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
