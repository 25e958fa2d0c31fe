"""``mtst evaluate --model DIR --data task=PATH[:FORMAT]``: no config, reports and predictions on disk, the old
``--config`` form, and one-line errors that write nothing (mtst.cli.evaluate)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from mtst.cli import app

TOPIC = [("the stock fell", "business"), ("team won", "sports"), ("john lives in paris", "world"),
         ("good game", "sports")]
SPANS = [{"text": "John Smith visited Paris", "spans": [[0, 10, "PER"], [19, 24, "LOC"]]},
         {"text": "Mary won", "spans": [{"start": 0, "end": 4, "label": "PER"}]}]


@pytest.fixture
def saved(tiny_model, tmp_path):
    """(model dir, data dir) with topic.csv, ner.conll, ner.txt (CoNLL by another name) and ner.jsonl (spans)."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "topic.csv").write_text("text,label\n" + "".join(f"{t},{g}\n" for t, g in TOPIC), encoding="utf-8")
    conll = "John B-PER\nSmith I-PER\nvisited O\nParis B-LOC\n\nMary B-PER\nwon O\n"
    (data / "ner.conll").write_text(conll, encoding="utf-8")
    (data / "ner.data").write_text(conll, encoding="utf-8")
    (data / "ner.jsonl").write_text("".join(json.dumps(row) + "\n" for row in SPANS), encoding="utf-8")
    return tiny_model.save(tmp_path / "model"), data


def invoke(*args: str):
    return CliRunner().invoke(app, ["evaluate", *args])


def test_data_without_config_writes_report_folder_and_predictions(saved, tmp_path):
    model, data = saved
    result = invoke("--model", str(model), "--data", f"topic={data / 'topic.csv'}", "--data",
                    f"ner={data / 'ner.conll'}", "-o", str(tmp_path / "report"), "--predictions",
                    str(tmp_path / "predictions.jsonl"))
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[:3] == ["## Totals (percent)", "",
                         "| task | accuracy | macro_f1 | ece | precision | recall | f1 | main |"]
    assert "## topic: per class (percent; support = count)" in result.stdout
    assert "## ner: per entity type (percent; support = count)" in result.stdout
    assert "| gold \\ predicted | world | sports | business |" in result.stdout
    assert sorted(p.name for p in (tmp_path / "report").iterdir()) == ["confusion-topic.png", "metrics.json",
                                                                       "report.md"]
    report = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert report["data"] == {"topic": str(data / "topic.csv"), "ner": str(data / "ner.conll")}
    assert report["per_class"]["ner"]["PER"]["support"] == 2
    rows = [json.loads(line) for line in (tmp_path / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 6 and set(rows[0]) == {"task", "origin", "text", "gold", "predicted", "score"}
    assert set(rows[4]) == {"task", "origin", "words", "gold", "predicted"}


def test_spans_jsonl_and_explicit_format(saved, tmp_path):
    model, data = saved
    spans = invoke("--model", str(model), "--data", f"ner={data / 'ner.jsonl'}", "-o", str(tmp_path / "a.json"))
    named = invoke("--model", str(model), "--data", f"ner={data / 'ner.data'}:conll", "-o", str(tmp_path / "b.json"))
    assert spans.exit_code == 0 and named.exit_code == 0, spans.output + named.output
    first, second = (json.loads((tmp_path / name).read_text()) for name in ("a.json", "b.json"))
    assert first["metrics"] == pytest.approx(second["metrics"])  # the same sentences, from spans and from CoNLL
    assert first["per_class"]["ner"]["PER"]["support"] == 2


def test_config_form_keeps_working(saved, tmp_path):
    import yaml

    model, data = saved
    config = {"tasks": [{"name": "topic", "type": "sentence_classification",
                         "data": {"train": {"path": str(data / "topic.csv"), "format": "csv"},
                                  "test": {"path": str(data / "topic.csv"), "format": "csv"}}}],
              "optimizer": {"max_steps": 1}}
    (tmp_path / "train.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    result = invoke("--model", str(model), "--config", str(tmp_path / "train.yaml"), "-o", str(tmp_path / "m.json"))
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == "| task | accuracy | macro_f1 | main |"
    assert json.loads((tmp_path / "m.json").read_text())["split"] == "test"
    result = invoke("--model", str(model), "--config", str(tmp_path / "train.yaml"), "--predictions",
                    str(tmp_path / "p.jsonl"))
    assert result.exit_code == 0, result.output
    assert len((tmp_path / "p.jsonl").read_text().splitlines()) == len(TOPIC)


@pytest.mark.parametrize(("args", "message"), [
    (["--data", "topic={data}/missing.csv"], "error: task 'topic': {data}/missing.csv: file not found"),
    (["--data", "intent={data}/topic.csv"], "error: --data 'intent={data}/topic.csv': task 'intent' is not in the "
                                            "model; its tasks are: topic, ner"),
    (["--data", "topic"], "error: --data 'topic': expected TASK=PATH or TASK=PATH:FORMAT"),
    (["--data", "topic={data}/bad.csv"], "error: task 'topic': {data}/bad.csv:1: no column 'label'"),
    (["--data", "topic={data}/empty.csv"], "error: task 'topic': {data}/empty.csv: no examples below the header"),
    (["--data", "ner={data}/bad.conll"], "error: task 'ner': {data}/bad.conll:2: expected 2 columns (as on line 1)"),
    (["--data", "ner={data}/overlap.jsonl"], "error: task 'ner': {data}/overlap.jsonl:1: span [5, 10] 'Smith' "
                                             "overlaps another span"),
    (["--data", "ner={data}/range.jsonl"], "error: task 'ner': {data}/range.jsonl:1: span [0, 99] is out of range"),
    (["--data", "topic={data}/topic.xlsx"], "error: {data}/topic.xlsx: cannot tell the format from the name"),
    ([], "error: give either --data TASK=PATH (one per task) or --config CONFIG"),
])
def test_errors_are_one_line_and_write_nothing(saved, tmp_path, args, message):
    model, data = saved
    (data / "bad.csv").write_text("text,tag\na,b\n", encoding="utf-8")
    (data / "empty.csv").write_text("text,label\n", encoding="utf-8")
    (data / "bad.conll").write_text("John B-PER\nSmith NNP I-PER\n", encoding="utf-8")
    for name, spans in (("overlap", [[0, 10, "PER"], [5, 10, "PER"]]), ("range", [[0, 99, "PER"]])):
        (data / f"{name}.jsonl").write_text(json.dumps({"text": "John Smith", "spans": spans}) + "\n")
    args = [arg.format(data=data) for arg in args]
    result = invoke("--model", str(model), *args, "-o", str(tmp_path / "out"), "--predictions",
                    str(tmp_path / "p.jsonl"))
    assert result.exit_code == 1
    assert result.stderr.startswith(message.format(data=data)), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists() and not (tmp_path / "p.jsonl").exists()
