"""The training config: one validated YAML file (``mtst train CONFIG.yaml``), or built by ``mtst train --task``.

Nested by concern (model, tasks, optimizer, freezing, sampling, loss weighting, embedding anchor, distillation,
evaluation, run).
Every choice is a ``Literal``; unknown keys are errors that name the key.

The defaults ARE the recipe docs/training-guide.md measured ("What we recommend", configs/default.yaml): a task
branch (``branch_at: auto``), encoder lr 1e-4 with layer decay 0.9, head lr 1e-3, warm-up 0.06, temperature-2
task sampling, word shapes (uncased backbones) + BIO CRF on token heads, checkpoints at every evaluation, a fresh
run directory per run. Every earlier default stays reachable by setting its key (``branch_at: null``,
``lr: 2.0e-5, head_lr: null, layer_decay: 1.0``, ``warmup_ratio: 0.1``, ``sampling.strategy: proportional``,
``crf: false, word_shape: "off"``, ``run.checkpoints: false``, ``run.output_dir: runs/default``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import yaml
from pydantic import Field, ValidationError, ValidationInfo, field_validator, model_validator

from mtst.data.sources import DATA_DIR_VARIABLE, DEFAULT_DATA_DIR, DataSource, TaskData
from mtst.errors import MtstError
from mtst.model.config import StrictModel
from mtst.model.tasks import task_type


class TaskSpec(StrictModel):
    name: str = Field(..., pattern=r"^[A-Za-z_][A-Za-z0-9_-]*$")
    type: str  # a key of mtst.model.tasks.TASK_TYPES
    labels: list[str] | None = None  # None: inferred from the training data and stored
    hidden_dim: int | None = Field(None, gt=0)
    dropout: float = Field(0.1, ge=0, lt=1)
    # token tasks: word shapes beside the token states (auto: only on an uncased backbone); a BIO CRF on top
    word_shape: Literal["off", "on", "auto"] = "auto"  # sentence tasks: "auto" means off
    crf: bool | None = None  # None: on for token tasks (their tags are BIO: the reader checks), off otherwise
    data: TaskData
    loss_weight: float = Field(1.0, gt=0)  # static weighting
    sampling_weight: float | None = Field(None, gt=0)  # used by sampling.strategy == "fixed"

    @field_validator("type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        try:
            task_type(value)
        except MtstError as exc:  # pydantic reports ValueErrors as config errors at tasks.N.type
            raise ValueError(str(exc)) from None
        return value

    @model_validator(mode="after")
    def _options_fit_the_type(self) -> TaskSpec:
        # word_shape "auto" depends on the backbone's casing: the model checks it when it builds the head
        if not task_type(self.type).token_options and (self.crf or self.word_shape == "on"):
            raise ValueError(f"crf and word_shape are token-task options; a {self.type} task has neither")
        return self

    @property
    def head_options(self) -> dict:
        """``word_shape`` and ``crf`` as ``MultiTaskModel.add_head`` takes them, the defaults resolved per type."""
        token = task_type(self.type).token_options
        return {"word_shape": self.word_shape if token else "off",
                "crf": token if self.crf is None else self.crf}


class ModelSection(StrictModel):
    backbone: str | None = None  # local directory; None = all-MiniLM-L6-v2 from its package
    init_from: str | None = None  # an mtst model directory to start from (its heads are kept)
    pooling: Literal["mean", "cls", "max"] | None = None
    normalize: bool | None = None
    max_seq_length: int | None = Field(None, gt=1)
    # a task branch after this layer (mtst.model.branch): exact embeddings + fine-tuned heads; None: no branch;
    # "auto": round(L / 3) for a backbone of L >= 3 layers (2 for the 6-layer default, as measured), none below
    branch_at: int | Literal["auto"] | None = "auto"
    # a side network of width H / side_reduction beside the frozen backbone instead of a branch (mtst.model.side);
    # branch_at "auto" then means no branch
    side_reduction: int | None = Field(None, ge=1)
    # a slimmer branch (mtst.model.branch): how many layers above branch_at it holds (None: all of them), each
    # layer's FFN width and attention heads (None: the backbone's); with ``distillation`` it starts from the
    # teacher's top layers
    branch_layers: int | None = Field(None, ge=1)
    branch_intermediate_size: int | None = Field(None, ge=1)
    branch_attention_heads: int | None = Field(None, ge=1)

    @field_validator("side_reduction")
    @classmethod
    def _one_task_path(cls, value: int | None, info: ValidationInfo) -> int | None:
        if value is not None and isinstance(info.data.get("branch_at"), int):
            raise ValueError("side_reduction and branch_at are two task paths: set branch_at: null (or leave it out)")
        return value

    @field_validator("branch_at")
    @classmethod
    def _not_negative(cls, value: int | str | None) -> int | str | None:
        if isinstance(value, int) and value < 0:
            raise ValueError("branch_at must be >= 0, \"auto\" or null")
        return value


class OptimizerSection(StrictModel):
    lr: float = Field(1e-4, gt=0)  # encoder (or branch) top-layer lr
    head_lr: float | None = Field(1e-3, gt=0)  # None: same as lr
    layer_decay: float = Field(0.9, gt=0, le=1)  # lr of layer at depth d from the top = lr * decay**d
    weight_decay: float = Field(0.01, ge=0)
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = Field(1e-8, gt=0)
    schedule: Literal["linear", "cosine", "constant"] = "linear"
    warmup_ratio: float = Field(0.06, ge=0, lt=1)
    max_grad_norm: float | None = Field(1.0, gt=0)
    grad_accumulation: int = Field(1, ge=1)
    batch_size: int = Field(32, ge=1)
    # neither set: 3 epochs, kept within 200..8,000 optimizer steps (mtst.training.plan.training_length)
    epochs: float | None = Field(None, gt=0)  # counted over the sampled task mixture
    max_steps: int | None = Field(None, ge=1)  # optimizer steps; wins over epochs


class FreezingSection(StrictModel):
    mode: Literal["none", "encoder", "embeddings", "bottom_k", "all"] = "none"
    bottom_k: int = Field(0, ge=0)  # layers above the embeddings frozen when mode == "bottom_k"
    heads: list[str] = Field(default_factory=list)  # heads kept fixed (train one head, not another)
    gradual_unfreeze_every: int | None = Field(None, ge=1)  # unfreeze one layer group from the top every N ...
    gradual_unfreeze_unit: Literal["steps", "epochs"] = "steps"


class SamplingSection(StrictModel):
    strategy: Literal["proportional", "temperature", "round_robin", "fixed"] = "temperature"
    temperature: float = Field(2.0, gt=0)  # p ~ n**(1/T)


class LossWeightingSection(StrictModel):
    mode: Literal["static", "uncertainty"] = "static"


class EmbeddingAnchorSection(StrictModel):
    """Self-distillation toward the starting encoder's sentence embeddings (see mtst.training.anchor)."""

    weight: float = Field(1.0, ge=0, allow_inf_nan=False)  # 0 = off; added to the combined loss as weight * anchor
    loss: Literal["cosine", "mse"] = "cosine"  # cosine: mean(1 - cos); mse: mean over the (B, H) elements


