"""``mtst train`` through the real CLI app: success, overrides, resume and one-line errors."""

from __future__ import annotations

from pathlib import Path

import yaml
from typer.testing import CliRunner

from helpers import make_config
from mtst.cli import app

runner = CliRunner()


def write_config(tmp_path: Path, backbone: Path, **sections) -> Path:
    config = make_config(tmp_path, backbone, **sections)
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(config.model_dump(mode="json")))
    return path


def test_train_command_writes_the_run_and_prints_a_summary(tmp_path, tiny_st_dir):
    path = write_config(tmp_path, tiny_st_dir, optimizer={"max_steps": 4}, run={"checkpoint_every_steps": 2})
    out_dir = tmp_path / "elsewhere"
    result = runner.invoke(app, ["train", str(path), "--output-dir", str(out_dir)])
    assert result.exit_code == 0, result.output
    assert "best mean/main" in result.output and "4 / 4" in result.output
    assert (out_dir / "final" / "mtst_config.json").exists() and not (tmp_path / "run").exists()
    again = runner.invoke(app, ["train", str(path), "--resume", str(out_dir)])  # already finished: no more steps
    assert again.exit_code == 0, again.output


def test_bad_config_is_one_line_naming_the_key(tmp_path, tiny_st_dir):
    path = write_config(tmp_path, tiny_st_dir)
    raw = yaml.safe_load(path.read_text())
    raw["optimizer"]["learning_rate"] = 0.1
    path.write_text(yaml.safe_dump(raw))
    result = runner.invoke(app, ["train", str(path)])
    assert result.exit_code == 1
    assert result.output.count("\n") == 1 and "optimizer.learning_rate" in result.output


def test_missing_data_and_missing_config(tmp_path, tiny_st_dir):
    path = write_config(tmp_path, tiny_st_dir)
    (tmp_path / "data" / "topic.csv").unlink()
    result = runner.invoke(app, ["train", str(path)])
    assert result.exit_code == 1 and result.output.startswith("error: ") and "topic.csv" in result.output
    result = runner.invoke(app, ["train", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 1 and "config file not found" in result.output


def test_bad_resume_and_process_count(tmp_path, tiny_st_dir):
    path = write_config(tmp_path, tiny_st_dir)
    result = runner.invoke(app, ["train", str(path), "--resume", str(tmp_path / "missing")])
    assert result.exit_code == 1 and "run directory not found" in result.output
    result = runner.invoke(app, ["train", str(path), "--num-processes", "0"])
    assert result.exit_code == 1 and "at least 1" in result.output
    result = runner.invoke(app, ["train", str(path), "--mixed-precision", "fp16"])
    assert result.exit_code == 1 and result.output.count("\n") == 1 and "no or bf16" in result.output


def test_mixed_precision_flag_overrides_the_config(tmp_path, tiny_st_dir):
    path = write_config(tmp_path, tiny_st_dir, optimizer={"max_steps": 2})
    result = runner.invoke(app, ["train", str(path), "--mixed-precision", "bf16"])
    assert result.exit_code == 0, result.output
    written = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert written["run"]["mixed_precision"] == "bf16"
    assert yaml.safe_load(path.read_text())["run"]["mixed_precision"] == "no"  # the user's file is untouched
