"""Training in one call, from Python (``mtst.train``) and from ``mtst train`` alike: tasks as files or in memory,
an optional config (YAML path or dict), dotted overrides (``{"optimizer.epochs": 3}``), the recipe's defaults for
everything else.

    result = mtst.train({"intent": "data/intents.csv", "ner": "data/ner.conll"})
    result.model.predict(["book a table for two"])

Adding a task to a trained model and training only it (every other head, the branch and the embedding unchanged,
bit for bit): ``mtst.train({"intent": rows}, init_from="default", keep_existing=True)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from mtst.errors import MtstError
from mtst.training.config import TrainConfig, load_train_config
from mtst.training.inputs import task_entry
from mtst.training.plan import new_run_dir


# ---- dotted overrides --------------------------------------------------------------------------------------------
def _field_model(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside ``X | None`` / ``list[X]``, if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        if (found := _field_model(arg)) is not None:
            return found
    return None


def _check_key(key: str) -> None:
    """An unknown dotted key -> one line naming it (``tasks.<name or index>.<field>`` reaches into a task)."""
    parts, model, index = key.split("."), TrainConfig, 0
    while index < len(parts):
        part = parts[index]
        if model is None or part not in model.model_fields:
            raise MtstError(f"unknown config key '{key}' ('{part}' is not a key of "
                            f"{'.'.join(parts[:index]) or 'the config'})")
        annotation = model.model_fields[part].annotation
        index += 2 if part == "tasks" else 1  # tasks.<name>.<field>
        model = _field_model(annotation)
        if index < len(parts) and model is None:
            raise MtstError(f"unknown config key '{key}' ('{part}' takes a value, not sub-keys)")


def apply_overrides(raw: dict, overrides: Mapping[str, object]) -> dict:
    """Set each dotted key of ``overrides`` in the raw config dict (a new dict; ``raw`` is left alone)."""
    raw = yaml.safe_load(yaml.safe_dump(raw)) if raw else {}  # a deep copy of plain values
    for key, value in overrides.items():
        _check_key(key)
        parts = key.split(".")
        node, index = raw, 0
        if parts[0] == "tasks" and len(parts) > 1:  # tasks.<name or index>.<field>...
            if len(parts) < 3:
                raise MtstError(f"config key '{key}': name a field of the task, e.g. tasks.{parts[1]}.dropout")
            tasks = node.get("tasks") or []
            node = next((t for i, t in enumerate(tasks) if t.get("name") == parts[1] or str(i) == parts[1]), None)
            if node is None:
                raise MtstError(f"config key '{key}': no task '{parts[1]}'")
            index = 2
        for part in parts[index:-1]:
            if node.get(part) is None:
                node[part] = {}
            elif not isinstance(node[part], dict):
                raise MtstError(f"config key '{key}': '{part}' holds a value, not sub-keys")
            node = node[part]
        node[parts[-1]] = value
    return raw


def parse_set(items: list[str]) -> dict[str, object]:
    """``["optimizer.epochs=3", ...]`` -> ``{"optimizer.epochs": 3}``; values are YAML scalars (3, 1e-4, true, null)."""
    overrides: dict[str, object] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise MtstError(f"--set takes KEY=VALUE (e.g. optimizer.epochs=3), got '{item}'")
        try:
            parsed = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            raise MtstError(f"--set {key}: cannot parse '{value}' as a YAML value") from exc
        if isinstance(parsed, str):  # YAML 1.1 reads 1e-4 (no dot) as text
            try:
                parsed = float(parsed)
            except ValueError:
                pass
        overrides[key.strip()] = parsed
    return overrides


# ---- one config from every input ---------------------------------------------------------------------------------
def build_config(tasks: Mapping[str, object] | None = None, config: str | Path | Mapping | None = None,
                 overrides: Mapping[str, object] | None = None, data_dir: Path | None = None) -> TrainConfig:
    """A validated config: ``config`` (or the defaults), then ``tasks`` (added, or replacing ones of the same name),
    then ``overrides``. In-memory task data is written into ``data_dir`` (default: ``<run dir>/data``)."""
    if isinstance(config, str | Path):
        raw = load_train_config(config).model_dump(mode="json", exclude_unset=True)
    else:
        raw = dict(config or {})
    overrides = dict(overrides or {})
    run_keys = {k: v for k, v in overrides.items() if k.startswith("run.")}
    raw = apply_overrides(raw, run_keys)  # output_dir first: in-memory data is written into it
    if tasks:
        if raw.get("run", {}).get("output_dir") is None:
            raw.setdefault("run", {})["output_dir"] = str(new_run_dir())
        run_dir = Path(raw["run"]["output_dir"])
        if (run_dir / "metrics.jsonl").exists():  # the recipe would refuse it: write no data there first
            raise MtstError(f"{run_dir} already holds a run; choose another output directory")
        directory = data_dir or run_dir / "data"
        entries = [task_entry(name, data, directory) for name, data in tasks.items()]
        raw["tasks"] = [t for t in raw.get("tasks", []) if t.get("name") not in tasks] + entries
    raw = apply_overrides(raw, {k: v for k, v in overrides.items() if k not in run_keys})
    if not raw.get("tasks"):
        raise MtstError("no tasks: give --task NAME=PATH (or a config file with tasks)")
    try:
        return TrainConfig.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise MtstError(f"invalid config: {'.'.join(str(p) for p in first['loc'])}: {first['msg']}") from exc


@dataclass
class Trained:
    """What ``train`` returns: the trained model (the best one on dev, else the final one), its metrics and the
    run directory (config.yaml, metrics.jsonl, best/ and final/ with their model cards)."""

    model: Any  # MultiTaskModel
    metrics: dict[str, float] = field(default_factory=dict)  # the best dev evaluation, "task/metric" keys
    run_dir: Path = Path()
    result: Any = None  # the recipe's TrainResult


def model_dir(init_from: str | Path) -> Path:
    """A model directory; "default": the model shipped with mtst."""
    from mtst.model.storage import DEFAULT_MODEL_DIR

    return DEFAULT_MODEL_DIR if str(init_from) in ("", "default") else Path(init_from)


def keep_existing_overrides(init_from: str | Path, tasks: Mapping[str, object]) -> dict[str, object]:
    """Freeze the encoder (or branch) and every head of ``init_from`` that ``tasks`` does not name."""
    from mtst.model.storage import read_config

    heads = [name for name in read_config(model_dir(init_from)).heads if name not in tasks]
    return {"freezing.mode": "encoder", "freezing.heads": heads}


def train(tasks: Mapping[str, object] | None = None, config: str | Path | Mapping | None = None,
          overrides: Mapping[str, object] | None = None, output_dir: str | Path | None = None,
          init_from: str | Path | None = None, keep_existing: bool = False) -> Trained:
    """Train the recipe on ``tasks``: name -> a file path (``"data/x.csv"``, ``"data/x.csv:sentence_classification"``),
    ``{"train": path, "dev": path}``, or rows in memory (a list of (text, label) / (words, tags) / (text, spans),
    a pandas DataFrame, a ``datasets.Dataset``).

    Args:
        config: a YAML path or dict the tasks and overrides go on top of (default: the recipe's defaults).
        overrides: dotted config keys, e.g. ``{"optimizer.epochs": 3}``.
        output_dir: the run directory (default: a fresh ``runs/<date>-<time>-<n>``).
        init_from: start from a trained model directory ("default": the model shipped with mtst), keeping its heads.
        keep_existing: with ``init_from``, train only the new tasks: every other head, the branch and the
            embedding stay exactly as they were.
    """
    from mtst.model.multitask import MultiTaskModel
    from mtst.training.recipe import train as run_recipe

    overrides = dict(overrides or {})
    if output_dir is not None:
        overrides["run.output_dir"] = str(output_dir)
    if init_from is not None:
        overrides["model.init_from"] = str(model_dir(init_from))
        if keep_existing:
            overrides.update(keep_existing_overrides(init_from, tasks or {}))
    elif keep_existing:
        raise MtstError("keep_existing needs init_from (the model whose heads to keep)")
    cfg = build_config(tasks, config, overrides)
    result = run_recipe(cfg, command=f"mtst.train({sorted(tasks or {})}, overrides={overrides!r})")
    run_dir = Path(result.output_dir)
    best = run_dir / "best"
    model = MultiTaskModel.load(best if best.is_dir() else run_dir / "final")
    return Trained(model, dict(result.best_metrics), run_dir, result)
