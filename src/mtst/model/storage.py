"""The model directory format. No pickle anywhere: JSON + safetensors only.

    <dir>/mtst_config.json     format version, encoder settings, every head's type, sizes, labels
    <dir>/heads.safetensors    head weights, keys "<task>.<param>"
    <dir>/branch.safetensors   the task branch's layers (models with ``branch_at``), keys "layers.<i>.<param>"
    <dir>/encoder/             a sentence-transformers directory: SentenceTransformer("<dir>/encoder")
                               loads it unchanged. Left out when the encoder is the untouched backbone:
                               the config then references it ("default" = the packaged model, or its
                               directory) with the sha256 of its weights, checked at load time.
Heads and branch may be stored as bfloat16 / float16 (``dtype``); they are loaded back as float32.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from pydantic import ValidationError
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from mtst.errors import MtstError, first_line
from mtst.files import staged_dir, write_json
from mtst.model.config import CONFIG_FILE, ModelConfig, migrate
from mtst.model.encoder import load_backbone

if TYPE_CHECKING:
    from mtst.model.multitask import MultiTaskModel

HEADS_FILE = "heads.safetensors"
BRANCH_FILE = "branch.safetensors"
ENCODER_DIR = "encoder"
WEIGHT_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
DEFAULT_MODEL_DIR = Path(__file__).parents[1] / "pretrained" / "default"  # mtst/pretrained/default


def write_encoder(model: MultiTaskModel, directory: Path) -> None:
    """The encoder as a sentence-transformers directory (Transformer -> Pooling [-> Normalize])."""
    cfg = model.config.encoder
    model.encoder.transformer.save_pretrained(str(directory), safe_serialization=True)
    model.tokenizer.tokenizer.save_pretrained(str(directory))
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    ]
    if cfg.normalize:
        modules.append({"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"})
        (directory / "2_Normalize").mkdir()
    pooling = {
        "word_embedding_dimension": cfg.hidden_size,
        "pooling_mode_cls_token": cfg.pooling == "cls",
        "pooling_mode_mean_tokens": cfg.pooling == "mean",
        "pooling_mode_max_tokens": cfg.pooling == "max",
        "pooling_mode_mean_sqrt_len_tokens": False,
    }
    (directory / "1_Pooling").mkdir()
    write_json(directory / "1_Pooling" / "config.json", pooling)
    write_json(directory / "modules.json", modules)
    write_json(directory / "sentence_bert_config.json", {"max_seq_length": cfg.max_seq_length, "do_lower_case": False})


def save_model(model: MultiTaskModel, path: Path, include_encoder: bool = True, dtype: str = "float32") -> Path:
    """Write everything into a temp dir beside ``path``, then swap it in: never half-written."""
    if dtype not in WEIGHT_DTYPES:
        raise MtstError(f"unknown dtype '{dtype}'; choose one of {', '.join(WEIGHT_DTYPES)}")
    reference = None if include_encoder else _backbone_reference(model)
    config = model.config.model_copy(deep=True)
    config.encoder.backbone_sha256 = reference
    path = path.resolve()
    with staged_dir(path) as staging:
        write_json(staging / CONFIG_FILE, config.model_dump(mode="json"))
        save_file(_weights(model.heads, dtype), str(staging / HEADS_FILE), metadata={"format": "pt"})
        if model.branch is not None:
            save_file(_weights(model.branch, dtype), str(staging / BRANCH_FILE), metadata={"format": "pt"})
        if include_encoder:
            (staging / ENCODER_DIR).mkdir()
            write_encoder(model, staging / ENCODER_DIR)
    return path


def _backbone_reference(model: MultiTaskModel) -> str:
    """The sha256 a directory without encoder/ records, once it is sure the backbone can be found again."""
    source = model.config.encoder.backbone
    if source != "default" and not Path(source).is_dir():
        raise MtstError(f"include_encoder=False references the backbone by its directory, but {source!r} is not "
                        "one; save the encoder (include_encoder=True)")
    if model.encoder.fingerprint() != model.backbone_sha256:
        raise MtstError("the encoder changed since it was loaded (it trained), so include_encoder=False would lose "
                        "it; save the encoder (include_encoder=True)")
    return model.backbone_sha256


def _weights(module: torch.nn.Module, dtype: str) -> dict[str, torch.Tensor]:
    cast = WEIGHT_DTYPES[dtype]
    return {key: (value.to(cast) if value.is_floating_point() else value).detach().contiguous().cpu()
            for key, value in module.state_dict().items()}


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
        return ModelConfig.model_validate(migrate(raw))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MtstError(f"corrupt {config_file}: {exc}") from exc
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "config"
        raise MtstError(f"invalid {config_file}: {where}: {first['msg']}") from exc
    except ValueError as exc:
        raise MtstError(f"invalid {config_file}: {exc}") from exc


def load_model(cls: type[MultiTaskModel], path: str | Path | None, backbone: str | Path | None = None
               ) -> MultiTaskModel:
    path = DEFAULT_MODEL_DIR if path in (None, "") else Path(path)
    config = read_config(path)
    source = _encoder_source(path, config, backbone)
    encoder, tokenizer, _ = load_backbone(source)
    if encoder.hidden_size != config.encoder.hidden_size:
        raise MtstError(f"encoder hidden size {encoder.hidden_size} != config's {config.encoder.hidden_size} in {path}")
    model = cls(encoder, tokenizer, config)
    expected = config.encoder.backbone_sha256
    if expected and source != path / ENCODER_DIR and model.backbone_sha256 != expected:
        raise MtstError(f"the backbone in {source or 'the default model package'} is not the one {path} was trained "
                        "on (its weights differ); pass the original backbone")
    load_weights(model.heads, path / HEADS_FILE, path)
    if model.branch is not None:
        load_weights(model.branch, path / BRANCH_FILE, path)
    return model.eval()


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


def load_weights(module: torch.nn.Module, file: Path, path: Path) -> None:
    """A safetensors file into ``module`` (strict), cast to float32 where it was stored smaller."""
    if not file.exists():
        raise MtstError(f"{path} has no {file.name}; the model directory is incomplete")
    try:
        stored = load_file(str(file))
        state = {key: value.float() if value.is_floating_point() else value for key, value in stored.items()}
        module.load_state_dict(state, strict=True)
    except (SafetensorError, OSError, RuntimeError) as exc:
        raise MtstError(f"corrupt or mismatched {file}: {first_line(exc)}") from exc
