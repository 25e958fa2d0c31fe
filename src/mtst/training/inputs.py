"""Tasks given as files or in memory -> the ``tasks`` entries of a training config.

A file's task type comes from its content: CoNLL (.conll/.iob/.txt: word + tag columns) and JSON lines whose rows
hold a word list or character ``spans`` are token tasks (the recipe's windowed head: word shapes + BIO CRF by
default); csv/tsv/other JSON lines are sentence classification. ``PATH:TYPE`` (a task type) or ``PATH:FORMAT``
overrides the guess. Without a dev file, a deterministic 10 % dev split is cut (``source`` + ``split``); files of
one's own go beside the training file: ``PATH,dev=PATH[,test=PATH][:TYPE]`` (a test file alone: dev still cut).

In-memory data (lists of (text, label) / (words, tags) / (text, spans), pandas DataFrames, ``datasets.Dataset``)
is written as JSON lines into ``<run dir>/data/`` and read from there like any file, so a run directory holds
what it was trained on and the CLI and Python paths share one recipe.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Mapping
from pathlib import Path

from mtst.data.sources import SUFFIX_FORMATS, infer_format
from mtst.errors import MtstError
from mtst.model.tasks import TASK_TYPES

SENTENCE_TYPE = "sentence_classification"
TOKEN_TYPE = "windowed_token_classification"  # the best measured token head (docs/training-guide.md)
DEV_SPLIT = {"train": 0.9, "dev": 0.1, "test": 0.0, "seed": 13}
FORMATS = ("csv", "tsv", "jsonl", "conll", "spans", "hf_disk")
SPLIT_FILES = ("dev", "test")  # files that may stand beside the training file
USAGE = "NAME=PATH[,dev=PATH][,test=PATH][:TYPE]"


def _first_jsonl_row(path: Path) -> dict:
    with path.open(encoding="utf-8", errors="replace") as handle:
        first = next((line for line in handle if line.strip()), "")
    try:
        row = json.loads(first)
    except json.JSONDecodeError:
        return {}  # the reader names the bad line
    return row if isinstance(row, dict) else {}


def _guess_type(path: Path) -> str:
    suffix = path.suffix.lower()
    if SUFFIX_FORMATS.get(suffix) == "conll":
        return TOKEN_TYPE
    if suffix == ".jsonl" and path.is_file():
        row = _first_jsonl_row(path)
        if "spans" in row or isinstance(row.get("text"), list) or isinstance(row.get("tokens"), list):
            return TOKEN_TYPE
    return SENTENCE_TYPE


def _columns(path: Path, fmt: str) -> dict:
    """text/label columns of a csv/tsv: "text" and "label" when the header has them, else a two-column header's."""
    if fmt not in ("csv", "tsv") or not path.is_file():
        return {}
    with path.open(encoding="utf-8", errors="replace", newline="") as handle:
        header = next(csv.reader(handle, delimiter="," if fmt == "csv" else "\t"), [])
    if {"text", "label"} <= set(header):
        return {}
    if len(header) == 2:
        return {"text_column": header[0], "label_column": header[1]}
    raise MtstError(f"{path}: name its columns text and label (header: {', '.join(header) or 'none'}), or write "
                    "the task in a config with text_column / label_column")


def source_of(path: Path, fmt: str, token: bool, role: str = "data") -> dict:
    """The DataSource fields for one file (``role``: which split it is, for the error when it is missing)."""
    if not path.exists():
        raise MtstError(f"{role} file not found: {path}; check the path")
    source = {"path": str(path), "format": fmt, **_columns(path, fmt)}
    if fmt == "jsonl" and token and "tokens" in _first_jsonl_row(path):
        source.update(text_column="tokens", label_column="tags")
    return source


def split_files(text: str) -> tuple[str, dict[str, str]]:
    """``PATH[,dev=PATH][,test=PATH]`` -> the training file and the others by split name."""
    train, *pairs = re.split(r",(\w+)=", text)
    keys, paths = pairs[::2], pairs[1::2]
    bad = next((key for key in keys if key not in SPLIT_FILES or keys.count(key) > 1), None)
    if bad is not None or not train or not all(paths):
        problem = ("a path is empty" if bad is None else f"'{bad}' comes twice" if bad in SPLIT_FILES
                   else f"'{bad}' is not dev or test")
        raise MtstError(f"--task takes {USAGE} (e.g. intent=train.csv,dev=dev.csv), got '{text}': {problem}")
    return train, dict(zip(keys, paths, strict=True))


