"""Where a task's labelled examples come from: one validated description per file, or one file cut into splits.

These are sections of the training config (``tasks[].data``), defined here because the readers consume them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from mtst.errors import MtstError
from mtst.model.config import StrictModel

DataFormat = Literal["csv", "tsv", "jsonl", "conll", "spans", "hf_disk"]
TagScheme = Literal["auto", "iob1", "iob2"]
SUFFIX_FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".conll": "conll", ".txt": "conll", ".iob": "conll"}
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
    scheme: TagScheme = "auto"  # token tags: auto = rewrite IOB1 files as IOB2 when they look like IOB1
    label_map: dict[str, str] | None = None  # raw label -> label name (e.g. "1" -> "World")
    label_separator: str | None = None  # multi-label tasks: labels joined in one csv/tsv field ("|" when unset)
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
    stratify: bool = False  # sentence tasks: each label's share the same in every split

    @model_validator(mode="after")
    def _sums_to_one(self) -> SplitSpec:
        if abs(self.train + self.dev + self.test - 1.0) > 1e-6:
            raise ValueError(f"split ratios must sum to 1, got {self.train + self.dev + self.test}")
        return self


class TaskData(StrictModel):
    """Either separate train/dev/test sources, or ``source`` + ``split``; beside ``source``, a ``dev`` or ``test``
    file wins for its split and the source is cut into the others."""

    train: DataSource | None = None
    dev: DataSource | None = None
    test: DataSource | None = None
    source: DataSource | None = None
    split: SplitSpec | None = None

    @model_validator(mode="after")
    def _one_layout(self) -> TaskData:
        if self.source is not None:
            if self.train:
                raise ValueError("give either 'source' (+ 'split') or 'train', not both; 'dev' and 'test' files may "
                                 "stand beside 'source'")
            if self.split is None:
                raise ValueError("'source' needs a 'split' (ratios and seed)")
        elif self.train is None:
            raise ValueError("a task needs 'train' data (or 'source' + 'split')")
        return self


def infer_format(path: Path, token_level: bool) -> str:
    """The format a file's name says (a directory: hf_disk); for a token task, JSON lines whose first object has a
    "spans" key are span files."""
    if path.is_dir():
        return "hf_disk"
    found = SUFFIX_FORMATS.get(path.suffix.lower())
    if found is None:
        raise MtstError(f"{path}: cannot tell the format from the name; name it .csv, .tsv, .jsonl, .conll, .txt or "
                        "choose one with PATH:FORMAT (csv, tsv, jsonl, conll, spans, hf_disk)")
    if found == "jsonl" and token_level and path.is_file():
        with path.open(encoding="utf-8", errors="replace") as handle:
            first = next((line for line in handle if line.strip()), "")
        try:
            if isinstance(row := json.loads(first), dict) and "spans" in row:
                return "spans"
        except json.JSONDecodeError:
            pass  # the reader names the line
    return found
