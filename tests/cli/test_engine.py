"""``--engine`` on ``mtst encode`` / ``mtst predict``: every bad command line or unreadable input is one
``error: ...`` line naming the problem and the fix, exit code 1, and nothing written. All of these are caught
before a Ray cluster is started or joined."""

from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from mtst.cli import app

runner = CliRunner()
HAS_RAY = importlib.util.find_spec("ray") is not None


@pytest.fixture
def model_dir(tiny_model, tmp_path_factory):
    return tiny_model.save(tmp_path_factory.mktemp("engine") / "model")


CASES = {
    "unknown engine": (["encode", "-i", "{txt}", "-o", "{out}.npy", "--engine", "spark"], "unknown engine 'spark'"),
    "address without ray": (["encode", "-i", "{txt}", "-o", "{out}.npy", "--address", "auto"],
                            "--address is for --engine ray"),
    "sentences on ray": (["encode", "a sentence", "-o", "{out}.npy", "--engine", "ray"], "reads --input PATH"),
    "stdin on ray": (["encode", "-i", "-", "-o", "{out}.npy", "--engine", "ray"], "reads --input PATH"),
    "no output": (["encode", "-i", "{txt}", "--engine", "ray"], "needs --output"),
    "processes on ray": (["encode", "-i", "{txt}", "-o", "{out}.npy", "--engine", "ray", "--num-processes", "2"],
                         "--num-processes is for --engine local"),
    "format on ray": (["encode", "-i", "{txt}", "-o", "{out}.npy", "--engine", "ray", "--format", "npy"],
                      "--format is for --engine local"),
    "missing input": (["encode", "-i", "{tmp}/nope.txt", "-o", "{out}.npy", "--engine", "ray"], "input not found"),
    "not utf-8": (["encode", "-i", "{bad}", "-o", "{out}.npy", "--engine", "ray"], "not UTF-8 text"),
    "corrupt parquet": (["encode", "-i", "{parquet}", "-o", "{out}.npy", "--engine", "ray"], "as Parquet"),
    "bad output name": (["encode", "-i", "{txt}", "-o", "{out}.csv", "--engine", "ray"], "cannot tell the output"),
    "predictions into npy": (["predict", "-i", "{txt}", "-o", "{out}.npy", "--model", "{model}", "--engine", "ray"],
                             "holds embeddings only"),
    "unknown task": (["predict", "-i", "{txt}", "-o", "{out}.jsonl", "--model", "{model}", "--tasks", "nope",
                      "--engine", "ray"], "unknown task 'nope'"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_ray_command_lines_are_one_line_errors_and_write_nothing(case, model_dir, tiny_st_dir, tmp_path):
    if not HAS_RAY and case not in ("unknown engine", "address without ray"):
        pytest.skip("ray is not installed: every --engine ray command reports that instead")
    files = {"txt": tmp_path / "in.txt", "bad": tmp_path / "bad.txt", "parquet": tmp_path / "broken.parquet"}
    files["txt"].write_text("the cat sat\n", encoding="utf-8")
    files["bad"].write_bytes(b"caf\xe9\n")
    files["parquet"].write_bytes(b"PAR1 not really")
    args, fragment = CASES[case]
    values = {**files, "out": tmp_path / "out", "tmp": tmp_path, "model": model_dir}
    args = [arg.format(**values) for arg in args]
    if args[0] == "encode" and "--model" not in args:
        args += ["--backbone", str(tiny_st_dir)]
    result = runner.invoke(app, args)
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert fragment in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.txt", "broken.parquet", "in.txt"]


def test_without_ray_installed_the_error_says_how_to_get_it(monkeypatch, tiny_st_dir, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now fails as if it were not installed
    source = tmp_path / "in.txt"
    source.write_text("the cat sat\n", encoding="utf-8")
    result = runner.invoke(app, ["encode", "-i", str(source), "-o", str(tmp_path / "o.npy"), "--engine", "ray",
                                 "--backbone", str(tiny_st_dir)])
    assert result.exit_code == 1
    assert result.stderr == ("error: --engine ray needs the 'ray' extra: pip install 'mtst[ray]' "
                             "(no module named 'ray')\n")
    assert [p.name for p in tmp_path.iterdir()] == ["in.txt"]


@pytest.mark.skipif(not HAS_RAY, reason="ray is not installed")
def test_an_empty_input_gives_an_empty_array_without_starting_ray(tiny_st_dir, tmp_path):
    import ray

    source = tmp_path / "empty.txt"
    source.write_bytes(b"")
    result = runner.invoke(app, ["encode", "-i", str(source), "-o", str(tmp_path / "o.npy"), "--engine", "ray",
                                 "--backbone", str(tiny_st_dir)])
    assert result.exit_code == 0, result.output
    assert np.load(tmp_path / "o.npy").shape == (0, 32) and not ray.is_initialized()
