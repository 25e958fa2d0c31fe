"""Whole-model export: encoder + pooling + normalisation + every head in one graph.

    <out>/model.onnx | openvino_model.xml + .bin   the graph: inputs input_ids, attention_mask (B, T) int64;
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
import tempfile
import warnings
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from mtst.config import CONFIG_FILE
from mtst.errors import MtstError
from mtst.storage import swap_into_place, write_json

if TYPE_CHECKING:
    from mtst.model import MultiTaskModel

EXPORT_FILE = "export.json"
ONNX_FILE = "model.onnx"
OPENVINO_FILE = "openvino_model.xml"
FORMATS = ("onnx", "openvino")
QUANTIZATIONS = (None, "int8")
OPSET = 17
INPUT_NAMES = ["input_ids", "attention_mask"]
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

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.model({"input_ids": input_ids, "attention_mask": attention_mask}, tasks=self.tasks)
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


def read_calibration(path: str | Path | None) -> list[str]:
    """Calibration sentences, one per line (default: the ~300 shipped with mtst)."""
    if path is None:
        text = resources.files("mtst").joinpath("calibration.txt").read_text(encoding="utf-8")
        where = "mtst/calibration.txt"
    else:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise MtstError(f"cannot read calibration file {path}: {exc}; pass a UTF-8 text file") from exc
        where = str(path)
    sentences = [line.strip() for line in text.splitlines() if line.strip()]
    if not sentences:
        raise MtstError(f"calibration file {where} has no sentences; give one sentence per line")
    return sentences


def _feeds(model: MultiTaskModel, sentences: list[str]) -> dict[str, np.ndarray]:
    batch = model.tokenizer.collate(model.tokenizer(sentences))
    return {name: batch[name].numpy() for name in INPUT_NAMES}


def _torch_outputs(model: MultiTaskModel, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    wrapper = ExportWrapper(model).eval()
    with torch.inference_mode():
        out = wrapper(*(torch.from_numpy(feeds[name]) for name in INPUT_NAMES))
    return [tensor.float().numpy() for tensor in out]


# ---- the graph ----------------------------------------------------------------------------
def export_onnx_graph(model: MultiTaskModel, path: Path, opset: int = OPSET) -> list[str]:
    """Trace the whole model into an fp32 ONNX file with dynamic batch and sequence axes."""
    transformer = model.encoder.transformer
    previous = transformer.config._attn_implementation
    transformer.set_attn_implementation("eager")  # SDPA's mask handling does not trace cleanly
    wrapper = ExportWrapper(model).eval()
    names = wrapper.output_names
    dynamic = {"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "sequence"}}
    for task, name in zip(wrapper.tasks, names[1:], strict=True):
        token_level = model.heads[task].reads == "token_embeddings"
        dynamic[name] = {0: "batch", 1: "sequence"} if token_level else {0: "batch"}
    dynamic["sentence_embedding"] = {0: "batch"}
    sample = model.tokenizer.collate(model.tokenizer(PARITY_SENTENCES[:2]))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer warnings about python branches on shapes
            torch.onnx.export(
                wrapper, (sample["input_ids"], sample["attention_mask"]), str(path), dynamo=False,
                opset_version=opset, input_names=INPUT_NAMES, output_names=names, dynamic_axes=dynamic,
                do_constant_folding=True,
            )
    finally:
        transformer.set_attn_implementation(previous)
    return names


ENCODER_SCOPE = "/model/encoder/"  # ONNX node names of the encoder; heads are /model/<task>/..., pooling /model/...
NOT_ENCODER = "/model/(?!encoder/)"  # the same as a regular expression (prefix match) for NNCF's ignored_scope


def quantize_onnx_int8(source: Path, target: Path) -> dict:
    """Dynamic int8 of the encoder's weight MatMuls, per-channel with reduce_range; the heads and the
    embedding table stay fp32. On MiniLM (STS-B test, batch 64): quantising the embedding Gather too cost
    0.23 Spearman (81.82 vs 82.05; fp32 82.03); per-tensor weights 81.67 and per-channel without reduce_range
    81.69 (docs/performance.md)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    graph = onnx.load(str(source), load_external_data=False).graph
    # a list of what to quantise, not of what to leave out: the quantiser renames a head's Gemm to "<name>_MatMul"
    encoder = [node.name for node in graph.node if node.op_type == "MatMul" and node.name.startswith(ENCODER_SCOPE)]
    quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8, per_channel=True, reduce_range=True,
                     op_types_to_quantize=["MatMul"], nodes_to_quantize=encoder)
    return {"method": "onnxruntime.quantize_dynamic", "weight_type": "QInt8", "per_channel": True,
            "reduce_range": True, "op_types": ["MatMul"], "fp32": "heads, embedding table"}


