"""Where a task's labelled examples come from: one validated description per file, or one file cut into splits.

These are sections of the training config (``tasks[].data``), defined here because the readers consume them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from mtst.model.config import StrictModel

DataFormat = Literal["csv", "tsv", "jsonl", "conll", "hf_disk"]
DATA_DIR_VARIABLE = "MTST_DATA_DIR"
DEFAULT_DATA_DIR = "../shared/data"  # where the project's real data sits beside a checkout


class DataSource(StrictModel):
    """One file (or HF ``save_to_disk`` directory) of labelled examples for one task."""

    path: Path
    format: DataFormat
    text_column: str | int = "text"  # column name, or 0-based index for header-less csv/tsv
    label_column: str | int = "label"
    text_pair_column: str | int | None = None  # second sentence of a pair (evaluation.sts only)
    header: bool = True  # csv/tsv: first row holds column names
    tag_column: int = -1  # conll: which whitespace column holds the BIO tag (-1 = last)
    label_map: dict[str, str] | None = None  # raw label -> label name (e.g. "1" -> "World")
    max_examples: int | None = Field(None, gt=0)  # keep the first N (after a split, of each split)

    @field_validator("label_map", mode="before")
    @classmethod
    def _label_map_as_text(cls, value: object) -> object:
        """YAML reads ``{1: World}`` with int keys; raw labels are compared as text, so accept them."""
        if isinstance(value, dict):
            return {str(key): name if name is None else str(name) for key, name in value.items()}
        return value


class SplitSpec(StrictModel):
    """Cut one file into train/dev/test deterministically by ratio and seed."""

    train: float = Field(0.8, gt=0, lt=1)
    dev: float = Field(0.1, ge=0, lt=1)
    test: float = Field(0.1, ge=0, lt=1)
    seed: int = 13

    @model_validator(mode="after")
    def _sums_to_one(self) -> SplitSpec:
        if abs(self.train + self.dev + self.test - 1.0) > 1e-6:
            raise ValueError(f"split ratios must sum to 1, got {self.train + self.dev + self.test}")
        return self


class TaskData(StrictModel):
    """Either separate train/dev/test sources, or ``source`` + ``split``."""

    train: DataSource | None = None
    dev: DataSource | None = None
    test: DataSource | None = None
    source: DataSource | None = None
    split: SplitSpec | None = None

    @model_validator(mode="after")
    def _one_layout(self) -> TaskData:
        if self.source is not None:
            if self.train or self.dev or self.test:
                raise ValueError("give either 'source' (+ 'split') or train/dev/test, not both")
            if self.split is None:
                raise ValueError("'source' needs a 'split' (ratios and seed)")
        elif self.train is None:
            raise ValueError("a task needs 'train' data (or 'source' + 'split')")
        return self
