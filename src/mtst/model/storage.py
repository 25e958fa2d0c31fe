"""The model directory format, on plain values: a config, named tensor dicts and an encoder folder.
No pickle anywhere: JSON + safetensors only.

    <dir>/mtst_config.json     format version, encoder settings, every head's type, sizes, labels
    <dir>/heads.safetensors    head weights, keys "<task>.<param>"
    <dir>/branch.safetensors   the task branch's layers (models with ``branch_at``), keys "layers.<i>.<param>"
    <dir>/side.safetensors     the side network (models with ``side_reduction``, mtst.model.side)
    <dir>/encoder/             a sentence-transformers directory (written and read by mtst.model.encoder:
                               save_backbone / load_backbone). Left out when the encoder is the untouched
                               backbone: the config then references it ("default" = the packaged model, or
                               its directory) with the sha256 of its weights, checked at load time.
Heads, branch and side network may be stored as bfloat16 / float16 (``dtype``); they are read back as float32.

This module knows files and tensors, not the model: ``MultiTaskModel.save`` gathers its parts' state dicts and
a callable that writes its encoder, ``MultiTaskModel.load`` builds itself from a ``StoredModel``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from pydantic import ValidationError
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from mtst.errors import MtstError, first_line
from mtst.files import staged_dir, write_json
from mtst.model.config import CONFIG_FILE, EncoderConfig, ModelConfig, migrate
from mtst.model.tasks import task_type

HEADS_FILE = "heads.safetensors"
BRANCH_FILE = "branch.safetensors"
SIDE_FILE = "side.safetensors"
PART_FILES = {"heads": HEADS_FILE, "branch": BRANCH_FILE, "side": SIDE_FILE}  # tensor dict name -> its file
ENCODER_DIR = "encoder"
WEIGHT_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
DEFAULT_MODEL_DIR = Path(__file__).parents[1] / "pretrained" / "default"  # mtst/pretrained/default

Tensors = dict[str, torch.Tensor]


def save_model_dir(path: Path, config: ModelConfig, tensors: dict[str, Tensors],
                   write_encoder: Callable[[Path], None] | None, dtype: str = "float32") -> Path:
    """Write everything into a temp dir beside ``path``, then swap it in: never half-written.

    Args:
        config: written as given; without ``write_encoder`` it must reference the backbone (``backbone_sha256``).
        tensors: "heads" (and "branch" or "side") -> a state dict, each into its own safetensors file.
        write_encoder: fills the empty encoder/ folder it is given; None leaves encoder/ out.
        dtype: how floating-point tensors are stored: "float32", "bfloat16" or "float16".
    """
    if dtype not in WEIGHT_DTYPES:
        raise MtstError(f"unknown dtype '{dtype}'; choose one of {', '.join(WEIGHT_DTYPES)}")
    if write_encoder is None:
        _check_reference(config.encoder)
    path = path.resolve()
    with staged_dir(path) as staging:
        write_json(staging / CONFIG_FILE, config.model_dump(mode="json"))
        for part, state in tensors.items():
            save_file(_cast(state, dtype), str(staging / PART_FILES[part]), metadata={"format": "pt"})
        if write_encoder is not None:
            (staging / ENCODER_DIR).mkdir()
            write_encoder(staging / ENCODER_DIR)
    return path


def _check_reference(encoder: EncoderConfig) -> None:
    """A directory without encoder/ must be able to find its backbone again, and know its weights."""
    if encoder.backbone != "default" and not Path(encoder.backbone).is_dir():
        raise MtstError(f"include_encoder=False references the backbone by its directory, but {encoder.backbone!r} "
                        "is not one; save the encoder (include_encoder=True)")
    if not encoder.backbone_sha256:
        raise MtstError("a model directory without its encoder must record the backbone's sha256 "
                        "(encoder.backbone_sha256); save the encoder (include_encoder=True)")


def _cast(state: Tensors, dtype: str) -> Tensors:
    cast = WEIGHT_DTYPES[dtype]
    return {key: (value.to(cast) if value.is_floating_point() else value).detach().contiguous().cpu()
            for key, value in state.items()}


def read_config(path: Path) -> ModelConfig:
    """Validate a model directory's config, with one-line errors for missing/foreign/corrupt."""
    if not path.is_dir():
        raise MtstError(f"model directory not found: {path}; pass a directory written by mtst (save / train)")
    config_file = path / CONFIG_FILE
    if not config_file.exists():
        hint = " (it looks like a backbone: use it with --backbone)" if (path / "config.json").exists() else ""
        raise MtstError(f"{path} is not an mtst model directory: no {CONFIG_FILE}{hint}")
    try:
        raw = json.loads(config_file.read_text(encoding="utf-8"))
        config = ModelConfig.model_validate(migrate(raw))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MtstError(f"corrupt {config_file}: {exc}") from exc
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "config"
        raise MtstError(f"invalid {config_file}: {where}: {first['msg']}") from exc
    except ValueError as exc:
        raise MtstError(f"invalid {config_file}: {exc}") from exc
    for name, head in config.heads.items():  # what each task type allows (an unknown type names the choices)
        try:
            task_type(head.type).check(head)
        except MtstError as exc:
            raise MtstError(f"invalid {config_file}: heads.{name}: {exc}") from exc
    return config


