"""Whole-model export: parity with torch, int8 closeness, batch independence, self-contained dirs, errors."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

from helpers import export_test_model
from mtst import MtstError, MultiTaskModel
from mtst.inference.agreement import parity_report
from mtst.inference.backends import load_predictor
from mtst.inference.export import EXPORT_FILE, export_model
from mtst.inference.quantize import read_calibration

SENTENCES = [
    "John Smith visited Paris.",
    "The cat sat on the mat and the dog sat on the guitar at the market in new york today.",
    "a",
    "Stock fell!",
    "Mary works at Acme Corp in London, and John lives in Paris with a cat, a dog and a great guitar.",
]


def _has_openvino() -> bool:
    try:
        import nncf  # noqa: F401
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True


needs_openvino = pytest.mark.skipif(not _has_openvino(), reason="openvino / nncf not installed")
FORMATS = ["onnx", pytest.param("openvino", marks=needs_openvino)]


NER_LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"]


@pytest.fixture(scope="module", params=[None, 1], ids=["plain", "branch1-shapes-crf"])
def model_dir(tiny_st_dir, tmp_path_factory, request):
    """Every export test runs on a plain model and on a branched one (helpers.export_test_model)."""
    return export_test_model(tiny_st_dir, tmp_path_factory.mktemp("saved"), request.param, NER_LABELS)


@pytest.fixture(scope="module")
def exports(model_dir, tmp_path_factory):
    """Each (format, precision) exported once for the whole module, lazily."""
    cache: dict = {}

    def get(format: str, quantize: str | None = None):
        key = (format, quantize)
        if key not in cache:
            out = tmp_path_factory.mktemp("exports") / f"{format}-{quantize or 'fp32'}"
            cache[key] = export_model(model_dir, out, format=format, quantize=quantize)
        return cache[key]

    return get


def _predictor(directory, format: str):
    if format == "openvino":  # force fp32 inside OpenVINO; by default it may pick bf16 on this CPU
        from mtst.inference.runtimes import OpenVINORuntime
        from mtst.model.predictor import Predictor

        return Predictor(OpenVINORuntime(directory, inference_precision="f32"))
    return load_predictor(directory)


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))


def test_export_dir_holds_graph_tokenizer_and_config(exports):
    out = exports("onnx")
    info = json.loads((out / EXPORT_FILE).read_text())
    assert info["format"] == "onnx" and info["precision"] == "fp32" and info["opset"] == 17
    assert info["outputs"] == ["sentence_embedding", "logits_topic", "logits_ner"]
    for name in ("model.onnx", "tokenizer.json", "mtst_config.json"):
        assert (out / name).is_file(), name
    assert not list(out.glob("fp32*")), "the intermediate graph must not be left behind"


@pytest.mark.parametrize("format", FORMATS)
def test_fp32_outputs_match_torch(exports, model_dir, format):
    predictor = _predictor(exports(format), format)
    fresh = MultiTaskModel.load(model_dir)  # never the object that was traced
    report = parity_report(fresh, predictor, SENTENCES)
    for name in ("sentence_embedding", "logits_topic", "logits_ner"):
        assert report[f"{name}/max_abs_diff"] <= 1e-4, (name, report)
    assert np.abs(predictor.encode(SENTENCES) - fresh.encode(SENTENCES)).max() <= 1e-4


@pytest.mark.parametrize("format", FORMATS)
def test_predict_has_the_torch_format_and_labels(exports, model_dir, format):
    predictor = _predictor(exports(format), format)
    fresh = MultiTaskModel.load(model_dir)
    got = predictor.predict(SENTENCES, include_embedding=True)
    want = fresh.predict(SENTENCES, include_embedding=True)
    assert [set(row) for row in got] == [set(row) for row in want]
    for mine, ref in zip(got, want, strict=True):
        assert mine["text"] == ref["text"]
        assert mine["topic"]["label"] == ref["topic"]["label"]
        assert mine["topic"]["score"] == pytest.approx(ref["topic"]["score"], abs=1e-4)
        assert [(e["label"], e["start"], e["end"]) for e in mine["ner"]] == [
            (e["label"], e["start"], e["end"]) for e in ref["ner"]
        ]
        assert np.allclose(mine["embedding"], ref["embedding"], atol=1e-4)


@pytest.mark.parametrize("format", FORMATS)
def test_int8_embeddings_stay_close(exports, model_dir, format):
    """On a tiny random model only the embedding cosine is a fair check; labels are checked on the real
    model in benchmarks/speed (a random head's near-uniform scores flip on any perturbation)."""
    predictor = load_predictor(exports(format, "int8"))
    assert predictor.runtime.precision == "int8"
    reference = MultiTaskModel.load(model_dir).encode(SENTENCES)
    assert _cosines(predictor.encode(SENTENCES), reference).min() >= 0.99


@pytest.mark.parametrize("format", FORMATS)
@pytest.mark.parametrize("quantize", [None, "int8"])
def test_embedding_does_not_depend_on_batch_makeup(exports, format, quantize):
    predictor = load_predictor(exports(format, quantize))
    alone = np.stack([predictor.encode([text])[0] for text in SENTENCES])
    mixed = predictor.encode(SENTENCES, batch_size=len(SENTENCES))
    # dynamic int8 (ONNX Runtime) scales activations per batch tensor, padding included: ~0.03 on MiniLM
    limit = 5e-2 if (format, quantize) == ("onnx", "int8") else 1e-3
    assert np.abs(1 - _cosines(alone, mixed)).max() <= limit


def test_export_dir_is_self_contained(model_dir, tmp_path):
    source = tmp_path / "model"
    shutil.copytree(model_dir, source)
    exported = export_model(source, tmp_path / "exported")
    expected = MultiTaskModel.load(source).encode(SENTENCES)
    shutil.rmtree(source)
    moved = shutil.move(str(exported), str(tmp_path / "elsewhere"))
    assert np.abs(load_predictor(moved).encode(SENTENCES) - expected).max() <= 1e-4


def test_reexport_replaces_the_old_dir(model_dir, tmp_path):
    out = export_model(model_dir, tmp_path / "out")
    (out / "stale.txt").write_text("old")
    export_model(model_dir, tmp_path / "out", quantize="int8")
    assert not (out / "stale.txt").exists()
    assert json.loads((out / EXPORT_FILE).read_text())["precision"] == "int8"


# ---- errors -------------------------------------------------------------------------------
def test_exporting_a_backbone_dir_is_one_clear_error(tiny_st_dir, tmp_path):
    with pytest.raises(MtstError, match="not an mtst model directory"):
        export_model(tiny_st_dir, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_exporting_an_export_is_refused(exports, tmp_path):
    with pytest.raises(MtstError, match="already an exported model"):
        export_model(exports("onnx"), tmp_path / "out")


@pytest.mark.parametrize(("format", "quantize", "message"), [
    ("tflite", None, "unknown export format"),
    ("onnx", "int4", "unknown quantization"),
])
def test_bad_options(model_dir, tmp_path, format, quantize, message):
    with pytest.raises(MtstError, match=message):
        export_model(model_dir, tmp_path / "out", format=format, quantize=quantize)


@pytest.fixture
def copied_export(exports, tmp_path):
    return shutil.copytree(exports("onnx"), tmp_path / "copy")


def test_corrupt_graph_is_one_clear_error(copied_export):
    (copied_export / "model.onnx").write_bytes(b"this is not a protobuf")
    with pytest.raises(MtstError, match="looks corrupt"):
        load_predictor(copied_export)


def test_changed_config_is_detected(copied_export):
    config = json.loads((copied_export / "mtst_config.json").read_text())
    config["heads"]["topic"]["labels"] = ["a", "b", "c"]
    (copied_export / "mtst_config.json").write_text(json.dumps(config))
    with pytest.raises(MtstError, match="config hash differs"):
        load_predictor(copied_export)


def test_tokenizer_model_mismatch_is_detected(copied_export):
    info = json.loads((copied_export / EXPORT_FILE).read_text())
    info["vocab_size"] = 10  # as if the tokenizer came from a model with a larger vocabulary
    (copied_export / EXPORT_FILE).write_text(json.dumps(info))
    with pytest.raises(MtstError, match="tokenizer and model do not match"):
        load_predictor(copied_export)


def test_corrupt_export_json(copied_export):
    (copied_export / EXPORT_FILE).write_text("{not json")
    with pytest.raises(MtstError, match="corrupt"):
        load_predictor(copied_export)


def test_calibration_file_errors(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n")
    with pytest.raises(MtstError, match="has no sentences"):
        read_calibration(empty)
    binary = tmp_path / "binary.txt"
    binary.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(MtstError, match="cannot read calibration file"):
        read_calibration(binary)
    with pytest.raises(MtstError, match="cannot read calibration file"):
        read_calibration(tmp_path / "missing.txt")


def test_shipped_calibration_sentences():
    sentences = read_calibration(None)
    assert len(sentences) >= 250 and len(set(sentences)) == len(sentences)


@needs_openvino
def test_openvino_int8_with_calibration_file(model_dir, tmp_path):
    calibration = tmp_path / "calibration.txt"
    calibration.write_text("\n".join(SENTENCES * 4) + "\n")
    out = export_model(model_dir, tmp_path / "ov8", format="openvino", quantize="int8", calibration=calibration)
    info = json.loads((out / EXPORT_FILE).read_text())
    assert info["quantization"]["calibration_sentences"] == 20
    assert (out / "openvino_model.xml").is_file() and (out / "openvino_model.bin").is_file()


# ---- CLI ----------------------------------------------------------------------------------
@pytest.fixture
def cli():
    import typer

    from mtst.cli.export import register

    app = typer.Typer()
    register(app)

    @app.command("noop")  # a second command so typer keeps "export" as a subcommand
    def noop() -> None: ...

    return app


def test_cli_export(cli, model_dir, tmp_path):
    result = CliRunner().invoke(cli, ["export", "--model", str(model_dir), "--format", "onnx", "--quantize", "int8",
                                      "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "exported onnx int8" in result.output
    assert load_predictor(tmp_path / "out").runtime.precision == "int8"


def test_cli_export_error_is_one_line(cli, tiny_st_dir, tmp_path):
    result = CliRunner().invoke(cli, ["export", "--model", str(tiny_st_dir), "--out", str(tmp_path / "out")])
    assert result.exit_code == 1
    assert result.output.strip().count("\n") == 0 and "not an mtst model directory" in result.output


def test_cli_calibration_needs_openvino_int8(cli, model_dir, tmp_path):
    result = CliRunner().invoke(cli, ["export", "--model", str(model_dir), "--calibration", "x.txt",
                                      "--out", str(tmp_path / "out")])
    assert result.exit_code == 1 and "--calibration is only used" in result.output
