"""int8 for exported graphs: ONNX Runtime dynamic quantisation of the encoder's weight MatMuls, and OpenVINO
conversion with optional NNCF post-training quantisation calibrated on sentences."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from mtst.errors import MtstError


def read_calibration(path: str | Path | None) -> list[str]:
    """Calibration sentences, one per line (default: the ~300 shipped with mtst)."""
    if path is None:
        text = resources.files("mtst.inference").joinpath("calibration.txt").read_text(encoding="utf-8")
        where = "mtst/inference/calibration.txt"
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


ENCODER_SCOPE = "/model/encoder/"  # ONNX node names of the encoder; heads are /model/<task>/..., pooling /model/...
BRANCH_SCOPE = "/model/branch/"  # a task branch's layers (mtst.model.branch): quantised like the encoder's
NOT_ENCODER = "/model/(?!encoder/|branch/)"  # neither, as a regular expression (prefix match) for NNCF's ignored_scope


def quantize_onnx_int8(source: Path, target: Path) -> dict:
    """Dynamic int8 of the encoder's weight MatMuls, per-channel with reduce_range; the heads and the
    embedding table stay fp32. On MiniLM (STS-B test, batch 64): quantising the embedding Gather too cost
    0.23 Spearman (81.82 vs 82.05; fp32 82.03); per-tensor weights 81.67 and per-channel without reduce_range
    81.69 (benchmarks/speed/HISTORY.md, "Reading the numbers")."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    graph = onnx.load(str(source), load_external_data=False).graph
    # a list of what to quantise, not of what to leave out: the quantiser renames a head's Gemm to "<name>_MatMul"
    encoder = [node.name for node in graph.node
               if node.op_type == "MatMul" and node.name.startswith((ENCODER_SCOPE, BRANCH_SCOPE))]
    quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8, per_channel=True, reduce_range=True,
                     op_types_to_quantize=["MatMul"], nodes_to_quantize=encoder)
    return {"method": "onnxruntime.quantize_dynamic", "weight_type": "QInt8", "per_channel": True,
            "reduce_range": True, "op_types": ["MatMul"], "fp32": "heads, embedding table"}


# NNCF int8 keeps these in floating point (regular expressions, prefix match on node names): every head and
# the FFN output projection of the first two encoder layers (BERT naming; a pattern that matches nothing is a
# no-op). The heads are small and encode() never runs them; the two projections cost ~6 % CPU time and lift task
# agreement with torch to >= 98 % on MiniLM (benchmarks/speed/HISTORY.md, "int8: same predicted label as torch",
# has the sweep).
# A branched model runs the encoder's layers one by one (mtst.model.branch), so they are named
# /model/encoder/layer.<i>/... instead of /model/encoder/transformer/encoder/layer.<i>/...: the pattern takes both.
NNCF_FLOAT_SCOPE = [NOT_ENCODER, ENCODER_SCOPE + r"(transformer/encoder/)?layer\.[01]/output/dense/"]


def convert_openvino(onnx_path: Path, target: Path, quantize: str | None, calibration: list[dict]) -> dict:
    """ONNX -> OpenVINO IR with fp32 weights; int8 via NNCF post-training quantisation of the encoder,
    calibrated on ``calibration`` (one graph feed dict per sentence).

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

        advanced = AdvancedQuantizationParameters(activations_range_estimator_params=RangeEstimatorParametersSet.MINMAX)
        ov_model = nncf.quantize(ov_model, nncf.Dataset(calibration), model_type=nncf.ModelType.TRANSFORMER,
                                 subset_size=len(calibration), advanced_parameters=advanced,
                                 ignored_scope=nncf.IgnoredScope(patterns=NNCF_FLOAT_SCOPE, validate=False))
        settings = {"method": "nncf.quantize", "model_type": "TRANSFORMER", "calibration_sentences": len(calibration),
                    "activation_ranges": "MINMAX", "float_scope": NNCF_FLOAT_SCOPE}
    ov.save_model(ov_model, str(target), compress_to_fp16=False)
    return settings


