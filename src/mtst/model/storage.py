"""The model directory format. No pickle anywhere: JSON + safetensors only.

    <dir>/mtst_config.json    format version, encoder settings, every head's type, sizes, labels
    <dir>/heads.safetensors   head weights, keys "<task>.<param>"
    <dir>/encoder/            a sentence-transformers directory: SentenceTransformer("<dir>/encoder")
                              loads it unchanged. Optional when the encoder is the untouched
                              default backbone (config backbone == "default"), to keep models small.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

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
ENCODER_DIR = "encoder"
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


def save_model(model: MultiTaskModel, path: Path, include_encoder: bool = True) -> Path:
    """Write everything into a temp dir beside ``path``, then swap it in: never half-written."""
    if not include_encoder and model.config.encoder.backbone != "default":
        raise MtstError("include_encoder=False only works for the untouched default backbone; save the encoder")
    path = path.resolve()
    with staged_dir(path) as staging:
        write_json(staging / CONFIG_FILE, model.config.model_dump(mode="json"))
        state = {key: value.detach().contiguous().cpu() for key, value in model.heads.state_dict().items()}
        save_file(state, str(staging / HEADS_FILE), metadata={"format": "pt"})
        if include_encoder:
            (staging / ENCODER_DIR).mkdir()
            write_encoder(model, staging / ENCODER_DIR)
    return path


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


def load_model(cls: type[MultiTaskModel], path: str | Path | None) -> MultiTaskModel:
    path = DEFAULT_MODEL_DIR if path in (None, "") else Path(path)
    config = read_config(path)
    encoder_dir = path / ENCODER_DIR
    if encoder_dir.is_dir():
        encoder, tokenizer, _ = load_backbone(encoder_dir)
    elif config.encoder.backbone == "default":
        encoder, tokenizer, _ = load_backbone(None)
    else:
        raise MtstError(f"{path} has no {ENCODER_DIR}/ directory; the model directory is incomplete")
    if encoder.hidden_size != config.encoder.hidden_size:
        raise MtstError(f"encoder hidden size {encoder.hidden_size} != config's {config.encoder.hidden_size} in {path}")
    model = cls(encoder, tokenizer, config)
    heads_file = path / HEADS_FILE
    if not heads_file.exists():
        raise MtstError(f"{path} has no {HEADS_FILE}; the model directory is incomplete")
    try:
        state = load_file(str(heads_file))
        model.heads.load_state_dict(state, strict=True)
    except (SafetensorError, OSError, RuntimeError) as exc:
        raise MtstError(f"corrupt or mismatched {heads_file}: {first_line(exc)}") from exc
    return model.eval()
