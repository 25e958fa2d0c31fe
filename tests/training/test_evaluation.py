"""Metrics against scikit-learn / seqeval / scipy on controlled predictions, evaluate_all, the table and the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr
from seqeval.metrics import classification_report
from seqeval.scheme import IOB2
from sklearn.metrics import accuracy_score, f1_score
from typer.testing import CliRunner

from mtst.data.readers import Examples
from mtst.data.sources import DataSource
from mtst.errors import MtstError
from mtst.training.config import TrainConfig
from mtst.training.evaluation import evaluate_all, evaluate_task, main_metric, markdown_table, sts_spearman

NER = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"]  # the tiny_model's ner labels
# The fake forward below predicts a tag from each token alone, so every expected tag is known.
TOKEN_TAGS = {"john": "B-PER", "mary": "B-PER", "smith": "I-PER", "paris": "B-LOC", "london": "B-LOC",
              "##believ": "B-PER", "acme": "B-ORG"}


def control_ner(model, monkeypatch) -> None:
    """Replace the forward pass: ner logits (B, T, C) are one-hot on TOKEN_TAGS of each input id."""
    vocab = model.tokenizer.tokenizer.convert_ids_to_tokens

    def forward(features, tasks=None, labels=None, embedding=True):
        ids = features["input_ids"]  # (B, T)
        logits = torch.zeros((*ids.shape, len(NER)))  # (B, T, C)
        for row in range(ids.shape[0]):
            for position, token in enumerate(vocab(ids[row].tolist())):
                logits[row, position, NER.index(TOKEN_TAGS.get(token, "O"))] = 5.0
        return {"logits": {"ner": logits}}

    monkeypatch.setattr(model, "forward", forward)


def test_sentence_metrics_agree_with_scikit_learn_and_predict(tiny_model):
    texts = ["good movie", "the stock fell today", "team won the game", "a cat sat on the mat", "john lives in paris"]
    gold = ["world", "business", "sports", "sports", "world"]
    metrics = evaluate_task(tiny_model, "topic", Examples(texts, gold, ["f:1"] * 5), batch_size=2)
    predicted = [row["topic"]["label"] for row in tiny_model.predict(texts, tasks=["topic"])]
    assert metrics == pytest.approx({
        "topic/accuracy": 100 * accuracy_score(gold, predicted),
        "topic/macro_f1": 100 * f1_score(gold, predicted, average="macro", zero_division=0),
    })


def test_sentence_metrics_with_forced_predictions(tiny_model):
    with torch.no_grad():
        last = tiny_model.heads["topic"].net[-1]
        last.weight.zero_()
        last.bias.copy_(torch.tensor([0.0, 9.0, 0.0]))  # always "sports"
    gold = ["sports", "world", "sports", "business"]
    metrics = evaluate_task(tiny_model, "topic", Examples(["a", "b", "c", "d"], gold, ["f:1"] * 4))
    assert metrics["topic/accuracy"] == pytest.approx(50.0)
    # macro F1 over {business, sports, world}: sports P=2/4 R=1 -> F1 2/3; the other two 0
    assert metrics["topic/macro_f1"] == pytest.approx(100 * (2 / 3) / 3)


def test_token_metrics_are_strict_entity_level_from_first_subtokens(tiny_model, monkeypatch):
    control_ner(tiny_model, monkeypatch)
    words = [["John", "Smith", "visited", "Paris"], ["Mary", "unbelievable", "London"], ["Acme", "corp", "won"]]
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-PER", "O", "B-LOC"], ["B-ORG", "I-ORG", "O"]]
    # predicted: [B-PER I-PER O B-LOC], [B-PER O B-LOC] ("un" decides, not "##believ"), [B-ORG O O]
    metrics = evaluate_task(tiny_model, "ner", Examples(words, gold, ["f:1"] * 3), batch_size=2)
    assert metrics == pytest.approx({"ner/precision": 80.0, "ner/recall": 80.0, "ner/f1": 80.0})
    predicted = [["B-PER", "I-PER", "O", "B-LOC"], ["B-PER", "O", "B-LOC"], ["B-ORG", "O", "O"]]
    report = classification_report(gold, predicted, mode="strict", scheme=IOB2, output_dict=True)
    assert metrics["ner/f1"] == pytest.approx(100 * report["micro avg"]["f1-score"])


def test_words_past_the_window_are_read_in_windows_not_lost(tiny_model, monkeypatch):
    control_ner(tiny_model, monkeypatch)
    tiny_model.config.encoder.max_seq_length = 4  # [CLS] john smith [SEP]: "paris" needs a second window
    gold = [["John", "Smith", "Paris"]], [["B-PER", "I-PER", "B-LOC"]]
    metrics = evaluate_task(tiny_model, "ner", Examples(*gold, ["f:1"]))
    assert metrics == pytest.approx({"ner/precision": 100.0, "ner/recall": 100.0, "ner/f1": 100.0})


def test_evaluation_restores_training_mode_and_is_deterministic(tiny_model):
    tiny_model.train()
    examples = Examples(["good movie", "team won", "stock fell"], ["world", "sports", "business"], ["f:1"] * 3)
    first = evaluate_task(tiny_model, "topic", examples)
    assert tiny_model.training and tiny_model.heads["topic"].training
    assert evaluate_task(tiny_model, "topic", examples) == first  # dropout off while evaluating


def test_main_metric_and_unknown_task(tiny_model):
    assert main_metric("ner", "token_classification") == "ner/f1"
    assert main_metric("topic", "sentence_classification") == "topic/accuracy"
    with pytest.raises(MtstError, match="task 'sentiment' is not in the model"):
        evaluate_task(tiny_model, "sentiment", Examples(["a"], ["b"], ["f:1"]))


STS_ROWS = [
    ("a cat sat on the mat", "a dog sat on the mat", 4.0),
    ("john lives in paris", "mary lives in london", 2.5),
    ("the stock fell today", "team won the game", 0.2),
    ("good movie", "great film", 3.8),
    ("the man play guitar", "a man play guitar", 4.8),
    ("john lives in paris", "the stock rose", 0.0),
]


def write_sts(tmp_path):
    lines = [f"g\tsrc\t2012\t{i:04d}\t{score:.3f}\t{a}\t{b}" + ("\textra\tcols" if i % 2 else "")
             for i, (a, b, score) in enumerate(STS_ROWS)]
    path = tmp_path / "sts-test.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return DataSource(path=path, format="tsv", header=False, text_column=5, text_pair_column=6, label_column=4)


def test_sts_spearman_matches_scipy(tiny_model, tmp_path):
    source = write_sts(tmp_path)
    first = tiny_model.encode([a for a, _, _ in STS_ROWS], normalize=True)
    second = tiny_model.encode([b for _, b, _ in STS_ROWS], normalize=True)
    expected = 100 * spearmanr((first * second).sum(axis=1), [s for _, _, s in STS_ROWS]).statistic
    assert sts_spearman(tiny_model, source, batch_size=4) == pytest.approx(expected, abs=1e-9)
    assert np.isfinite(expected)


def write_config(tmp_path, sts: bool = True, tasks: tuple[str, ...] = ("topic", "ner")) -> dict:
    (tmp_path / "topic.csv").write_text(
        "text,label\n" + "".join(f"{t},{lab}\n" for t, lab in [
            ("the stock fell", "business"), ("team won", "sports"), ("john lives in paris", "world"),
            ("stock rose today", "business"), ("the team play", "sports"), ("new york market", "business"),
            ("good game", "sports"), ("london today", "world"), ("the cat", "world"), ("mary won", "sports")]),
        encoding="utf-8")
    (tmp_path / "ner.txt").write_text("John B-PER\nSmith I-PER\nwon O\n\nParis B-LOC\n", encoding="utf-8")
    (tmp_path / "ner-dev.txt").write_text("Mary B-PER\nlives O\nin O\nLondon B-LOC\n", encoding="utf-8")
    task_specs = {
        "topic": {"name": "topic", "type": "sentence_classification", "data": {
            "source": {"path": str(tmp_path / "topic.csv"), "format": "csv"},
            "split": {"train": 0.6, "dev": 0.2, "test": 0.2, "seed": 5}}},
        "ner": {"name": "ner", "type": "token_classification", "data": {
            "train": {"path": str(tmp_path / "ner.txt"), "format": "conll"},
            "dev": {"path": str(tmp_path / "ner-dev.txt"), "format": "conll"}}},
    }
    raw = {"tasks": [task_specs[name] for name in tasks], "optimizer": {"max_steps": 1}}
    if sts:
        source = write_sts(tmp_path)
        raw["evaluation"] = {"sts": {"path": str(source.path), "format": "tsv", "header": False, "text_column": 5,
                                     "text_pair_column": 6, "label_column": 4}}
    return raw


def test_evaluate_all_keys_and_mean_of_main_metrics(tiny_model, tmp_path):
    config = TrainConfig.model_validate(write_config(tmp_path))
    metrics = evaluate_all(tiny_model, config, split="dev")
    assert set(metrics) == {"topic/accuracy", "topic/macro_f1", "ner/precision", "ner/recall", "ner/f1",
                            "sts/spearman", "mean/main"}
    assert metrics["mean/main"] == pytest.approx((metrics["topic/accuracy"] + metrics["ner/f1"]) / 2)
    assert all(0 <= value <= 100 for key, value in metrics.items() if key != "sts/spearman")

    test_only = evaluate_all(tiny_model, config, split="test")  # ner has no test split: left out
    assert set(test_only) == {"topic/accuracy", "topic/macro_f1", "sts/spearman", "mean/main"}
    assert test_only["mean/main"] == test_only["topic/accuracy"]


def test_evaluate_all_uses_given_splits_instead_of_reading(tiny_model, tmp_path):
    config = TrainConfig.model_validate(write_config(tmp_path, sts=False, tasks=("topic",)))
    (tmp_path / "topic.csv").unlink()  # reading it now would fail
    given = {"topic": {"dev": Examples(["team won", "stock fell"], ["sports", "business"], ["g:1", "g:2"])}}
    assert set(evaluate_all(tiny_model, config, "dev", splits=given)) == {"topic/accuracy", "topic/macro_f1",
                                                                          "mean/main"}


def test_evaluate_all_errors(tiny_model, tmp_path):
    config = TrainConfig.model_validate(write_config(tmp_path, sts=False, tasks=("ner",)))
    with pytest.raises(MtstError, match="no task in the config has a 'test' split"):
        evaluate_all(tiny_model, config, split="test")
    raw = write_config(tmp_path, sts=False, tasks=("ner",))
    raw["tasks"][0]["name"] = "entities"
    with pytest.raises(MtstError, match="task 'entities' in the config is not in the model"):
        evaluate_all(tiny_model, TrainConfig.model_validate(raw))
    raw["tasks"][0].update(name="ner", type="sentence_classification")
    with pytest.raises(MtstError, match="task 'ner' is a sentence_classification task in the config but a "
                                        "token_classification head in the model"):
        evaluate_all(tiny_model, TrainConfig.model_validate(raw))


def test_markdown_table_rows_per_task_columns_per_metric():
    table = markdown_table({"topic/accuracy": 91.234, "topic/macro_f1": 90.0, "ner/f1": 88.456,
                            "sts/spearman": 81.5, "mean/main": 89.846})
    assert table.splitlines() == [
        "| task | accuracy | macro_f1 | f1 | spearman | main |",
        "| --- | --- | --- | --- | --- | --- |",
        "| topic | 91.23 | 90.00 |  |  |  |",
        "| ner |  |  | 88.46 |  |  |",
        "| sts |  |  |  | 81.50 |  |",
        "| mean |  |  |  |  | 89.85 |",
    ]


def write_yaml(path, raw: dict) -> None:
    import yaml

    path.write_text(yaml.safe_dump(raw), encoding="utf-8")


def test_evaluate_cli_end_to_end(tiny_model, tmp_path):
    from mtst.cli import app

    model_dir = tiny_model.save(tmp_path / "model")
    config_path = tmp_path / "train.yaml"
    write_yaml(config_path, write_config(tmp_path))
    output = tmp_path / "out" / "metrics.json"
    output.parent.mkdir()
    result = CliRunner().invoke(app, ["evaluate", "--model", str(model_dir), "--config", str(config_path),
                                      "--split", "dev", "--output", str(output)])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == "| task | accuracy | macro_f1 | precision | recall | f1 | spearman | main |"
    report = json.loads(output.read_text(encoding="utf-8"))
    assert report["split"] == "dev"
    assert report["metrics"] == pytest.approx(evaluate_all(tiny_model, TrainConfig.model_validate(
        write_config(tmp_path)), split="dev"))


@pytest.mark.parametrize(("change", "message"), [
    ("split", "error: unknown split 'valid'; choose one of train, dev, test"),
    ("task", "error: task 'entities' in the config is not in the model"),
    ("model", "error: model directory not found"),
])
def test_evaluate_cli_errors_are_one_line(tiny_model, tmp_path, change, message):
    from mtst.cli import app

    model_dir = tiny_model.save(tmp_path / "model")
    raw = write_config(tmp_path, sts=False, tasks=("ner",))
    if change == "task":
        raw["tasks"][0]["name"] = "entities"
    config_path = tmp_path / "train.yaml"
    write_yaml(config_path, raw)
    args = ["evaluate", "--model", str(tmp_path / "nowhere" if change == "model" else model_dir),
            "--config", str(config_path), "--split", "valid" if change == "split" else "dev"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1
    assert result.stderr.startswith(message) and len(result.stderr.strip().splitlines()) == 1