def file_task(name: str, spec: str | Path, files: Mapping[str, str | Path] | None = None) -> dict:
    """One ``tasks`` entry from ``PATH[,dev=PATH][,test=PATH][:TYPE|:FORMAT]`` (``files``: more dev / test files,
    by split name). A dev file replaces the 10 % dev split; a test file stands beside either."""
    text, kind, fmt = str(spec), None, None
    head, _, tail = text.rpartition(":")
    if head and (tail in TASK_TYPES or tail in FORMATS):
        text, kind, fmt = head, tail if tail in TASK_TYPES else None, tail if tail in FORMATS else None
    text, named = split_files(text)
    named.update({split: str(path) for split, path in (files or {}).items() if path is not None})
    path = Path(text)
    kind = kind or ("windowed_token_classification" if fmt in ("conll", "spans") else None) or _guess_type(path)
    token = TASK_TYPES[kind].token_level

    def source(split: str, where: Path) -> dict:
        return source_of(where, fmt or infer_format(where, token), token, f"task '{name}': {split}")

    data = {"train": source("train", path)} if "dev" in named else {"source": source("train", path),
                                                                    "split": dict(DEV_SPLIT)}
    data.update({split: source(split, Path(named[split])) for split in SPLIT_FILES if split in named})
    return {"name": name, "type": kind, "data": data}


# ---- in-memory data ----------------------------------------------------------------------------------------------
def _rows(data: object) -> list:
    """A list of rows from a list, a pandas DataFrame (its rows as dicts) or a ``datasets.Dataset``."""
    if hasattr(data, "to_dict") and hasattr(data, "columns"):  # pandas
        return data.to_dict(orient="records")
    if hasattr(data, "column_names") and hasattr(data, "to_list"):  # datasets.Dataset
        rows = data.to_list()
        for column, feature in getattr(data, "features", {}).items():  # ClassLabel ids -> their names
            names = getattr(feature, "names", None) or getattr(getattr(feature, "feature", None), "names", None)
            if names:
                for row in rows:
                    value = row[column]
                    row[column] = [names[v] for v in value] if isinstance(value, list) else names[value]
        return rows
    if isinstance(data, list | tuple):
        return list(data)
    raise MtstError(f"task data must be a file path, a list, a pandas DataFrame or a datasets.Dataset, "
                    f"got {type(data).__name__}")


def _record(row: object, index: int, name: str) -> dict:
    """One row as {"text": ..., "label" | "spans": ...}."""
    if isinstance(row, Mapping):
        text = row.get("text", row.get("tokens"))
        label = row.get("label", row.get("tags", row.get("labels")))
        if "spans" in row:
            return {"text": text, "spans": row["spans"]}
        row = (text, label)
    if not isinstance(row, list | tuple) or len(row) != 2:
        raise MtstError(f"task '{name}', row {index}: give (text, label), (words, tags) or (text, spans), or "
                        f"text/label columns, got {row!r:.60}")
    text, label = row
    if isinstance(text, str) and isinstance(label, list | tuple) and all(isinstance(s, list | tuple | dict)
                                                                         for s in label):
        return {"text": text, "spans": [list(s) if isinstance(s, tuple) else s for s in label]}
    return {"text": list(text) if isinstance(text, tuple) else text,
            "label": list(label) if isinstance(label, tuple) else label}


def memory_task(name: str, data: object, directory: Path) -> dict:
    """Write in-memory rows to ``directory/<name>.jsonl``; the ``tasks`` entry reading it (dev cut off)."""
    records = [_record(row, index, name) for index, row in enumerate(_rows(data))]
    if not records:
        raise MtstError(f"task '{name}': no rows")
    spans = "spans" in records[0]
    token = spans or isinstance(records[0]["text"], list)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    source = {"path": str(path), "format": "spans" if spans else "jsonl"}
    return {"name": name, "type": TOKEN_TYPE if token else SENTENCE_TYPE,
            "data": {"source": source, "split": dict(DEV_SPLIT)}}


def task_entry(name: str, data: object, directory: Path) -> dict:
    """A task from a path (str / Path), a dict of ``train`` [/ ``dev`` / ``test``] paths (+ ``type``), or in-memory
    rows."""
    if isinstance(data, str | Path):
        return file_task(name, data)
    if isinstance(data, Mapping) and "train" in data:
        spec = f"{data['train']}:{data['type']}" if "type" in data else data["train"]
        return file_task(name, spec, {split: data.get(split) for split in SPLIT_FILES})
    return memory_task(name, data, directory)
