"""Distillation: train toward a trained mtst model's outputs (issue 31: a slimmer branch from a deeper one).

The teacher (``distillation.teacher``: an mtst model directory on the same backbone, with every task of the run that
predicts; a task listed in ``distillation.task_teachers``: that task's own teacher) runs once over each training
example at setup (eval mode, no grad, length-sorted batches, like the embedding anchor) and keeps its task-path
token states and each head's logits. Every training batch then adds

    weight * T^2 * KL(teacher || student), label distributions at temperature T   (sentence heads: per row;
                                                                                   token heads: per labelled token)
  + hidden_weight * mean squared error of the task paths' token states            (over real tokens)

to the combined loss, outside the task weighting (uncertainty weights cannot shrink it). A student built fresh starts
from the teacher where shapes allow (``start_from_teacher``): every head the teacher has with the same config, and
its branch's top layers cut to the student's FFN width and heads (mtst.model.branch.slim), so
training starts near the teacher's function instead of from the backbone's. Pair tasks are not distilled (they train
the embedding path, which a branch keeps frozen).
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Collection
from pathlib import Path

import torch
from torch import nn

from mtst.data.task_encoding import EncodedTask
from mtst.errors import MtstError
from mtst.model.branch import slim
from mtst.model.config import HeadConfig
from mtst.model.heads import IGNORE_INDEX
from mtst.model.multitask import MultiTaskModel
from mtst.model.tasks import task_type
from mtst.progress import progress_bar
from mtst.training.feature_cache import pad_rows

logger = logging.getLogger("mtst")


def load_teacher(path: str, student: MultiTaskModel, device: torch.device, tasks: Collection[str] | None = None
                 ) -> MultiTaskModel:
    """The teacher in fp32 eval mode on ``device``, checked against the student: same backbone, and each of the
    student's predicting tasks (those in ``tasks``, None: all) with the same type and labels."""
    teacher = MultiTaskModel.load(path, precision="fp32", device=str(device) if device.type != "cpu" else None)
    if teacher.backbone_sha256 != student.backbone_sha256:
        raise MtstError(f"distillation.teacher {path} is on another backbone than this run's model; distil between "
                        "models on the same backbone (model.backbone)")
    for name, head in student.config.heads.items():
        if not task_type(head.type).predicts or (tasks is not None and name not in tasks):
            continue
        theirs = teacher.config.heads.get(name)
        if theirs is None or theirs.type != head.type or theirs.labels != head.labels:
            has = f"its '{name}' is a {theirs.type} task with labels {theirs.labels}" if theirs else (
                f"it has {', '.join(teacher.tasks) or 'no tasks'}")
            raise MtstError(f"distillation.teacher {path} has no task '{name}' of type {head.type} with labels "
                            f"{head.labels} ({has}); give the student the teacher's tasks (leave labels out to take "
                            "the teacher's)")
    if teacher.tokenizer.word_shapes and not student.tokenizer.word_shapes:
        raise MtstError("the teacher's heads read word shapes and the student's do not; give the token tasks "
                        "word_shape: auto (or on), as in the teacher")
    return teacher.eval()


DECODING_ONLY = {"temperature", "threshold", "confidence_curve", "thresholds", "dropout"}  # no weights depend on them


def _same_head(a: HeadConfig, b: HeadConfig) -> bool:
    return a.model_dump(exclude=DECODING_ONLY) == b.model_dump(exclude=DECODING_ONLY)


def start_from_teacher(student: MultiTaskModel, teacher: MultiTaskModel) -> list[str]:
    """Copy into the student what matches: heads built like the teacher's (its calibration is not copied: the
    student's scores are its own), and the teacher branch's top layers into the student's branch (cut to the
    student's FFN width and heads). Returns what was copied."""
    copied = []
    for name, head in student.heads.items():
        if name in teacher.heads and _same_head(teacher.config.heads[name], student.config.heads[name]):
            head.load_state_dict(teacher.heads[name].state_dict())
            copied.append(f"head {name}")
    if student.branch is not None and teacher.branch is not None:
        mine, theirs = student.branch.layers, teacher.branch.layers
        if len(mine) > len(theirs):
            raise MtstError(f"the student's branch holds {len(mine)} layers, the teacher's {len(theirs)}: a distilled "
                            "branch starts from the teacher's top layers, so it can hold at most as many")
        for layer, source in zip(mine, theirs[len(theirs) - len(mine):], strict=True):
            source = copy.deepcopy(source)
            slim(source, layer.intermediate.dense.out_features, layer.attention.self.num_attention_heads)
            layer.load_state_dict(source.state_dict())
        copied.append(f"branch layers from the teacher's top {len(mine)} of {len(theirs)}")
    return copied


def soft_label_loss(student: torch.Tensor, teacher: torch.Tensor, temperature: float, multi_label: bool
                    ) -> torch.Tensor:
    """T^2 * KL(teacher || student) over rows of logits (N, C) at temperature T (Hinton et al. 2015); per label
    Bernoulli distributions for a multi-label head (the cross-entropy to the teacher's probabilities, which differs
    from that KL by a constant)."""
    student, teacher = student.float() / temperature, teacher.float() / temperature
    if multi_label:
        loss = nn.functional.binary_cross_entropy_with_logits(student, torch.sigmoid(teacher))
    else:
        loss = nn.functional.kl_div(student.log_softmax(-1), teacher.log_softmax(-1), log_target=True,
                                    reduction="batchmean")
    return loss * temperature ** 2


