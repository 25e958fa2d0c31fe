"""What a run tells its user: plain progress lines without a terminal, a model card beside each saved model, and a
warning for bf16 on a CPU without native bf16."""

from __future__ import annotations

import logging
import re

import yaml

from helpers import make_config
from mtst.progress import TrainingProgress, progress_line
from mtst.training.build import check_mixed_precision, cpu_has_native_bf16
from mtst.training.recipe import train


def test_without_a_terminal_each_log_and_evaluation_is_one_line(tmp_path, tiny_st_dir, capsys) -> None:
    config = make_config(tmp_path, tiny_st_dir, optimizer={"max_steps": 4}, evaluation={"every_steps": 2})
    train(config)
    lines = capsys.readouterr().err.splitlines()
    steps = [line for line in lines if line.startswith("step ")]
    evals = [line for line in lines if line.startswith("eval ")]
    assert len(steps) == 2 and len(evals) == 2  # log_every_steps 2 of 4 steps; every_steps 2
    assert re.fullmatch(r"step 2/4 loss (topic|ner)=\d\.\d{4}.* \| [\d.]+ ex/s \| elapsed \d:\d\d:\d\d \| "
                        r"eta \d:\d\d:\d\d", steps[0]), steps[0]
    assert evals[-1].startswith("eval step 4/4: ") and "mean/main=" in evals[-1]


def test_a_terminal_gets_the_bar_and_no_lines(capsys) -> None:
    with TrainingProgress(4, 0, enabled=True, tty=True) as bar:
        bar.update(1, {"topic": 0.5}, 10.0)
        bar.record({"step": 2, "loss": {"topic": 0.5}, "examples_per_s": 10.0})
    with TrainingProgress(4, 0, enabled=False, tty=False) as bar:  # not the main process
        bar.record({"step": 2, "loss": {"topic": 0.5}})
    assert "step 2/4" not in capsys.readouterr().err


def test_progress_line_estimates_the_rest() -> None:
    line = progress_line({"step": 10, "loss": {"a": 1.0}, "examples_per_s": 5.0}, total=40, elapsed=60.0,
                         steps_done=10)
    assert line.endswith("elapsed 0:01:00 | eta 0:03:00")


def test_every_saved_model_gets_a_model_card(tmp_path, tiny_st_dir) -> None:
    config = make_config(tmp_path, tiny_st_dir, optimizer={"max_steps": 4})
    config.tasks[0].data.test = config.tasks[0].data.dev  # topic has a test split, ner has none
    train(config, command="mtst train my.yaml")
    for which in ("final", "best"):
        text = (tmp_path / "run" / which / "README.md").read_text()
        front = yaml.safe_load(text.split("---")[1])
        assert front["library_name"] == "mtst" and front["license"] and "language" in front
        assert {"token-classification", "text-classification"} <= set(front["tags"])
        assert str(tmp_path / "data" / "topic.csv") in front["datasets"]
        assert "| topic | sentence_classification | business, sports, world |" in text
        assert "train: `" in text and "| mean/main |" in text
        assert re.search(r"\| topic/accuracy \| [\d.]+ \| [\d.]+ \| [\d.]+ \|", text)  # dev best, dev last, test
        assert re.search(r"\| ner/f1 \| [\d.]+ \| [\d.]+ \|  \|", text)  # no ner test split
        assert "![training curve](training.png)" in text and (tmp_path / "run" / which / "training.png").exists()
        assert "mtst train my.yaml" in text and "max_steps: 4" in text  # the command and the config
        assert "truncated to" in text and "Language:" in text


def test_bf16_on_a_cpu_without_it_warns(tmp_path, monkeypatch, caplog) -> None:
    import torch

    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor : 0\nflags : fpu sse avx2 avx512f\n")
    assert cpu_has_native_bf16(cpuinfo) is False
    cpuinfo.write_text("processor : 0\nflags : fpu avx512f avx512_bf16\n")
    assert cpu_has_native_bf16(cpuinfo) is True
    assert cpu_has_native_bf16(tmp_path / "missing") is None
    monkeypatch.setattr("mtst.training.build.cpu_has_native_bf16", lambda: False)
    with caplog.at_level(logging.WARNING, logger="mtst"):
        check_mixed_precision("bf16", torch.device("cpu"))
        check_mixed_precision("no", torch.device("cpu"))
    assert len(caplog.records) == 1 and "37x slower" in caplog.records[0].getMessage()