@dataclass(frozen=True)
class StoredModel:
    """A model directory read back as plain values: what ``MultiTaskModel.load`` builds itself from."""

    path: Path
    config: ModelConfig
    encoder_source: Path | None  # the encoder's directory; None: the packaged default backbone
    tensors: dict[str, Tensors]  # "heads" (and "branch" or "side") -> state dict, float32

    def check_encoder(self, hidden_size: int) -> None:
        """The encoder found at ``encoder_source`` has the width the config was built for."""
        if hidden_size != self.config.encoder.hidden_size:
            raise MtstError(f"encoder hidden size {hidden_size} != config's {self.config.encoder.hidden_size} in "
                            f"{self.path}")

    def check_backbone(self, sha256: str) -> None:
        """A referenced backbone (no encoder/ of its own) has exactly the weights the model was trained on."""
        expected = self.config.encoder.backbone_sha256
        if expected and self.encoder_source != self.path / ENCODER_DIR and sha256 != expected:
            raise MtstError(f"the backbone in {self.encoder_source or 'the default model package'} is not the one "
                            f"{self.path} was trained on (its weights differ); pass the original backbone")

    def load_into(self, modules: dict[str, torch.nn.Module]) -> None:
        """Each stored part ("heads", "branch", "side") into the module of that name, strictly."""
        if set(modules) != set(self.tensors):
            raise MtstError(f"{self.path} stores {', '.join(self.tensors)}; the model built from it has "
                            f"{', '.join(modules)}")
        for part, state in self.tensors.items():
            load_state(modules[part], state, self.path / PART_FILES[part])


def read_model_dir(path: str | Path | None, backbone: str | Path | None = None) -> StoredModel:
    """Read a model directory (None: the one shipped with mtst): its config, where its encoder is, its tensors.

    ``backbone`` overrides where the encoder comes from (a directory that references one not found where it was).
    """
    path = DEFAULT_MODEL_DIR if path in (None, "") else Path(path)
    config = read_config(path)
    source = _encoder_source(path, config, backbone)
    parts = ["heads"] + (["branch"] if config.encoder.branch_at is not None else []) + (
        ["side"] if config.encoder.side_reduction is not None else [])
    tensors = {part: read_tensors(path / PART_FILES[part], path) for part in parts}
    return StoredModel(path=path, config=config, encoder_source=source, tensors=tensors)


def _encoder_source(path: Path, config: ModelConfig, backbone: str | Path | None) -> Path | None:
    """Where the encoder comes from: the override, the directory's own encoder/, or the referenced backbone."""
    if backbone not in (None, ""):
        return Path(backbone)
    if (path / ENCODER_DIR).is_dir():
        return path / ENCODER_DIR
    if config.encoder.backbone == "default":
        return None
    if config.encoder.backbone_sha256:
        if not Path(config.encoder.backbone).is_dir():
            raise MtstError(f"{path} references its backbone at {config.encoder.backbone} (it holds no copy), which "
                            "is not a directory here; pass it: MultiTaskModel.load(path, backbone=DIR)")
        return Path(config.encoder.backbone)
    raise MtstError(f"{path} has no {ENCODER_DIR}/ directory; the model directory is incomplete")


def read_tensors(file: Path, path: Path) -> Tensors:
    """A safetensors file of model directory ``path`` as a state dict, cast to float32 where it was stored smaller."""
    if not file.exists():
        raise MtstError(f"{path} has no {file.name}; the model directory is incomplete")
    try:
        stored = load_file(str(file))
    except (SafetensorError, OSError, RuntimeError) as exc:
        raise MtstError(f"corrupt or mismatched {file}: {first_line(exc)}") from exc
    return {key: value.float() if value.is_floating_point() else value for key, value in stored.items()}


def load_state(module: torch.nn.Module, state: Tensors, file: Path) -> None:
    """``state`` (read from ``file``) into ``module``, strictly: a one-line error when they do not match."""
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise MtstError(f"corrupt or mismatched {file}: {first_line(exc)}") from exc


def load_weights(module: torch.nn.Module, file: Path, path: Path) -> None:
    """A safetensors file of model directory ``path`` into ``module`` (strict), as float32."""
    load_state(module, read_tensors(file, path), file)
