"""``mtst train`` through the real CLI app: success, overrides, resume and one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest
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


def test_one_command_trains_from_files_with_dotted_overrides(tmp_path, tiny_st_dir):
    from helpers import write_data

    files = write_data(tmp_path / "data")
    out_dir = tmp_path / "run"
    result = runner.invoke(app, ["train", "--task", f"topic={files['topic']}", "--task", f"ner={files['ner']}",
                                 "--set", f"model.backbone={tiny_st_dir}", "--set", "optimizer.max_steps=2",
                                 "--set", "optimizer.batch_size=4", "--set", "tasks.ner.crf=false",
                                 "--output-dir", str(out_dir)])
    assert result.exit_code == 0, result.output
    written = yaml.safe_load((out_dir / "config.yaml").read_text())
    assert [t["type"] for t in written["tasks"]] == ["sentence_classification", "windowed_token_classification"]
    assert written["tasks"][1]["crf"] is False and written["optimizer"]["max_steps"] == 2
    assert written["tasks"][0]["data"]["split"]["dev"] == 0.1  # a dev split cut, no dev file given
    assert (out_dir / "final" / "README.md").exists()


def test_without_output_dir_each_run_gets_a_fresh_directory(tmp_path, tiny_st_dir, monkeypatch):
    from helpers import write_data

    files = write_data(tmp_path / "data")
    monkeypatch.chdir(tmp_path)
    args = ["train", "--task", f"topic={files['topic']}", "--set", f"model.backbone={tiny_st_dir}",
            "--set", "optimizer.max_steps=1"]
    for _ in range(2):
        assert runner.invoke(app, args).exit_code == 0
    runs = sorted((tmp_path / "runs").iterdir())
    assert len(runs) == 2 and all((run / "final").is_dir() for run in runs)


def test_dry_run_prints_the_plan_and_writes_nothing(tmp_path, tiny_st_dir, monkeypatch):
    from helpers import write_data

    files = write_data(tmp_path / "data")
    monkeypatch.chdir(tmp_path)
    before = sorted(tmp_path.rglob("*"))
    result = runner.invoke(app, ["train", "--dry-run", "--task", f"topic={files['topic']}",
                                 "--task", f"ner={files['ner']}", "--set", f"model.backbone={tiny_st_dir}"])
    assert result.exit_code == 0, result.output
    assert sorted(tmp_path.rglob("*")) == before  # no run directory, no data file, nothing
    assert "task topic (sentence_classification): train " in result.output
    assert "steps: 200 optimizer steps" in result.output and "estimated time on this machine" in result.output
    assert "precision: fp32" in result.output


@pytest.mark.parametrize(("native", "mode", "expected", "absent"), [
    (True, "no", "this CPU runs bf16 natively", "37x"), (False, "no", "precision: fp32", "natively"),
    (False, "bf16", "no native bf16 on this CPU", "runs bf16 natively"),
    (True, "bf16", "precision: bf16 autocast", "37x")])
def test_the_dry_run_says_what_precision_fits_this_cpu(monkeypatch, native, mode, expected, absent):
    import mtst.model.cpu_paths as cpu_paths
    from mtst.training.config import TrainConfig
    from mtst.training.dry_run import precision_line

    monkeypatch.setattr(cpu_paths, "cpu_has_native_bf16", lambda: native)
    config = TrainConfig.model_validate({"tasks": [{"name": "topic", "type": "sentence_classification",
                                                    "data": {"train": {"path": "x.csv", "format": "csv"}}}],
                                         "run": {"mixed_precision": mode, "device": "cpu"}})
    line = precision_line(config)
    assert expected in line and absent not in line


@pytest.mark.parametrize(("device", "cuda", "on_cpu"), [("cpu", True, True), ("auto", True, False),
                                                        ("auto", False, True), ("cuda", True, False)])
def test_one_rule_says_where_the_steps_run(monkeypatch, device, cuda, on_cpu):
    import torch

    from mtst.training.config import RunSection

    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    assert RunSection(device=device).on_cpu() is on_cpu


def test_unknown_set_key_and_missing_tasks_are_one_line(tmp_path, tiny_st_dir):
    from helpers import write_data

    files = write_data(tmp_path / "data")
    result = runner.invoke(app, ["train", "--task", f"topic={files['topic']}", "--set", "optimizer.epoch=3"])
    assert result.exit_code == 1 and result.output.count("\n") == 1
    assert "unknown config key 'optimizer.epoch'" in result.output
    result = runner.invoke(app, ["train"])
    assert result.exit_code == 1 and "--task" in result.output
    result = runner.invoke(app, ["train", "--task", "topic"])
    assert result.exit_code == 1 and "NAME=PATH" in result.output


def test_train_device_option_sets_run_device_and_refuses_a_missing_gpu(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from mtst.cli import app
    from mtst.cli.train import build_run_config

    data = tmp_path / "intents.csv"
    data.write_text("text,label\n" + "".join(f"text {i},{'ab'[i % 2]}\n" for i in range(20)))
    config = build_run_config(None, [f"intent={data}"], ["run.device=cpu"], tmp_path / "run", None)
    assert config.run.device == "cpu"
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    result = CliRunner().invoke(app, ["train", "--task", f"intent={data}", "--device", "cuda",
                                      "-o", str(tmp_path / "r")])
    assert result.exit_code == 1
    assert "run.device is cuda but no CUDA device is available here" in result.output
    assert not (tmp_path / "r").exists()