class DistillationSection(StrictModel):
    """Train toward a trained mtst model's outputs (see mtst.training.distillation)."""

    teacher: str  # an mtst model directory on the same backbone, with every predicting task of the run
    # task -> another such directory that teaches that task in place of ``teacher`` (a model better at it, e.g. a
    # deeper branch for sentiment): that task's logits and token states come from it; the student still starts
    # from ``teacher``
    task_teachers: dict[str, str] = Field(default_factory=dict)
    weight: float = Field(1.0, ge=0, allow_inf_nan=False)  # on T^2 * KL(teacher || student) of the label distributions
    temperature: float = Field(2.0, gt=0)
    hidden_weight: float = Field(1.0, ge=0, allow_inf_nan=False)  # on the MSE of the task paths' token states
    # masked copies of each training example of the distilled sentence tasks (not token or pair tasks), labelled by
    # the teacher: a larger transfer set (mtst.training.augment); 0 = off. Steps and task mix stay the original's
    augment: int = Field(0, ge=0)
    mask_probability: float = Field(0.1, gt=0, lt=1)  # each real word-piece of a copy becomes the mask token

    def teacher_of(self, task: str) -> str:
        """The model directory that teaches ``task``: its entry in ``task_teachers``, else ``teacher``."""
        return self.task_teachers.get(task, self.teacher)


class EvaluationSection(StrictModel):
    every_steps: int | None = Field(None, ge=1)  # None: at the end of each epoch / of training
    metric: str | None = None  # e.g. "ner/f1"; None: mean of each task's main metric ("mean/main")
    greater_is_better: bool = True
    patience: int | None = Field(None, ge=1)  # early stopping, in evaluations
    sts: DataSource | None = None  # optional STS-style file: Spearman of cosine similarity
    batch_size: int = Field(64, ge=1)


