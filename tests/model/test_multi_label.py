"""Multi-label classification: the task type, its sigmoid head, list labels in files, metrics, per-label
thresholds tuned on dev, a tiny end-to-end run through the recipe, and ONNX parity."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.metrics import f1_score

from mtst import MtstError, MultiTaskModel
from mtst.data.readers import Examples, read_examples
from mtst.data.sources import DataSource
from mtst.model.config import HeadConfig
from mtst.model.heads import MultiLabelHead
from mtst.model.tasks import TASK_TYPES, task_type
from mtst.training.config import TrainConfig
from mtst.training.evaluation import evaluate_task, main_metric
from mtst.training.recipe import train
from mtst.training.thresholds import best_threshold, tune_thresholds

LABELS = ["animal", "finance", "sport"]
ROWS = [  # text, labels joined by "|" (a row may have none)
    ("the team won the game", "sport"), ("the dog sat on the mat", "animal"),
    ("stock market fell today", "finance"), ("the team stock rose", "finance|sport"),
    ("the cat sat", "animal"), ("the dog won the game", "animal|sport"),
    ("acme corp stock fell", "finance"), ("the cat and the dog play the game", "animal|sport"),
    ("mary visited london", ""), ("market rose today", "finance"),
]
KIND = TASK_TYPES["multi_label_classification"]


def head_config(**fields) -> HeadConfig:
    return HeadConfig(type="multi_label_classification", labels=LABELS, input_dim=8, **fields)


def test_registry_entry_builds_a_sigmoid_head_that_reads_the_task_embedding():
    assert task_type("multi_label_classification") is KIND
    assert KIND.example == "text" and KIND.multi_label and KIND.predicts and not KIND.token_level
    assert KIND.main_metric == "macro_f1" and KIND.reads == "task_embedding"
    head = KIND.build_head(head_config(hidden_dim=4))
    assert isinstance(head, MultiLabelHead) and head(torch.zeros(2, 8)).shape == (2, 3)
    with pytest.raises(MtstError, match="one per label"):
        KIND.build_head(head_config(thresholds=[0.5]))
    with pytest.raises(MtstError, match="multi-label"):
        TASK_TYPES["sentence_classification"].build_head(
            HeadConfig(type="sentence_classification", labels=LABELS, input_dim=8, thresholds=[0.5] * 3))


def test_labels_targets_and_collation():
    gold = [["sport"], [], ["finance", "animal"]]
    assert KIND.infer_labels(gold) == LABELS
    names = {label: index for index, label in enumerate(LABELS)}
    rows = [KIND.target(labels, names, None) for labels in gold]
    assert rows == [[0.0, 0.0, 1.0], [0.0, 0.0, 0.0], [1.0, 1.0, 0.0]]
    targets = KIND.collate_targets(rows, {})
    assert targets.dtype == torch.float32 and targets.shape == (3, 3)


def test_loss_is_bce_with_logits():
    head = KIND.build_head(head_config())
    logits, targets = torch.randn(4, 3), torch.tensor([[1.0, 0, 0], [0, 1, 1], [0, 0, 0], [1, 1, 1]])
    expected = torch.nn.functional.binary_cross_entropy_with_logits(logits, targets)
    assert torch.allclose(head.loss(logits, targets), expected)


def test_decode_applies_each_labels_threshold():
    logits = torch.logit(torch.tensor([[0.9, 0.3, 0.6], [0.1, 0.2, 0.4]]))
    head = KIND.build_head(head_config())
    rows = head.decode(logits, [None, None], ["a", "b"])
    assert [row["labels"] for row in rows] == [["animal", "sport"], []]
    assert "label" not in rows[0] and rows[0]["scores"]["finance"] == pytest.approx(0.3)
    head = KIND.build_head(head_config(thresholds=[0.95, 0.25, 0.35]))
    assert head.best_labels(logits, [None, None]) == [["finance", "sport"], ["sport"]]


def test_metrics_equal_scikit_learns():
    gold = [["sport"], ["animal", "finance"], [], ["finance"]]
    predicted = [["sport", "animal"], ["animal"], ["finance"], ["finance"]]
    metrics = KIND.metrics("t", gold, predicted)
    truth = np.array([[0, 0, 1], [1, 1, 0], [0, 0, 0], [0, 1, 0]])
    guess = np.array([[1, 0, 1], [1, 0, 0], [0, 1, 0], [0, 1, 0]])
    for average in ("micro", "macro", "samples"):
        want = 100 * f1_score(truth, guess, average=average, zero_division=0)
        assert metrics[f"t/{average}_f1"] == pytest.approx(want)
    assert main_metric("t", "multi_label_classification") == "t/macro_f1"


def test_files_hold_label_lists(tmp_path):
    csv = tmp_path / "tags.csv"
    csv.write_text("text,label\n" + "".join(f"{text},{labels}\n" for text, labels in ROWS))
    examples = read_examples(DataSource(path=csv, format="csv"), False, multi_label=True)
    assert examples.labels[3] == ["finance", "sport"] and examples.labels[8] == []
    tsv = tmp_path / "ids.tsv"  # GoEmotions' shape: no header, comma-separated ids through label_map
    tsv.write_text("good film\t0,2\tid1\nbad film\t1\tid2\n")
    source = DataSource(path=tsv, format="tsv", header=False, text_column=0, label_column=1, label_separator=",",
                        label_map={"0": "animal", "1": "finance", "2": "sport"})
    assert read_examples(source, False, multi_label=True).labels == [["animal", "sport"], ["finance"]]
    jsonl = tmp_path / "tags.jsonl"
    jsonl.write_text('{"text": "a", "label": ["sport", "animal"]}\n{"text": "b", "label": []}\n')
    assert read_examples(DataSource(path=jsonl, format="jsonl"), False, True).labels == [["animal", "sport"], []]
    with pytest.raises(MtstError, match="one value"):  # a single-label task still wants one label
        read_examples(DataSource(path=jsonl, format="jsonl"), False)
    with pytest.raises(MtstError, match="label_separator is for multi-label"):
        read_examples(source, False)


def test_tuning_thresholds_raises_dev_f1(bare_model):
    bare_model.add_head("tags", "multi_label_classification", LABELS)
    texts = [text for text, _ in ROWS]
    dev = Examples(texts, [labels.split("|") if labels else [] for _, labels in ROWS], [f"dev:{i}" for i in range(10)])
    head = bare_model.heads["tags"]
    with torch.no_grad():  # the logits ignore the text: every label scores sigmoid(-1) ~ 0.27 < 0.5
        head.net[-1].weight.zero_()
        head.net[-1].bias.fill_(-1.0)
    before = evaluate_task(bare_model, "tags", dev)["tags/macro_f1"]
    thresholds = tune_thresholds(bare_model, "tags", dev)
    assert bare_model.config.heads["tags"].thresholds == thresholds and all(t < 0.27 for t in thresholds)
    assert evaluate_task(bare_model, "tags", dev)["tags/macro_f1"] > before == 0.0
    assert best_threshold(torch.tensor([0.9, 0.8, 0.2, 0.1]), torch.tensor([True, True, False, False])) == 0.5


def write_config(tmp_path: Path, backbone: Path) -> TrainConfig:
    data = tmp_path / "data" / "tags.csv"
    data.parent.mkdir(parents=True)
    data.write_text("text,label\n" + "".join(f"{text},{labels}\n" for text, labels in ROWS))
    source = {"path": str(data), "format": "csv"}
    return TrainConfig.model_validate({
        "model": {"backbone": str(backbone)},
        "tasks": [{"name": "tags", "type": "multi_label_classification", "hidden_dim": 8,
                   "data": {"train": source, "dev": source}}],
        "optimizer": {"lr": 1e-3, "head_lr": 1e-2, "batch_size": 4, "max_steps": 6, "warmup_ratio": 0.0},
        "evaluation": {"every_steps": 3},
        "run": {"output_dir": str(tmp_path / "run"), "seed": 7, "log_every_steps": 2},
    })


def test_train_save_load_predict_evaluate_and_export(tmp_path, tiny_st_dir):
    from mtst.inference.backends import load_predictor
    from mtst.inference.export import export_model

    result = train(write_config(tmp_path, tiny_st_dir))
    assert "tags/macro_f1" in result.best_metrics and "tags/micro_f1" in result.best_metrics
    model = MultiTaskModel.load(Path(result.output_dir) / "final")
    assert model.config.heads["tags"].labels == LABELS
    texts = [text for text, _ in ROWS]
    rows = model.predict(texts, tasks=["tags"])
    assert all(set(row["tags"]) == {"labels", "scores"} and set(row["tags"]["scores"]) == set(LABELS) for row in rows)
    dev = read_examples(DataSource(path=tmp_path / "data" / "tags.csv", format="csv"), False, multi_label=True)
    assert 0.0 <= evaluate_task(model, "tags", dev)["tags/macro_f1"] <= 100.0
    tune_thresholds(model, "tags", dev)
    model.save(tmp_path / "tuned")
    reloaded = MultiTaskModel.load(tmp_path / "tuned")
    assert reloaded.config.heads["tags"].thresholds == model.config.heads["tags"].thresholds
    want = reloaded.predict(texts, tasks=["tags"])
    assert want == model.predict(texts, tasks=["tags"])
    got = load_predictor(export_model(tmp_path / "tuned", tmp_path / "onnx")).predict(texts, tasks=["tags"])
    for ours, theirs in zip(want, got, strict=True):
        scores = [ours["tags"]["scores"][label] for label in LABELS]
        assert np.allclose(scores, [theirs["tags"]["scores"][label] for label in LABELS], atol=1e-4)
        assert ours["tags"]["labels"] == theirs["tags"]["labels"] or any(
            abs(score - t) < 1e-3 for score, t in zip(scores, reloaded.config.heads["tags"].thresholds, strict=True))
    json.dumps(got)  # rows stay plain JSON


def test_mtst_calibrate_tunes_a_multi_label_tasks_thresholds(bare_model, tmp_path):
    from mtst.cli.calibrate import run_calibrate

    bare_model.add_head("tags", "multi_label_classification", LABELS)
    bare_model.save(tmp_path / "m")
    data = tmp_path / "dev.csv"
    data.write_text("text,label\n" + "".join(f"{text},{labels}\n" for text, labels in ROWS))
    report = run_calibrate(tmp_path / "m", [f"tags={data}"], tmp_path / "tuned")
    thresholds = MultiTaskModel.load(tmp_path / "tuned").config.heads["tags"].thresholds
    assert f"tags: thresholds {thresholds}" in report and len(thresholds) == len(LABELS)


def test_the_report_gives_per_label_rows_and_the_totals(tmp_path, tiny_st_dir):
    from mtst.training.reports import evaluate_files

    result = train(write_config(tmp_path, tiny_st_dir))
    model = MultiTaskModel.load(Path(result.output_dir) / "final")
    metrics, (report,) = evaluate_files(model, {"tags": DataSource(path=tmp_path / "data" / "tags.csv", format="csv")})
    assert set(LABELS) <= set(report.per_class) and "micro avg" in report.per_class
    assert metrics["tags/macro_f1"] == evaluate_task(model, "tags", read_examples(
        DataSource(path=tmp_path / "data" / "tags.csv", format="csv"), False, multi_label=True))["tags/macro_f1"]
    assert all(isinstance(row["gold"], list) and isinstance(row["predicted"], list) for row in report.rows)


def test_chunked_predict_pools_each_labels_probability_and_applies_the_heads_thresholds(bare_model):
    bare_model.add_head("tags", "multi_label_classification", LABELS, hidden_dim=8)
    with torch.no_grad():  # random weights this small score every text alike
        bare_model.heads["tags"].net[-1].weight.mul_(100.0)
    chunk = "john smith sat on the mat . " * 6 + "the " * 4  # 46 tokens: one full window of 48 with [CLS], [SEP]
    other = "the dog sat " * 10  # a second window, unlike the first
    parts = bare_model.predict([chunk.strip(), other.strip()], tasks=["tags"])
    mean = {label: (parts[0]["tags"]["scores"][label] + parts[1]["tags"]["scores"][label]) / 2 for label in LABELS}
    assert abs(parts[0]["tags"]["scores"]["animal"] - parts[1]["tags"]["scores"]["animal"]) > 1e-4
    # a threshold just below the pooled mean keeps the label, one just above drops it: pooling reads the head's own
    bare_model.config.heads["tags"].thresholds = [mean["animal"] - 1e-3, mean["finance"] + 1e-3, 0.0]
    row = bare_model.predict(chunk + other, tasks=["tags"], chunking=True, stride=0)
    assert set(row["tags"]) == {"labels", "scores"} and "truncated" not in row
    assert row["tags"]["scores"] == pytest.approx(mean, abs=1e-5)
    assert row["tags"]["labels"] == ["animal", "sport"]


def test_training_starts_a_multi_label_head_at_its_labels_frequencies():
    """From sigmoid 0.5 a rare label's bias needs thousands of steps to reach its base rate; the recipe starts it
    there (mtst.training.build.start_at_label_frequencies)."""
    from mtst.training.build import start_at_label_frequencies

    head = MultiLabelHead(HeadConfig(type="multi_label_classification", labels=["a", "b", "c"], input_dim=4,
                                     dropout=0.0))
    gold = [["a"], ["a", "b"], [], ["a"]] * 25  # a: 75 %, b: 25 %, c: never
    start_at_label_frequencies(head, gold)
    probabilities = head.eval()(torch.zeros(1, 4)).sigmoid()[0]  # a zero feature reads the biases alone
    assert torch.allclose(probabilities[:2], torch.tensor([75.5 / 101, 25.5 / 101]), atol=1e-6)
    assert 0 < probabilities[2] < 0.01
