"""Two CPU processes (gloo) train one tiny model: disjoint data per rank, one saved model that works."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from helpers import make_config
from mtst import MultiTaskModel
from mtst.errors import MtstError
from mtst.training.distributed import average_gradients
from mtst.training.launch import launch_local
from mtst.training.run_files import DEBUG_INDICES, TrainResult


def test_average_gradients_is_identity_for_one_process():
    param = torch.nn.Parameter(torch.ones(3))
    param.grad = torch.full((3,), 2.0)
    loss = average_gradients([param], torch.tensor(1.5), world_size=1)
    assert loss.item() == 1.5 and torch.equal(param.grad, torch.full((3,), 2.0))


def test_two_processes_train_on_disjoint_data(tmp_path, tiny_st_dir, monkeypatch):
    monkeypatch.setenv(DEBUG_INDICES, "1")
    # batch 2 divides both tasks' sizes (10 and 6): no batch straddles two epochs, so none repeats an example
    config = make_config(tmp_path, tiny_st_dir, optimizer={"max_steps": 4, "batch_size": 2},
                         run={"checkpoint_every_steps": 2})
    result = TrainResult(**launch_local(config.model_dump(mode="json"), None, num_processes=2))
    run = Path(result.output_dir)
    assert result.steps == 4 and (run / "final").is_dir() and (run / "checkpoint").is_dir()
    ranks = [[json.loads(line) for line in (run / f"indices.rank{r}.jsonl").read_text().splitlines()]
             for r in range(2)]
    assert len(ranks[0]) == len(ranks[1]) == 4
    for a, b in zip(*ranks, strict=True):
        assert a["task"] == b["task"] and a["step"] == b["step"]  # the same task sequence on both ranks
        assert len(a["indices"]) == len(b["indices"]) == 1 and not set(a["indices"]) & set(b["indices"])
    model = MultiTaskModel.load(run / "final")
    prediction = model.predict(["john lives in paris"])[0]
    assert prediction["topic"]["label"] in ("business", "sports", "world")
    assert [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()
            if "eval" in json.loads(line)] == [3, 4]


def test_a_user_error_inside_the_workers_is_one_clean_line(tmp_path, tiny_st_dir):
    config = make_config(tmp_path, tiny_st_dir)
    (tmp_path / "data" / "ner.conll").unlink()
    with pytest.raises(MtstError) as info:
        launch_local(config.model_dump(mode="json"), None, num_processes=2)
    message = str(info.value)
    assert message.startswith("task 'ner'") and "ner.conll" in message and "\n" not in message


def test_two_processes_train_a_branch_and_keep_the_backbone(tmp_path, tiny_st_dir):
    config = make_config(tmp_path, tiny_st_dir, model={"branch_at": 1}, optimizer={"max_steps": 3, "batch_size": 2})
    result = TrainResult(**launch_local(config.model_dump(mode="json"), None, num_processes=2))
    trained = MultiTaskModel.load(Path(result.output_dir) / "final")
    start = MultiTaskModel.from_backbone(tiny_st_dir, branch_at=1)
    encoder = trained.encoder.state_dict()
    assert all(torch.equal(value, encoder[key]) for key, value in start.encoder.state_dict().items())
    assert not torch.equal(start.branch.layers[0].output.dense.weight, trained.branch.layers[0].output.dense.weight)