# NNCF int8 keeps these in floating point (regular expressions, prefix match on node names): every head and
# the FFN output projection of the first two encoder layers (BERT naming; a pattern that matches nothing is a
# no-op). The heads are small and encode() never runs them; the two projections cost ~6 % CPU time and lift task
# agreement with torch to >= 98 % on MiniLM (docs/performance.md has the sweep).
NNCF_FLOAT_SCOPE = [NOT_ENCODER, ENCODER_SCOPE + r"transformer/encoder/layer\.[01]/output/dense/"]


def convert_openvino(onnx_path: Path, target: Path, model: MultiTaskModel, quantize: str | None,
                     calibration: list[str]) -> dict:
    """ONNX -> OpenVINO IR with fp32 weights; int8 via NNCF post-training quantisation of the encoder.

    Activation ranges are the min/max over all calibration sentences (NNCF's default averages each
    sentence's extremes, which clips the sentences that go beyond the average).
    """
    import openvino as ov

    ov_model = ov.convert_model(str(onnx_path))
    settings: dict = {}
    if quantize == "int8":
        import nncf
        from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters
        from nncf.quantization.range_estimator import RangeEstimatorParametersSet

        items = [_feeds(model, [sentence]) for sentence in calibration]
        advanced = AdvancedQuantizationParameters(activations_range_estimator_params=RangeEstimatorParametersSet.MINMAX)
        ov_model = nncf.quantize(ov_model, nncf.Dataset(items), model_type=nncf.ModelType.TRANSFORMER,
                                 subset_size=len(items), advanced_parameters=advanced,
                                 ignored_scope=nncf.IgnoredScope(patterns=NNCF_FLOAT_SCOPE, validate=False))
        settings = {"method": "nncf.quantize", "model_type": "TRANSFORMER", "calibration_sentences": len(items),
                    "activation_ranges": "MINMAX", "float_scope": NNCF_FLOAT_SCOPE}
    ov.save_model(ov_model, str(target), compress_to_fp16=False)
    return settings


# ---- the public entry point -------------------------------------------------------------
def export_model(model_dir: str | Path | None, out_dir: str | Path, format: str = "onnx",
                 quantize: str | None = None, calibration: str | Path | None = None) -> Path:
    """Export a saved mtst model directory into a self-contained runtime directory.

    Args:
        model_dir: a directory written by ``MultiTaskModel.save`` (None: the shipped default model).
        out_dir: where the export goes; written in a temp dir beside it, then renamed into place.
        format: "onnx" (ONNX Runtime) or "openvino".
        quantize: None (fp32 weights) or "int8".
        calibration: sentences file (one per line) for OpenVINO int8; default: mtst/calibration.txt.
    """
    from mtst.model import MultiTaskModel
    from mtst.storage import DEFAULT_MODEL_DIR, read_config

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
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        fp32_path = staging / (ONNX_FILE if format == "onnx" and quantize is None else "fp32.onnx")
        outputs = export_onnx_graph(model, fp32_path)
        if format == "onnx":
            settings = quantize_onnx_int8(fp32_path, staging / ONNX_FILE) if quantize else {}
            graph_file = ONNX_FILE
        else:
            settings = convert_openvino(fp32_path, staging / OPENVINO_FILE, model, quantize, sentences)
            graph_file = OPENVINO_FILE
        if fp32_path.name != graph_file:
            fp32_path.unlink()
        model.tokenizer.tokenizer.save_pretrained(str(staging))
        shutil.copyfile(source / CONFIG_FILE, staging / CONFIG_FILE)
        info = {
            "format": format,
            "graph": graph_file,
            "precision": quantize or "fp32",
            "quantization": settings or None,
            "opset": OPSET,
            "inputs": INPUT_NAMES,
            "outputs": outputs,
            "source": str(source.resolve()),
            "config_sha256": file_sha256(staging / CONFIG_FILE),
            "vocab_size": int(model.encoder.transformer.get_input_embeddings().num_embeddings),
            "torch_version": torch.__version__,
        }
        write_json(staging / EXPORT_FILE, info)
        swap_into_place(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out


def parity_report(model: MultiTaskModel, predictor, sentences: list[str] | None = None) -> dict[str, float]:
    """Max |difference| per output and min embedding cosine between a torch model and an export.

    Pass a freshly loaded torch model: a model object that was just traced can drift (seen here).
    """
    feeds = _feeds(model, sentences or PARITY_SENTENCES)
    expected = _torch_outputs(model, feeds)
    got = predictor.run_graph(feeds)
    report = {}
    for name, want in zip(predictor.output_names, expected, strict=True):
        report[f"{name}/max_abs_diff"] = float(np.abs(got[name] - want).max())
    a, b = got["sentence_embedding"], expected[0]
    cosine = (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))
    report["sentence_embedding/min_cosine"] = float(cosine.min())
    return report


