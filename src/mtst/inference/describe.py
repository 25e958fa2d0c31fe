"""What a model directory holds (`mtst info`): encoder settings, tasks, heads and labels, read from configs
and safetensors headers only, so it is instant even for large models and never loads weights."""

from __future__ import annotations

import json
import math
from pathlib import Path

from mtst.errors import MtstError


def describe(directory: Path | None) -> dict:
    """Facts about an mtst model directory or a plain backbone, read from configs and file headers only."""
    from mtst.model.config import CONFIG_FILE
    from mtst.model.encoder import default_backbone_path
    from mtst.model.storage import DEFAULT_MODEL_DIR, ENCODER_DIR, HEADS_FILE, read_config

    note = None
    if directory is None:  # the shipped default model, else the default backbone it would be built on
        directory = DEFAULT_MODEL_DIR
        if not (DEFAULT_MODEL_DIR / CONFIG_FILE).exists():
            directory, note = default_backbone_path(), "no trained default model installed; showing its backbone"
    if directory.is_dir() and not (directory / CONFIG_FILE).exists() and (directory / "config.json").exists():
        return {**_describe_backbone(directory), "note": note}
    from mtst.inference.export import read_export_info

    config = read_config(directory)  # one-line errors for missing, foreign and corrupt directories
    export = read_export_info(directory)
    encoder_dir = directory / ENCODER_DIR
    if not encoder_dir.is_dir() and config.encoder.backbone == "default":
        encoder_dir = default_backbone_path()
    sizes = _tensor_sizes(directory / HEADS_FILE)
    tasks = {}
    for name, head in config.heads.items():
        widths = [head.input_dim, *([head.hidden_dim] if head.hidden_dim else []), len(head.labels)]
        tasks[name] = {
            "type": head.type, "sizes": " -> ".join(map(str, widths)), "labels": head.labels,
            "parameters": sum(n for key, n in sizes.items() if key.startswith(f"{name}.")) or None,
        }
    enc = config.encoder
    kind = "mtst model" if export is None else f"mtst {export['format']} export ({export.get('precision', 'fp32')})"
    return {"path": str(directory), "kind": kind, "backbone": enc.backbone, **_encoder_facts(encoder_dir),
            "hidden_size": enc.hidden_size, "pooling": enc.pooling, "normalize": enc.normalize,
            "max_seq_length": enc.max_seq_length,  # what the heads read; the embedding reads up to the next
            "embedding_max_seq_length": enc.embedding_max_seq_length or enc.max_seq_length,
            **_branch_facts(directory, enc.branch_at),
            "backbone_sha256": enc.backbone_sha256, "trained": config.trained,
            "cpu_path": _cpu_path(config) if export is None else None, "tasks": tasks}


def _cpu_path(config) -> str:
    """How torch runs this model on this CPU with precision "auto": the probe's cached choice, else the default."""
    from mtst.model.cpu_paths import cached_entry, describe, key_for

    entry = cached_entry(key_for(config))
    if entry is None:
        return "torch-fp32 (default; not measured on this CPU: mtst bench --probe)"
    return describe(entry)


def _branch_facts(directory: Path, branch_at: int | None) -> dict:
    """branch_at, how many layers the branch holds, its parameter count and stored dtype (from the file header)."""
    from mtst.model.storage import BRANCH_FILE

    if branch_at is None:
        return {"branch_at": None}
    sizes, dtypes = _tensor_sizes(directory / BRANCH_FILE), _tensor_dtypes(directory / BRANCH_FILE)
    layers = {key.split(".")[1] for key in sizes if key.startswith("layers.")}
    return {"branch_at": branch_at, "branch_layers": len(layers) if sizes else None,
            "branch_parameters": sum(sizes.values()) or None, "branch_dtype": ", ".join(sorted(set(dtypes))) or None}


def _describe_backbone(directory: Path) -> dict:
    from transformers import AutoTokenizer

    from mtst.model.encoder import read_backbone_settings

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(directory), local_files_only=True)
    except (OSError, ValueError) as exc:
        raise MtstError(f"cannot read the tokenizer in {directory}: {str(exc).strip()[:200]}") from exc
    settings = read_backbone_settings(directory, tokenizer)
    return {"path": str(directory), "kind": "backbone", "backbone": str(directory), **_encoder_facts(directory),
            "pooling": settings.pooling, "normalize": settings.normalize, "max_seq_length": settings.max_seq_length,
            "embedding_max_seq_length": settings.max_seq_length, "trained": None, "tasks": {}}


def _encoder_facts(directory: Path) -> dict:
    if not (directory / "config.json").exists():  # an export keeps only the graph
        return {}
    try:
        hf = json.loads((directory / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise MtstError(f"cannot read {directory / 'config.json'}; the encoder directory is incomplete") from exc
    weights = _tensor_sizes(directory / "model.safetensors")
    return {"architecture": hf.get("model_type"), "layers": hf.get("num_hidden_layers"),
            "hidden_size": hf.get("hidden_size"), "parameters": sum(weights.values()) or None}


def _tensor_sizes(file: Path) -> dict[str, int]:
    """Tensor name -> element count, from the safetensors header (no weights are loaded)."""
    return {key: math.prod(shape) for key, (shape, _) in _tensor_headers(file).items()}


def _tensor_dtypes(file: Path) -> list[str]:
    return [dtype for _, dtype in _tensor_headers(file).values()]


def _tensor_headers(file: Path) -> dict[str, tuple[list[int], str]]:
    from safetensors import safe_open

    if not file.exists():
        return {}
    with safe_open(str(file), framework="np") as handle:
        return {key: (handle.get_slice(key).get_shape(), handle.get_slice(key).get_dtype()) for key in handle.keys()}
