"""Whole-model export: encoder + pooling + normalisation + every head in one graph.

    <out>/model.onnx | openvino_model.xml + .bin   the graph: inputs input_ids, attention_mask (B, T) int64, and
                                                   shape_ids (B, T) int64 when a token head reads word shapes;
                                                   outputs sentence_embedding (B, H) and logits_<task>
                                                   ((B, C) sentence heads, (B, T, C) token heads)
    <out>/tokenizer.json, vocab.txt, ...           the tokenizer, so the folder is self-contained
    <out>/mtst_config.json                         the model's config (labels, pooling, max length)
    <out>/export.json                              format, precision, opset, source, config hash, vocab size

Export is its own module, never a method on the model. ONNX goes through the TorchScript exporter
(``dynamo=False``) with eager attention, which exports cleanly at opset 17; OpenVINO converts that ONNX
file. int8 is ONNX Runtime dynamic quantisation with per-channel weights, or NNCF post-training
quantisation calibrated on sentences for OpenVINO.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from mtst.errors import MtstError
from mtst.files import staged_dir, write_json
from mtst.inference.quantize import convert_openvino, quantize_onnx_int8, read_calibration
from mtst.model.config import CONFIG_FILE, ModelConfig
from mtst.model.storage import HEADS_FILE
from mtst.model.tasks import task_type

if TYPE_CHECKING:
    from mtst.model.multitask import MultiTaskModel

EXPORT_FILE = "export.json"
ONNX_FILE = "model.onnx"
OPENVINO_FILE = "openvino_model.xml"
FORMATS = ("onnx", "openvino")
QUANTIZATIONS = (None, "int8")
OPSET = 17
INPUT_NAMES = ["input_ids", "attention_mask"]  # every graph; the embedding needs no more
SHAPE_INPUT = "shape_ids"  # (B, T) int64, an input only when a token head reads word shapes
PARITY_SENTENCES = [
    "The cat sat on the mat.",
    "John Smith visited Paris and London last year to meet the team at Acme Corp.",
    "Stocks fell today.",
    "a",
]


class ExportWrapper(nn.Module):
    """Positional tensors in, a flat tuple out: (sentence_embedding, logits of each task in order)."""

    def __init__(self, model: MultiTaskModel):
        super().__init__()
        self.model = model
        self.tasks = list(model.tasks)

    @property
    def output_names(self) -> list[str]:
        return ["sentence_embedding"] + [f"logits_{task}" for task in self.tasks]

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                shape_ids: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
        features = {"input_ids": input_ids, "attention_mask": attention_mask}
        if shape_ids is not None:
            features[SHAPE_INPUT] = shape_ids
        out = self.model(features, tasks=self.tasks)
        return (out["sentence_embedding"], *(out["logits"][task] for task in self.tasks))  # (B, H), (B, [T,] C)...


# ---- small helpers ------------------------------------------------------------------------
def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_export_info(directory: Path) -> dict | None:
    """export.json of an exported directory, or None when the directory is not an export."""
    info_file = directory / EXPORT_FILE
    if not info_file.exists():
        return None
    try:
        info = json.loads(info_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MtstError(f"corrupt {info_file}: {exc}; export the model again") from exc
    if not isinstance(info, dict) or info.get("format") not in FORMATS:
        raise MtstError(f"{info_file} names no known format ({', '.join(FORMATS)}); export the model again")
    return info


def graph_inputs(config: ModelConfig) -> list[str]:
    """The graph's inputs for a model: ids and mask, plus shape_ids when a head reads word shapes."""
    return INPUT_NAMES + ([SHAPE_INPUT] if any(head.word_shape_dim for head in config.heads.values()) else [])


def feeds_for(model: MultiTaskModel, sentences: list[str]) -> dict[str, np.ndarray]:
    batch = model.tokenizer.collate(model.tokenizer(sentences))
    return {name: batch[name].numpy() for name in graph_inputs(model.config)}