class TeacherTargets:
    """The teacher's token states (T_i, H, stored bf16) and logits of every training example, per distilled task
    (from ``task_teachers[task]`` where given, else ``teacher``); ``loss(task, indices, out, attention_mask,
    labels)`` -> the weighted distillation loss of one batch."""

    def __init__(self, teacher: MultiTaskModel, encoded: dict[str, EncodedTask], section, batch_size: int = 64,
                 show_progress: bool = False, task_teachers: dict[str, MultiTaskModel] | None = None):
        self.section = section
        teachers = {task: (task_teachers or {}).get(task, teacher) for task in encoded}
        self.tasks = {task: model.heads[task] for task, model in teachers.items()
                      if task in model.heads and model.heads[task].reads != "sentence_embedding"}
        self.states: dict[str, list[torch.Tensor]] = {}
        self.logits: dict[str, list[torch.Tensor]] = {}
        total = sum(len(encoded[task]) for task in self.tasks)
        start = time.perf_counter()
        with torch.no_grad(), progress_bar(total, "distillation: the teacher on the training data", show_progress
                                           ) as advance:
            for task in self.tasks:
                self._run_teacher(teachers[task], task, encoded[task], batch_size, advance)
        logger.info("distillation: teacher outputs of %d training examples in %.1f s", total,
                    time.perf_counter() - start)

    def _run_teacher(self, teacher: MultiTaskModel, task: str, data: EncodedTask, batch_size: int, advance) -> None:
        device = next(teacher.parameters()).device
        token_level = data.kind.token_level
        states: list[torch.Tensor] = [torch.empty(0)] * len(data)
        logits: list[torch.Tensor] = [torch.empty(0)] * len(data)
        for indices, features in teacher.tokenizer.sorted_batches(data.items, batch_size):
            features = {k: v.to(device) for k, v in features.items() if k != "word_ids"}
            out = teacher(features, tasks=[task], embedding=False)
            for row, index in enumerate(indices):
                length = len(data.items[index].input_ids)
                states[index] = out["token_embeddings"][row, :length].to(torch.bfloat16).cpu()  # (T_i, H)
                row_logits = out["logits"][task][row]
                logits[index] = (row_logits[:length] if token_level else row_logits).float().cpu()
            advance(len(indices))
        self.states[task], self.logits[task] = states, logits

    def loss(self, task: str, indices: list[int], out: dict, attention_mask: torch.Tensor, labels: torch.Tensor
             ) -> torch.Tensor | None:
        """The weighted distillation loss of one batch of ``task`` (None when the task is not distilled); ``out`` is
        the student's forward output, ``labels`` its (B,) or (B, T) targets (token heads: IGNORE_INDEX where no word
        starts)."""
        if task not in self.tasks:
            return None
        device = attention_mask.device
        head = self.tasks[task]
        student_logits = out["logits"][task]
        if head.reads == "token_embeddings":
            keep = labels != IGNORE_INDEX  # (B, T): each word's first sub-token
            teacher_logits = pad_rows([self.logits[task][i] for i in indices]).to(device)[keep]  # (N, C)
            student_logits = student_logits[keep]
        else:
            teacher_logits = torch.stack([self.logits[task][i] for i in indices]).to(device)  # (B, C)
        section = self.section
        loss = section.weight * soft_label_loss(student_logits, teacher_logits, section.temperature,
                                                task_type(head.config.type).multi_label)
        if section.hidden_weight and "token_embeddings" in out:  # a frozen encoder's sentence heads: pooled only
            teacher_states = pad_rows([self.states[task][i] for i in indices]).to(device).float()  # (B, T, H)
            mask = attention_mask[..., None].float()  # (B, T, 1)
            squared = (out["token_embeddings"].float() - teacher_states).pow(2) * mask
            loss = loss + section.hidden_weight * squared.sum() / (mask.sum() * teacher_states.shape[-1])
        return loss


def build_teacher_targets(student: MultiTaskModel, encoded: dict[str, EncodedTask], section, start_fresh: bool,
                          device: torch.device, batch_size: int, show_progress: bool) -> TeacherTargets | None:
    """None without ``distillation``; else the teacher's outputs on the training data, after starting the student
    from the teacher when it is built fresh (``start_fresh``: no ``model.init_from``)."""
    if section is None:
        return None

    def directory(path: str) -> Path:
        return Path(path).resolve()

    given = {directory(path): path for path in [*section.task_teachers.values(), section.teacher]}  # as written
    teaches: dict[Path, set[str]] = {}  # directory -> the tasks it teaches: one load each, checked for those tasks
    for task in student.config.heads:
        teaches.setdefault(directory(section.teacher_of(task)), set()).add(task)
    loaded = {path: load_teacher(given[path], student, device, tasks=tasks) for path, tasks in teaches.items()}
    main = directory(section.teacher)  # the student's start, whether or not it teaches a task
    teacher = loaded[main] if main in loaded else load_teacher(section.teacher, student, device, tasks=set())
    if start_fresh:
        copied = start_from_teacher(student, teacher)
        logger.info("distillation: the student starts from the teacher's %s", ", ".join(copied) or "nothing")
    return TeacherTargets(teacher, encoded, section, batch_size, show_progress,
                          task_teachers={task: loaded[directory(path)] for task, path in section.task_teachers.items()})