# ---- label agreement: does a quantised export predict what torch predicts? ------------------------
def predicted_labels(runner, sentences: list[str], batch_size: int = 64) -> list[dict]:
    """Per sentence, every task's arg-max label: a string for sentence heads, one BIO tag per word for
    token heads (the word's first sub-token, as decoding does). ``runner`` is a MultiTaskModel or an
    exported predictor; both cut the same length-sorted batches, so padding is the same on both sides."""
    from mtst.heads import first_subtokens
    from mtst.tokenization import map_batches

    heads = dict(runner.heads.items())

    def logits_of(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:  # one graph / forward run per batch
        if hasattr(runner, "run_graph"):
            out = runner.run_graph(feeds)
            return {task: out[f"logits_{task}"] for task in heads}
        return dict(zip(heads, _torch_outputs(runner, feeds)[1:], strict=True))

    def run(batch: dict[str, torch.Tensor], items, texts: list[str]) -> list[dict]:
        logits = logits_of({name: batch[name].numpy() for name in INPUT_NAMES})  # task -> (B, C) | (B, T, C)
        rows: list[dict] = [{} for _ in texts]
        for task, head in heads.items():
            best = np.asarray(logits[task]).argmax(-1)  # (B,) | (B, T)
            for row, item, winner in zip(rows, items, best, strict=True):
                if winner.ndim == 0:
                    row[task] = head.labels[int(winner)]
                else:
                    first = first_subtokens(item.word_ids)
                    row[task] = [head.labels[int(winner[first[word]])] for word in sorted(first)]
        return rows

    with torch.inference_mode():
        return map_batches(runner.tokenizer, list(sentences), batch_size, None, False, run)


def label_agreement(reference: list[dict], candidate: list[dict]) -> dict[str, float]:
    """Share of equal predictions per task. Sentence tasks: ``task`` = share of sentences. Token tasks:
    ``task`` = share of words with the same tag (the unit a token head predicts) and ``task/sentences`` =
    share of sentences whose every tag is the same (one flipped word fails the sentence)."""
    if len(reference) != len(candidate):
        raise MtstError(f"cannot compare {len(reference)} reference rows with {len(candidate)} candidate rows")
    report: dict[str, float] = {}
    for task in (reference[0] if reference else {}):
        pairs = [(ref[task], cand[task]) for ref, cand in zip(reference, candidate, strict=True)]
        if isinstance(pairs[0][0], list):
            words = [a == b for ref_tags, cand_tags in pairs for a, b in zip(ref_tags, cand_tags, strict=True)]
            report[task] = float(np.mean(words)) if words else 1.0
            report[f"{task}/sentences"] = float(np.mean([a == b for a, b in pairs]))
        else:
            report[task] = float(np.mean([a == b for a, b in pairs]))
    return report
