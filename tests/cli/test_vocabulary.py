"""One vocabulary on every command: --output/-o (old names hidden but working), --threads and --device where a
model runs, mtst --version, and one line naming the extra when an optional library is missing."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.metadata import version

import pytest
import torch
from typer.main import get_command
from typer.testing import CliRunner

import mtst
import mtst.cli.export
import mtst.cli.predict
from mtst.cli import app
from mtst.extras import EXTRAS, message

runner = CliRunner()
COMMANDS = get_command(app).commands
WRITES_FILES = {"encode", "similarity", "predict", "info", "train", "evaluate", "export", "calibrate", "few-shot"}
RUNS_A_MODEL = {"encode", "similarity", "predict", "demo", "train", "evaluate", "export", "serve", "calibrate",
                "few-shot"}
ON_A_DEVICE = {"encode", "similarity", "predict", "demo", "train", "evaluate", "serve", "calibrate"}
PRECISION = ON_A_DEVICE - {"train"}  # --precision: how torch runs inference on the CPU (training is its own)
# bench (being written beside this) should join RUNS_A_MODEL once it takes --threads
HIDDEN_OLD_NAMES = {"export": "--out", "train": "--output-dir"}


def options(command: str, hidden: bool = False) -> set[str]:
    return {opt for param in COMMANDS[command].params if getattr(param, "hidden", False) == hidden
            for opt in param.opts}


def invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args], env={"COLUMNS": "100", "NO_COLOR": "1"})


def test_version_is_the_package_version():
    result = invoke("--version")
    assert result.exit_code == 0 and result.output == f"mtst {mtst.__version__}\n"
    assert mtst.__version__ == version("mtst")


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_speaks_the_same_flags(command):
    visible = options(command)
    assert ("--output" in visible and "-o" in visible) == (command in WRITES_FILES)
    assert ("--threads" in visible) == (command in RUNS_A_MODEL)
    assert ("--device" in visible) == (command in ON_A_DEVICE)
    assert ("--precision" in visible) == (command in PRECISION)
    assert not visible & {"--out", "--output-dir"}  # old names only as hidden aliases
    assert options(command, hidden=True) == ({HIDDEN_OLD_NAMES[command]} if command in HIDDEN_OLD_NAMES else set())


@pytest.mark.parametrize("flag", ["-o", "--output", "--out"])
def test_export_takes_output_and_its_old_name(monkeypatch, tmp_path, flag):
    seen = {}
    monkeypatch.setattr(mtst.cli.export, "run_export", lambda model, fmt, out, *rest: seen.setdefault("out", out))
    result = invoke("export", flag, tmp_path / "x")
    assert result.exit_code == 0, result.output
    assert seen["out"] == tmp_path / "x"


def test_export_without_an_output_is_one_line():
    result = invoke("export")
    assert result.exit_code == 1 and result.output.count("\n") == 1 and "--output/-o" in result.output


def test_similarity_and_info_write_json_with_output(tiny_st_dir, tmp_path):
    result = invoke("similarity", "a cat", "a dog", "--backbone", tiny_st_dir, "-o", tmp_path / "sims.json")
    assert result.exit_code == 0, result.output
    sims = json.loads((tmp_path / "sims.json").read_text())
    assert sims["sentences"] == ["a cat", "a dog"] and len(sims["similarity"]) == 2
    result = invoke("info", tiny_st_dir, "-o", tmp_path / "info.json")
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "info.json").read_text())["kind"] == "backbone"
    result = invoke("similarity", "a", "--backbone", tiny_st_dir, "-f", "table", "-o", tmp_path / "t.json")
    assert result.exit_code == 1 and "--format table" in result.output and not (tmp_path / "t.json").exists()


def test_device_cpu_gives_the_same_embeddings(tiny_st_dir, tmp_path):
    for name, extra in (("default", []), ("cpu", ["--device", "cpu"])):
        result = invoke("encode", "a cat", "--backbone", tiny_st_dir, "-o", tmp_path / f"{name}.jsonl", *extra)
        assert result.exit_code == 0, result.output
    assert (tmp_path / "default.jsonl").read_text() == (tmp_path / "cpu.jsonl").read_text()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without CUDA")
def test_unavailable_device_is_one_line(tiny_st_dir):
    result = invoke("encode", "a cat", "--backbone", tiny_st_dir, "--device", "cuda", "-f", "jsonl")
    assert result.exit_code == 1 and result.output.count("\n") == 1 and "CUDA is not available" in result.output


def test_encode_loads_with_the_precision_asked_for(monkeypatch, tiny_st_dir, tmp_path):
    import mtst.cli.encode
    from mtst.cli.loading import load_encoder

    seen = []

    def spy(*args):
        predictor = load_encoder(*args)
        seen.append((args[-1], predictor.runtime.model.cpu_path.precision, predictor.runtime.model.cpu_path_source))
        return predictor

    monkeypatch.setattr(mtst.cli.encode, "load_encoder", spy)
    result = invoke("encode", "a cat", "--backbone", tiny_st_dir, "--precision", "fp32", "-f", "jsonl")
    assert result.exit_code == 0, result.output
    assert seen == [("fp32", "fp32", "requested")]
    result = invoke("encode", "a cat", "--backbone", tiny_st_dir, "--precision", "fp8", "-f", "jsonl")
    assert result.exit_code == 1 and result.output.count("\n") == 1 and "unknown precision 'fp8'" in result.output


def test_device_and_threads_are_refused_where_they_cannot_apply(tiny_st_dir, tmp_path):
    result = invoke("encode", "--engine", "ray", "-i", tmp_path / "x.txt", "-o", tmp_path / "x.npy", "--device", "cpu")
    assert result.exit_code == 1 and "--device is for --engine local" in result.output
    result = invoke("train", tmp_path / "x.yaml", "--num-processes", "2", "--threads", "1")
    assert result.exit_code == 1 and "--threads is for one process" in result.output


@pytest.mark.parametrize(("args", "extra"), [
    (["serve"], "serve"),
    (["train", "x.yaml"], "train"),
    (["evaluate", "--model", "m", "--config", "c.yaml"], "train"),
    (["export", "-o", "out"], "export"),
    (["predict", "--engine", "ray", "-i", "in.txt", "-o", "out.jsonl"], "ray"),
])
def test_a_missing_extra_is_one_line_naming_it(monkeypatch, tmp_path, args, extra):
    module = EXTRAS[extra][0]
    monkeypatch.setitem(sys.modules, module, None)  # as if it were not installed
    monkeypatch.chdir(tmp_path)
    result = invoke(*args)
    assert result.exit_code == 1
    what = "--engine ray" if extra == "ray" else f"mtst {args[0]}"
    assert result.output == f"error: {message(extra, what, module)}\n"
    assert list(tmp_path.iterdir()) == []


def test_a_library_missing_deep_inside_a_command_names_its_extra(monkeypatch):
    def missing(*args, **kwargs):
        raise ModuleNotFoundError("No module named 'onnxruntime'", name="onnxruntime")

    monkeypatch.setattr(mtst.cli.predict, "load_task_model", missing)
    result = invoke("predict", "hello")
    assert result.exit_code == 1
    assert result.output == f"error: {message('export', 'mtst predict', 'onnxruntime')}\n"


def test_any_other_missing_module_is_not_hidden(monkeypatch):
    def missing(*args, **kwargs):
        raise ModuleNotFoundError("No module named 'nonexistent'", name="nonexistent")

    monkeypatch.setattr(mtst.cli.predict, "load_task_model", missing)
    result = invoke("predict", "hello")
    assert isinstance(result.exception, ModuleNotFoundError)


def test_help_imports_neither_torch_nor_transformers():
    """`mtst --help` and `import mtst` stay fast: the heavy libraries load inside the commands (timings:
    benchmarks/startup.py, docs/performance.md)."""
    script = ("import sys\nimport mtst, mtst.cli\n"
              "from mtst.cli import app\n"
              "try:\n    app(['encode', '--help'])\nexcept SystemExit:\n    pass\n"
              "heavy = sorted(m for m in ('torch', 'transformers', 'numpy', 'mtst.model') if m in sys.modules)\n"
              "print(heavy)\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "[]"
