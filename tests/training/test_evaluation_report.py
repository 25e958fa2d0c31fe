"""Per-class reports, confusion matrices and predictions (mtst.training.reports, report_files) against
scikit-learn / seqeval on the tiny model."""

from __future__ import annotations

import json

import pytest
import torch
from seqeval.metrics import classification_report
from seqeval.scheme import IOB2

from mtst.data.readers import Examples
from mtst.data.sources import DataSource
from mtst.errors import MtstError
from mtst.training.evaluation import evaluate_task
from mtst.training.report_files import (
    confusion_table,
    per_class_table,
    report_markdown,
    write_predictions,
    write_report_dir,
)
from mtst.training.reports import evaluate_files, report_task

TEXTS = ["good movie", "the stock fell today", "team won the game", "a cat sat on the mat", "john lives in paris"]
GOLD = ["world", "business", "sports", "sports", "world"]
WORDS = [["John", "Smith", "visited", "Paris"], ["Mary", "won"], ["Acme", "corp", "fell"]]
TAGS = [["B-PER", "I-PER", "O", "B-LOC"], ["B-PER", "O"], ["B-ORG", "I-ORG", "O"]]


def always(model, label: str) -> None:
    """Make the topic head answer ``label`` for every input."""
    labels = model.heads["topic"].labels
    with torch.no_grad():
        last = model.heads["topic"].net[-1]
        last.weight.zero_()
        last.bias.copy_(torch.tensor([9.0 if name == label else 0.0 for name in labels]))


def test_sentence_report_per_class_confusion_and_rows(tiny_model):
    always(tiny_model, "sports")
    report = report_task(tiny_model, "topic", Examples(TEXTS, GOLD, [f"f:{i}" for i in range(5)]), batch_size=2)
    totals = {key: value for key, value in report.metrics.items() if key != "topic/ece"}  # the report adds ECE
    assert totals == pytest.approx(evaluate_task(tiny_model, "topic", Examples(TEXTS, GOLD, ["f:1"] * 5)))
    assert 0.0 <= report.metrics["topic/ece"] <= 100.0
    assert report.labels == ["world", "sports", "business"]  # the model's label order
    assert report.confusion == [[0, 2, 0], [0, 2, 0], [0, 1, 0]]  # rows gold, columns predicted
    assert report.per_class["sports"] == pytest.approx({"precision": 40.0, "recall": 100.0, "f1": 100 * 4 / 7,
                                                        "support": 2})
    assert report.per_class["world"]["support"] == 2 and report.per_class["business"]["f1"] == 0.0
    assert {"macro avg", "weighted avg"} <= set(report.per_class)
    assert report.rows[1] == {"origin": "f:1", "text": "the stock fell today", "gold": "business",
                              "predicted": "sports", "score": pytest.approx(report.rows[1]["score"])}
    assert all(row["predicted"] == "sports" and 0.9 < row["score"] <= 1 for row in report.rows)


def test_gold_labels_the_model_lacks_get_a_row(tiny_model):
    report = report_task(tiny_model, "topic", Examples(["a", "b"], ["world", "weather"], ["f:1", "f:2"]))
    assert report.labels[-1] == "weather" and report.per_class["weather"]["recall"] == 0.0


def test_token_report_is_seqeval_strict_per_entity_type(tiny_model):
    report = report_task(tiny_model, "ner", Examples(WORDS, TAGS, ["f:1", "f:2", "f:3"]))
    predicted = [row["predicted"] for row in report.rows]
    assert [len(tags) for tags in predicted] == [4, 2, 3]
    expected = classification_report(TAGS, predicted, mode="strict", scheme=IOB2, output_dict=True, zero_division=0)
    for name in ("PER", "LOC", "ORG", "micro avg"):
        if name in expected:
            assert report.per_class[name]["f1"] == pytest.approx(100 * expected[name]["f1-score"])
            assert report.per_class[name]["support"] == expected[name]["support"]
    assert report.per_class["PER"]["support"] == 2
    assert report.metrics == pytest.approx(evaluate_task(tiny_model, "ner", Examples(WORDS, TAGS, ["f:1"] * 3)))
    assert report.labels == [] and report.rows[0]["words"] == WORDS[0] and report.rows[0]["gold"] == TAGS[0]


def test_markdown_tables():
    from mtst.training.reports import TaskReport

    report = TaskReport("topic", {"topic/accuracy": 50.0}, {"a": {"precision": 50.0, "recall": 100.0, "f1": 66.666,
                                                                  "support": 1}},
                        [], ["a", "b"], [[1, 0], [1, 0]])
    assert per_class_table(report).splitlines() == ["| label | precision | recall | f1 | support |",
                                                    "| --- | --- | --- | --- | --- |",
                                                    "| a | 50.00 | 100.00 | 66.67 | 1 |"]
    assert confusion_table(report).splitlines() == ["| gold \\ predicted | a | b |", "| --- | --- | --- |",
                                                    "| a | 1 | 0 |", "| b | 1 | 0 |"]
    text = report_markdown({"topic/accuracy": 50.0}, [report], images=True)
    assert "## topic: per class" in text and "![confusion matrix of topic](confusion-topic.png)" in text


def test_evaluate_files_writes_report_folder_and_predictions(tiny_model, tmp_path):
    (tmp_path / "topic.csv").write_text("text,label\n" + "".join(f"{t},{g}\n" for t, g in zip(TEXTS, GOLD)))
    (tmp_path / "ner.conll").write_text("\n\n".join("\n".join(f"{w} {t}" for w, t in zip(ws, ts, strict=True))
                                                    for ws, ts in zip(WORDS, TAGS, strict=True)) + "\n")
    sources = {"topic": DataSource(path=tmp_path / "topic.csv", format="csv"),
               "ner": DataSource(path=tmp_path / "ner.conll", format="conll")}
    metrics, reports = evaluate_files(tiny_model, sources)
    assert metrics["mean/main"] == pytest.approx((metrics["topic/accuracy"] + metrics["ner/f1"]) / 2)
    written = write_report_dir(tmp_path / "out", {"model": "m"}, metrics, reports)
    assert sorted(path.name for path in written) == ["confusion-topic.png", "metrics.json", "report.md"]
    assert (tmp_path / "out" / "confusion-topic.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    saved = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert saved["metrics"] == pytest.approx(metrics) and set(saved["per_class"]) == {"topic", "ner"}
    assert saved["confusion"]["topic"]["labels"] == ["world", "sports", "business"]
    write_predictions(tmp_path / "predictions.jsonl", reports)
    rows = [json.loads(line) for line in (tmp_path / "predictions.jsonl").read_text().splitlines()]
    assert [row["task"] for row in rows] == ["topic"] * 5 + ["ner"] * 3
    assert rows[0]["text"] == TEXTS[0] and rows[5]["words"] == WORDS[0] and rows[5]["gold"] == TAGS[0]


def test_report_errors(tiny_model):
    with pytest.raises(MtstError, match="task 'intent' is not in the model"):
        report_task(tiny_model, "intent", Examples(["a"], ["b"], ["f:1"]))
    with pytest.raises(MtstError, match="no examples to evaluate"):
        report_task(tiny_model, "topic", Examples([], [], []))
    with pytest.raises(MtstError, match="no data to evaluate"):
        evaluate_files(tiny_model, {})
