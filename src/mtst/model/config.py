"""Typed, validated model configuration and its JSON form on disk.

The saved config stores registry *names* (a pooling, a task type of mtst.model.tasks), never import paths, so a
rename inside mtst can't break old model directories. What a task type allows is checked by the type itself
(``TaskType.check``) when its head is built: this module knows no type names.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

FORMAT_VERSION = 2  # 2: encoder.branch_at and encoder.backbone_sha256 (absent in 1: no branch)
CONFIG_FILE = "mtst_config.json"

PoolingName = Literal["mean", "cls", "max"]
Probability = Annotated[float, Field(ge=0.0, le=1.0)]


class StrictModel(BaseModel):
    """Base for every config: unknown keys are errors that name the key."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class EncoderConfig(StrictModel):
    pooling: PoolingName = "mean"
    normalize: bool = True
    max_seq_length: int = Field(256, gt=1, le=8192)  # what the heads read (their training length): the window
    # What encode() truncates at: the backbone's own limit, so embeddings equal sentence-transformers' at every
    # length it encodes (None: max_seq_length)
    embedding_max_seq_length: int | None = Field(None, gt=1, le=8192)
    hidden_size: int = Field(..., gt=0)
    backbone: str = ""  # where the encoder came from: "default" (the packaged model) or a directory
    # Task branch (mtst.model.branch): heads read a trainable copy of layers branch_at+1..L; None: no branch
    branch_at: int | None = Field(None, ge=0)
    # A slimmer branch: how many layers it holds (None: all L - branch_at), each layer's FFN width and attention
    # heads (None: the backbone's); a distilled branch is built so (mtst.training.distillation)
    branch_layers: int | None = Field(None, ge=1)
    branch_intermediate_size: int | None = Field(None, ge=1)
    branch_attention_heads: int | None = Field(None, ge=1)
    # Side network (mtst.model.side): heads read the frozen backbone's top states plus a narrow trainable network's
    # correction (width hidden_size / side_reduction); None: no side network. Exclusive with branch_at.
    side_reduction: int | None = Field(None, ge=1)
    # Set when the model directory references its backbone instead of holding a copy (encoder/ left out):
    # loading checks the backbone found has exactly these weights.
    backbone_sha256: str | None = None

    @model_validator(mode="after")
    def _one_task_path(self) -> EncoderConfig:
        if self.branch_at is not None and self.side_reduction is not None:
            raise ValueError("branch_at and side_reduction are two task paths; set one of them, not both")
        if self.branch_at is None and (self.branch_layers or self.branch_intermediate_size
                                       or self.branch_attention_heads):
            raise ValueError("branch_layers, branch_intermediate_size and branch_attention_heads shape a task "
                             "branch: set branch_at too")
        return self


class HeadConfig(StrictModel):
    type: str  # a key of mtst.model.tasks.TASK_TYPES
    labels: list[str] = Field(default_factory=list)  # classification: >= 2 label names; pair tasks: none
    input_dim: int = Field(..., gt=0)
    hidden_dim: int | None = Field(None, gt=0)  # optional hidden layer (sentence heads)
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    word_shape_dim: int = Field(0, ge=0)  # token heads: embed each word's shape (mtst.model.word_shapes); 0 = off
    crf: bool = False  # token heads: a BIO-constrained CRF over the words (mtst.model.crf): its loss and Viterbi
    # Zero-shot heads: one line per label, embedded as "label: description" (else the label name alone)
    descriptions: list[str] | None = None
    # Zero-shot heads: read the task branch's pooled states instead of the exact sentence embedding (set by few-shot
    # contrastive training, which trains the branch for this head: mtst.training.few_shot_branch)
    task_path: bool = False
    # Sentence heads: decoding's softmax(logits / temperature) (None: the head's default; calibration fits it) and
    # the probability below which the label is None (abstention; None: off)
    temperature: float | None = Field(None, gt=0)
    threshold: float | None = Field(None, ge=0.0, le=1.0)
    # Sentence heads, after the temperature: the top probability mapped through these [confidence, calibrated] knots
    # (linear between them, confidence increasing; isotonic calibration fits them; None: off), the others rescaled
    confidence_curve: list[tuple[Probability, Probability]] | None = Field(None, min_length=2)
    # Multi-label heads: the probability each label needs, in label order (None: 0.5 each; mtst.training.thresholds)
    thresholds: list[Probability] | None = None

    @field_validator("labels")
    @classmethod
    def _unique_labels(cls, labels: list[str]) -> list[str]:
        if len(set(labels)) != len(labels):
            raise ValueError(f"labels must be unique, got {labels}")
        return labels

    @field_validator("confidence_curve")
    @classmethod
    def _increasing_knots(cls, knots: list[tuple[float, float]] | None) -> list[tuple[float, float]] | None:
        if knots is not None and any(b[0] < a[0] for a, b in zip(knots, knots[1:], strict=False)):
            raise ValueError("confidence_curve knots must be in increasing order of confidence (their first value)")
        return knots


class ModelConfig(StrictModel):
    format_version: int = FORMAT_VERSION
    encoder: EncoderConfig
    heads: dict[str, HeadConfig] = Field(default_factory=dict)
    trained: bool = False  # False: heads are seeded random weights (say so to users)


def migrate(raw: dict) -> dict:
    """Bring an older saved config up to FORMAT_VERSION (the one place migrations live)."""
    version = raw.get("format_version")
    if version is None:
        raise ValueError("config has no 'format_version'")
    if version > FORMAT_VERSION:
        raise ValueError(
            f"format_version {version} is newer than this mtst supports ({FORMAT_VERSION}); upgrade mtst"
        )
    if version == 1:  # version 2 only added optional encoder keys (a branch, a backbone reference)
        raw = {**raw, "format_version": 2}
    return raw