# what the dry run and the trainer say where bf16 is asked for on a CPU that only emulates it
EMULATED_BF16 = "no native bf16 on this CPU (avx512_bf16 / amx_bf16): steps ran ~37x slower than fp32 on such a CPU"


class RunSection(StrictModel):
    output_dir: Path | None = None  # None: a fresh runs/<date>-<time>-<n> per run (mtst.training.plan.new_run_dir)
    seed: int = 42
    checkpoints: bool = True  # a resumable checkpoint at every evaluation (or every checkpoint_every_steps)
    checkpoint_every_steps: int | None = Field(None, ge=1)
    keep_encoder_in_saved_model: bool = True  # False only for the untouched default backbone
    log_every_steps: int = Field(10, ge=1)
    # bf16: forward passes under torch.autocast (weights, optimizer state and evaluation stay fp32). For recent GPUs
    # and CPUs with native bf16 (avx512_bf16 / amx_bf16); ~37x slower steps were measured on a CPU without it
    # (mtst warns there). "no" reproduces fp32 runs bit for bit.
    mixed_precision: Literal["no", "bf16"] = "no"
    # where training (and its evaluations) run: "auto" = CUDA when present, else the CPU (accelerate places the model;
    # a particular GPU: CUDA_VISIBLE_DEVICES or `accelerate launch`)
    device: Literal["auto", "cpu", "cuda"] = "auto"

    def on_cpu(self) -> bool:
        """Whether the steps run on the CPU: asked for, or "auto" where CUDA is missing (the trainer and the dry
        run's precision advice read this one rule)."""
        import torch

        return self.device == "cpu" or (self.device == "auto" and not torch.cuda.is_available())

    @model_validator(mode="after")
    def _checkpoint_interval_needs_checkpoints(self) -> RunSection:
        # the silent combination once cost two 8,000-step runs their resumability
        if self.checkpoint_every_steps is not None and not self.checkpoints:
            raise ValueError("run.checkpoint_every_steps is set but run.checkpoints is false: set checkpoints: true, "
                             "or remove checkpoint_every_steps (--set run.checkpoint_every_steps=null)")
        return self


class TrainConfig(StrictModel):
    model: ModelSection = Field(default_factory=ModelSection)
    tasks: list[TaskSpec] = Field(..., min_length=1)
    optimizer: OptimizerSection = Field(default_factory=OptimizerSection)
    freezing: FreezingSection = Field(default_factory=FreezingSection)
    sampling: SamplingSection = Field(default_factory=SamplingSection)
    loss_weighting: LossWeightingSection = Field(default_factory=LossWeightingSection)
    embedding_anchor: EmbeddingAnchorSection | None = None  # None (or weight 0): off
    distillation: DistillationSection | None = None  # None: off
    evaluation: EvaluationSection = Field(default_factory=EvaluationSection)
    run: RunSection = Field(default_factory=RunSection)

    @model_validator(mode="after")
    def _unique_task_names(self) -> TrainConfig:
        names = [task.name for task in self.tasks]
        if len(set(names)) != len(names):
            raise ValueError(f"task names must be unique, got {names}")
        return self

    @model_validator(mode="after")
    def _task_teachers_teach_tasks_of_the_run(self) -> TrainConfig:
        names = [task.name for task in self.tasks]
        unknown = sorted(set(self.distillation.task_teachers) - set(names)) if self.distillation else []
        if unknown:
            raise ValueError(f"distillation.task_teachers names {unknown}, not tasks of this run ({names}); key "
                             "each teacher by a task name")
        return self


def _expand_data_dir(text: str) -> str:
    """``${MTST_DATA_DIR}`` in a config -> that variable, or ../shared/data when it is unset."""
    return text.replace("${" + DATA_DIR_VARIABLE + "}", os.environ.get(DATA_DIR_VARIABLE, DEFAULT_DATA_DIR))


def load_train_config(path: str | Path) -> TrainConfig:
    """Read and validate a YAML config. Relative paths resolve against the working directory."""
    path = Path(path)
    try:
        raw = yaml.safe_load(_expand_data_dir(path.read_text(encoding="utf-8")))
    except FileNotFoundError as exc:
        raise MtstError(f"config file not found: {path}") from exc
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        raise MtstError(f"cannot parse {path}: {str(exc).splitlines()[0]}") from exc
    if not isinstance(raw, dict):
        raise MtstError(f"{path} must hold a mapping of sections (model, tasks, optimizer, ...)")
    try:
        return TrainConfig.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise MtstError(f"invalid config {path}: {where}: {first['msg']}") from exc