def torch_outputs(model: MultiTaskModel, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    wrapper = ExportWrapper(model).eval()
    with torch.inference_mode():
        out = wrapper(*(torch.from_numpy(feeds[name]) for name in graph_inputs(model.config)))
    return [tensor.float().numpy() for tensor in out]


# ---- the graph ----------------------------------------------------------------------------
def export_onnx_graph(model: MultiTaskModel, path: Path, opset: int = OPSET) -> list[str]:
    """Trace the whole model into an fp32 ONNX file with dynamic batch and sequence axes."""
    transformer = model.encoder.transformer
    previous = transformer.config._attn_implementation
    transformer.set_attn_implementation("eager")  # SDPA's mask handling does not trace cleanly
    wrapper = ExportWrapper(model).eval()
    names = wrapper.output_names
    inputs = graph_inputs(model.config)
    dynamic = {name: {0: "batch", 1: "sequence"} for name in inputs}
    for task, name in zip(wrapper.tasks, names[1:], strict=True):
        token_level = task_type(model.config.heads[task].type).token_level
        dynamic[name] = {0: "batch", 1: "sequence"} if token_level else {0: "batch"}
    dynamic["sentence_embedding"] = {0: "batch"}
    sample = model.tokenizer.collate(model.tokenizer(PARITY_SENTENCES[:2]))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer warnings about python branches on shapes
            torch.onnx.export(
                wrapper, tuple(sample[name] for name in inputs), str(path), dynamo=False,
                opset_version=opset, input_names=inputs, output_names=names, dynamic_axes=dynamic,
                do_constant_folding=True,
            )
    finally:
        transformer.set_attn_implementation(previous)
    return names


# ---- the public entry point -------------------------------------------------------------
def export_model(model_dir: str | Path | None, out_dir: str | Path, format: str = "onnx",
                 quantize: str | None = None, calibration: str | Path | None = None) -> Path:
    """Export a saved mtst model directory into a self-contained runtime directory.

    Args:
        model_dir: a directory written by ``MultiTaskModel.save`` (None: the shipped default model).
        out_dir: where the export goes; written in a temp dir beside it, then renamed into place.
        format: "onnx" (ONNX Runtime) or "openvino".
        quantize: None (fp32 weights) or "int8".
        calibration: sentences file (one per line) for OpenVINO int8; default: mtst/inference/calibration.txt.
    """
    from mtst.model.multitask import MultiTaskModel
    from mtst.model.storage import DEFAULT_MODEL_DIR, read_config

    if format not in FORMATS:
        raise MtstError(f"unknown export format '{format}'; choose one of {', '.join(FORMATS)}")
    if quantize not in QUANTIZATIONS:
        raise MtstError(f"unknown quantization '{quantize}'; use int8 or leave it out for fp32")
    source = DEFAULT_MODEL_DIR if model_dir in (None, "") else Path(model_dir)
    if read_export_info(source) is not None:
        raise MtstError(f"{source} is already an exported model; export from the original mtst model directory")
    read_config(source)  # one-line errors for a missing / foreign / corrupt model directory
    sentences = read_calibration(calibration) if format == "openvino" and quantize == "int8" else []
    model = MultiTaskModel.load(source)
    out = Path(out_dir).resolve()
    with staged_dir(out) as staging:
        fp32_path = staging / (ONNX_FILE if format == "onnx" and quantize is None else "fp32.onnx")
        outputs = export_onnx_graph(model, fp32_path)
        if format == "onnx":
            settings = quantize_onnx_int8(fp32_path, staging / ONNX_FILE) if quantize else {}
            graph_file = ONNX_FILE
        else:
            calibration_feeds = [feeds_for(model, [sentence]) for sentence in sentences]
            settings = convert_openvino(fp32_path, staging / OPENVINO_FILE, quantize, calibration_feeds)
            graph_file = OPENVINO_FILE
        if fp32_path.name != graph_file:
            fp32_path.unlink()
        model.tokenizer.tokenizer.save_pretrained(str(staging))
        shutil.copyfile(source / CONFIG_FILE, staging / CONFIG_FILE)
        shutil.copyfile(source / HEADS_FILE, staging / HEADS_FILE)  # decoding parameters (a CRF's transitions)
        info = {
            "format": format,
            "graph": graph_file,
            "precision": quantize or "fp32",
            "quantization": settings or None,
            "opset": OPSET,
            "inputs": graph_inputs(model.config),
            "outputs": outputs,
            "source": str(source.resolve()),
            "config_sha256": file_sha256(staging / CONFIG_FILE),
            "vocab_size": int(model.encoder.transformer.get_input_embeddings().num_embeddings),
            "torch_version": torch.__version__,
        }
        write_json(staging / EXPORT_FILE, info)
    return out


