"""``mtst.train``: one call from files or in-memory rows (lists, pandas, ``datasets``), dotted overrides, the
trained model and its metrics back; adding a task to a trained model without changing anything else."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import mtst
from helpers import NER_SENTENCES, TOPIC_ROWS, perturb, write_data
from mtst.errors import MtstError
from mtst.training.api import apply_overrides, build_config, parse_set


def quick(backbone, **extra) -> dict:
    return {"model.backbone": str(backbone), "optimizer.max_steps": 4, "optimizer.batch_size": 4,
            "run.log_every_steps": 2, **extra}


NER_ROWS = [([w for w, _ in s], [t for _, t in s]) for s in NER_SENTENCES]


def test_train_from_lists_returns_the_model_and_metrics(tmp_path, tiny_st_dir) -> None:
    trained = mtst.train({"topic": TOPIC_ROWS * 2, "ner": NER_ROWS * 3}, overrides=quick(tiny_st_dir),
                         output_dir=tmp_path / "run")
    assert set(trained.model.config.heads) == {"topic", "ner"}
    assert "mean/main" in trained.metrics and trained.run_dir == tmp_path / "run"
    assert trained.model.config.heads["ner"].type == "windowed_token_classification"
    assert trained.model.config.heads["ner"].crf  # the recipe's token head
    rows = [json.loads(line) for line in (tmp_path / "run" / "data" / "topic.jsonl").read_text().splitlines()]
    assert rows[0] == {"text": TOPIC_ROWS[0][0], "label": TOPIC_ROWS[0][1]}  # in-memory data kept with the run
    assert (tmp_path / "run" / "final" / "README.md").exists()
    assert trained.model.predict(["the team won"])[0]["topic"]["label"] in {"sports", "business", "world"}


def test_dataframes_datasets_and_spans_are_read_like_lists(tmp_path) -> None:
    pandas = pytest.importorskip("pandas")
    datasets = pytest.importorskip("datasets")
    frame = pandas.DataFrame(TOPIC_ROWS, columns=["text", "label"])
    dataset = datasets.Dataset.from_list([{"tokens": w, "tags": t} for w, t in NER_ROWS])
    spans = [("John Smith lives in Paris", [(0, 10, "PER"), (20, 25, "LOC")]), ("Mary visited London", [])]
    labelled = datasets.Dataset.from_dict({"text": ["a", "b"], "label": [1, 0]}, features=datasets.Features(
        {"text": datasets.Value("string"), "label": datasets.ClassLabel(names=["neg", "pos"])}))
    from mtst.training.inputs import _rows

    assert _rows(labelled) == [{"text": "a", "label": "pos"}, {"text": "b", "label": "neg"}]  # ClassLabel names
    config = build_config({"topic": frame, "ner": dataset, "ents": spans},
                          overrides={"run.output_dir": str(tmp_path / "run")})
    assert [t.type for t in config.tasks] == ["sentence_classification", "windowed_token_classification",
                                              "windowed_token_classification"]
    assert config.tasks[2].data.source.format == "spans"
    from mtst.data.splits import read_task_splits

    ner = read_task_splits("ner", config.tasks[1].type, config.tasks[1].data)
    assert sum(len(part) for part in ner.values()) == len(NER_ROWS)
    ents = read_task_splits("ents", config.tasks[2].type, config.tasks[2].data)
    assert ["B-PER", "I-PER", "O", "O", "B-LOC"] in [*ents["train"].labels, *ents["dev"].labels]


def test_files_and_types_are_inferred_and_overridable(tmp_path) -> None:
    files = write_data(tmp_path / "data")
    config = build_config({"topic": str(files["topic"]), "ner": files["ner"],
                           "flat": f"{files['ner']}:token_classification"}, overrides={"run.output_dir": "x"})
    assert [t.type for t in config.tasks] == ["sentence_classification", "windowed_token_classification",
                                              "token_classification"]
    assert config.tasks[0].data.split.dev == 0.1 and config.tasks[0].data.source.format == "csv"


def test_overrides_set_any_key_and_name_unknown_ones() -> None:
    raw = {"tasks": [{"name": "ner", "type": "token_classification", "data": {}}]}
    out = apply_overrides(raw, parse_set(["optimizer.epochs=3", "model.branch_at=null", "tasks.ner.crf=false",
                                          "optimizer.lr=1e-4"]))
    assert out["optimizer"] == {"epochs": 3, "lr": 1e-4} and out["model"] == {"branch_at": None}
    assert out["tasks"][0]["crf"] is False and "crf" not in raw["tasks"][0]  # the input is left alone
    for key in ("optimizer.epoch", "optimiser.lr", "optimizer.lr.x", "tasks.ner.colour"):
        with pytest.raises(MtstError, match=f"unknown config key '{key}'"):
            apply_overrides(raw, {key: 1})
    with pytest.raises(MtstError, match="KEY=VALUE"):
        parse_set(["optimizer.epochs"])


def test_bad_in_memory_data_is_one_line(tmp_path) -> None:
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "metrics.jsonl").write_text("{}\n")
    with pytest.raises(MtstError, match="already holds a run"):
        build_config({"topic": TOPIC_ROWS}, overrides={"run.output_dir": str(tmp_path / "old")})
    assert not (tmp_path / "old" / "data").exists()  # nothing written
    with pytest.raises(MtstError, match="no rows"):
        build_config({"topic": []}, overrides={"run.output_dir": "unused"})
    with pytest.raises(MtstError, match="row 0"):
        build_config({"topic": [("only text",)]}, overrides={"run.output_dir": "unused"})


def test_a_new_head_on_a_trained_model_leaves_everything_else_bit_identical(tmp_path, tiny_st_dir) -> None:
    from mtst import MultiTaskModel

    base = MultiTaskModel.from_backbone(tiny_st_dir, branch_at=1)
    base.add_head("ner", "token_classification", ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"])
    perturb(base)  # trained-looking weights
    base.save(tmp_path / "base")
    before = MultiTaskModel.load(tmp_path / "base")
    trained = mtst.train({"topic": TOPIC_ROWS * 2}, overrides=quick(tiny_st_dir), output_dir=tmp_path / "run",
                         init_from=tmp_path / "base", keep_existing=True)
    after = MultiTaskModel.load(tmp_path / "run" / "final")
    assert set(after.config.heads) == {"ner", "topic"} and set(trained.model.config.heads) == {"ner", "topic"}
    for name, tensor in before.heads["ner"].state_dict().items():
        assert torch.equal(tensor, after.heads["ner"].state_dict()[name]), name
    for name, tensor in before.branch.state_dict().items():
        assert torch.equal(tensor, after.branch.state_dict()[name]), name
    texts = ["john smith lives in paris", "the stock fell"]
    assert torch.equal(torch.as_tensor(before.encode(texts)), torch.as_tensor(after.encode(texts)))
    with pytest.raises(MtstError, match="init_from"):
        mtst.train({"topic": TOPIC_ROWS}, keep_existing=True)


def test_the_training_docs_python_example_runs(tmp_path, tiny_st_dir, monkeypatch) -> None:
    from helpers import run_doc_snippet

    monkeypatch.setattr("mtst.model.encoder.default_backbone_path", lambda: tiny_st_dir)
    monkeypatch.chdir(tmp_path)
    names = run_doc_snippet("training.md", "train-python", {'"optimizer.epochs": 3': '"optimizer.max_steps": 3'})
    trained = names["trained"]
    assert set(trained.model.config.heads) == {"intent", "ner"} and trained.run_dir.parent == Path("runs")
    assert (tmp_path / trained.run_dir / "data" / "ner.jsonl").exists()


def test_a_task_with_its_own_dev_and_test_files(tmp_path) -> None:
    from mtst.cli.train import build_run_config
    from mtst.data.splits import read_task_splits

    files = write_data(tmp_path / "data")
    dev, test = tmp_path / "data" / "dev.csv", tmp_path / "data" / "test.csv"
    dev.write_text("text,label\nthe team lost,sports\n")
    test.write_text("text,label\nmarket fell,business\nthe game ended,sports\n")
    config = build_run_config(None, [f"topic={files['topic']},dev={dev},test={test}:sentence_classification",
                                     f"ner={files['ner']},test={files['ner']}"], [], tmp_path / "run")
    topic, ner = config.tasks
    assert topic.type == "sentence_classification" and topic.data.source is None
    assert (topic.data.train.path, topic.data.dev.path, topic.data.test.path) == (files["topic"], dev, test)
    splits = read_task_splits("topic", topic.type, topic.data)
    assert splits["dev"].texts == ["the team lost"] and len(splits["test"]) == 2
    assert len(splits["train"]) == len(TOPIC_ROWS)  # nothing cut off for dev
    assert ner.type == "windowed_token_classification" and ner.data.test.format == "conll"
    assert ner.data.split.dev == 0.1 and ner.data.source.path == files["ner"]  # a test file alone: dev still cut
    python = build_config({"topic": {"train": files["topic"], "dev": dev, "test": test}},
                          overrides={"run.output_dir": str(tmp_path / "run2")})
    assert python.tasks[0].data.test.path == test


@pytest.mark.parametrize(("spec", "fragment"), [
    ("{topic},dev={missing}", "task 'topic': dev file not found: .*missing.csv"),
    ("{topic},test={missing}", "task 'topic': test file not found"),
    ("{missing},dev={topic}", "task 'topic': train file not found"),
    ("{topic},valid={topic}", "'valid' is not dev or test"),
    ("{topic},dev={topic},dev={topic}", "'dev' comes twice"),
    ("{topic},dev=", "a path is empty"),
])
def test_bad_split_files_are_one_line_errors(tmp_path, spec, fragment) -> None:
    files = write_data(tmp_path / "data")
    text = spec.format(topic=files["topic"], missing=tmp_path / "missing.csv")
    with pytest.raises(MtstError, match=fragment) as error:
        build_config({"topic": text}, overrides={"run.output_dir": str(tmp_path / "run")})
    assert "\n" not in str(error.value)
