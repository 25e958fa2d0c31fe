"""The training recipe end to end on a tiny random encoder and hand-written data files."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from helpers import make_config, read_jsonl
from mtst import MultiTaskModel
from mtst.errors import MtstError
from mtst.training.checkpoint import load_model_weights
from mtst.training.config import load_train_config
from mtst.training.feature_cache import FeatureCache
from mtst.training.loss_weighting import LossWeighting
from mtst.training.recipe import Recipe, train


def test_run_directory_contents_and_saved_model_predicts(tmp_path, tiny_st_dir):
    result = train(make_config(tmp_path, tiny_st_dir, run={"checkpoint_every_steps": 3}))
    run = Path(result.output_dir)
    for name in ("final", "best", "checkpoint", "metrics.jsonl", "training.png", "config.yaml", "summary.json"):
        assert (run / name).exists(), name
    assert result.steps == 6 and result.best_step in (3, 6) and "mean/main" in result.best_metrics
    records = read_jsonl(run / "metrics.jsonl")
    assert [r["step"] for r in records if "eval" in r] == [3, 6]
    assert [r["step"] for r in records if "loss" in r] == [2, 4, 6]
    resolved = load_train_config(run / "config.yaml")
    assert resolved.tasks[0].labels == ["business", "sports", "world"]  # inferred and stored
    assert resolved.tasks[1].labels == ["O", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-PER", "I-PER"]
    model = MultiTaskModel.load(run / "final")
    assert model.config.trained
    prediction = model.predict(["john lives in paris"])[0]
    assert prediction["topic"]["label"] in ("business", "sports", "world") and isinstance(prediction["ner"], list)
    assert (run / "training.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_last_checkpoint_loads_into_the_saved_model_and_equals_final(tmp_path, tiny_st_dir):
    # evaluate_dir.py --weights: a checkpoint's step scored through the kept model's directory
    result = train(make_config(tmp_path, tiny_st_dir, run={"checkpoint_every_steps": 3}))
    run = Path(result.output_dir)
    model = MultiTaskModel.load(run / "best")
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.zero_()  # best may be the last step too: start from weights no step had
    model.load_state_dict(load_model_weights(run / "checkpoint"), strict=True)
    final = MultiTaskModel.load(run / "final")
    final_state = final.state_dict()
    assert all(torch.equal(value, final_state[key]) for key, value in model.state_dict().items())
    text = ["john lives in paris"]
    assert model.predict(text) == final.predict(text)


def test_resume_matches_uninterrupted_run_exactly(tmp_path, tiny_st_dir):
    sections = {"optimizer": {"max_steps": 8, "grad_accumulation": 2}, "run": {"checkpoint_every_steps": 3},
                "sampling": {"strategy": "temperature"}}
    full = train(make_config(tmp_path / "a", tiny_st_dir, **sections))
    config_b = make_config(tmp_path / "b", tiny_st_dir, **sections)
    cut = train(config_b, stop_after_steps=5)  # "crashes" after step 5: the last checkpoint is step 3
    assert cut.interrupted and not (Path(cut.output_dir) / "final").exists()
    resumed = train(config_b, resume=Path(cut.output_dir))
    assert resumed.steps == full.steps == 8
    a = MultiTaskModel.load(Path(full.output_dir) / "final").state_dict()
    b = MultiTaskModel.load(Path(resumed.output_dir) / "final").state_dict()
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    start = MultiTaskModel.from_backbone(tiny_st_dir).encoder.state_dict()
    assert not torch.equal(start["transformer.encoder.layer.0.output.dense.weight"],
                           a["encoder.transformer.encoder.layer.0.output.dense.weight"])  # the encoder trained
    steps_b = [r["step"] for r in read_jsonl(Path(resumed.output_dir) / "metrics.jsonl")]
    steps_a = [r["step"] for r in read_jsonl(Path(full.output_dir) / "metrics.jsonl")]
    assert steps_a == steps_b  # the interrupted run's lines after its checkpoint were dropped


def test_resume_without_checkpoint_is_an_error(tmp_path, tiny_st_dir):
    config = make_config(tmp_path, tiny_st_dir)
    with pytest.raises(MtstError, match="no checkpoint"):
        train(config, resume=tmp_path / "nowhere")


def test_existing_run_directory_is_not_overwritten(tmp_path, tiny_st_dir):
    config = make_config(tmp_path, tiny_st_dir, optimizer={"max_steps": 1})
    train(config)
    with pytest.raises(MtstError, match="already holds a run"):
        train(config)


def test_nan_loss_stops_with_step_and_keeps_checkpoint(tmp_path, tiny_st_dir, monkeypatch):
    calls = {"n": 0}
    original = LossWeighting.forward

    def poisoned(self, losses):
        calls["n"] += 1
        loss = original(self, losses)
        return loss * float("nan") if calls["n"] == 3 else loss

    monkeypatch.setattr(LossWeighting, "forward", poisoned)
    config = make_config(tmp_path, tiny_st_dir, run={"checkpoint_every_steps": 2})
    with pytest.raises(MtstError, match=r"loss became nan at step 3.*last good checkpoint"):
        train(config)
    state = json.loads((tmp_path / "run" / "checkpoint" / "state.json").read_text())
    assert state["trainer"]["step"] == 2
    assert not (tmp_path / "run" / "final").exists()


def test_early_stopping(tmp_path, tiny_st_dir):
    config = make_config(tmp_path, tiny_st_dir, optimizer={"lr": 1e-12, "head_lr": 1e-12, "max_steps": 20},
                         evaluation={"every_steps": 1, "patience": 2})
    result = train(config)
    assert result.stopped_early and result.steps == 3  # no gain at evals 2 and 3 (lr ~ 0)
    assert result.best_step == 1
    assert len([r for r in read_jsonl(tmp_path / "run" / "metrics.jsonl") if "eval" in r]) == 3


def test_unknown_selection_metric(tmp_path, tiny_st_dir):
    with pytest.raises(MtstError, match="evaluation.metric 'ner/nope'"):
        train(make_config(tmp_path, tiny_st_dir, evaluation={"metric": "ner/nope"}))


def test_frozen_encoder_stays_bit_identical_and_uses_cache(tmp_path, tiny_st_dir):
    result = train(make_config(tmp_path, tiny_st_dir, freezing={"mode": "encoder"}))
    before = MultiTaskModel.from_backbone(tiny_st_dir)
    after = MultiTaskModel.load(Path(result.output_dir) / "final")
    for key, value in before.encoder.state_dict().items():
        assert torch.equal(value, after.encoder.state_dict()[key]), key
    torch.manual_seed(7)  # the run's seed: the heads start where the run's heads started
    seeded = MultiTaskModel.from_backbone(tiny_st_dir)
    seeded.add_head("topic", "sentence_classification", ["business", "sports", "world"], hidden_dim=8)
    assert not torch.equal(seeded.heads["topic"].net[1].weight, after.heads["topic"].net[1].weight)


def test_feature_cache_matches_model_forward(tiny_model):
    from mtst.data.readers import Examples
    from mtst.data.task_encoding import encode_task

    texts = ["the cat sat on the mat", "john lives in paris", "stock fell"]
    encoded = encode_task(tiny_model.tokenizer, Examples(texts, ["world", "world", "business"], ["a", "b", "c"]),
                          ["world", "sports", "business"], "sentence_classification")
    cache = FeatureCache(tiny_model, {"topic": encoded})
    features = tiny_model.tokenizer.collate(tiny_model.tokenizer(texts))
    with torch.no_grad():
        expected = tiny_model(features, tasks=["topic"])["sentence_embedding"]
    torch.testing.assert_close(cache.batch("topic", [0, 1, 2]), expected, rtol=1e-5, atol=1e-6)


def test_keep_encoder_false_needs_a_frozen_default_encoder(tmp_path, tiny_st_dir):
    with pytest.raises(MtstError, match="keep_encoder_in_saved_model"):
        train(make_config(tmp_path, tiny_st_dir, run={"keep_encoder_in_saved_model": False}))


def test_uncertainty_weighting_learns_and_is_checkpointed(tmp_path, tiny_st_dir):
    config = make_config(tmp_path, tiny_st_dir, loss_weighting={"mode": "uncertainty"},
                         sampling={"strategy": "round_robin"}, run={"checkpoint_every_steps": 6})
    train(config)
    weights = load_file(str(tmp_path / "run" / "checkpoint" / "weights.safetensors"))
    log_vars = {k: v for k, v in weights.items() if k.startswith("loss_weighting.log_vars.")}
    assert set(log_vars) == {"loss_weighting.log_vars.topic", "loss_weighting.log_vars.ner"}
    assert all(float(v) != 0.0 for v in log_vars.values())  # moved away from the initial 0


def test_uncertainty_weights_receive_gradients():
    weighting = LossWeighting({"a": 1.0, "b": 0.5}, learned=True)
    loss = weighting({"a": torch.tensor(2.0), "b": torch.tensor(1.0)})
    assert loss.item() == pytest.approx(2.0 + 0.5)  # s = 0: plain weighted sum
    loss.backward()
    assert weighting.log_vars["a"].grad.item() == pytest.approx(-2.0 + 1.0)  # d/ds (exp(-s) L + s)
    assert weighting.log_vars["b"].grad.item() == pytest.approx(-0.5 + 1.0)
    static = LossWeighting({"a": 2.0})
    assert static({"a": torch.tensor(3.0)}).item() == 6.0 and not list(static.parameters())


def test_gradual_unfreezing_in_a_run(tmp_path, tiny_st_dir):
    config = make_config(tmp_path, tiny_st_dir, optimizer={"max_steps": 5},
                         freezing={"gradual_unfreeze_every": 3})
    result = train(config)
    start = MultiTaskModel.from_backbone(tiny_st_dir).encoder.state_dict()
    end = MultiTaskModel.load(Path(result.output_dir) / "final").encoder.state_dict()
    assert not torch.equal(start["transformer.encoder.layer.1.output.dense.weight"],
                           end["transformer.encoder.layer.1.output.dense.weight"])  # unfrozen at step 3
    assert torch.equal(start["transformer.encoder.layer.0.output.dense.weight"],
                       end["transformer.encoder.layer.0.output.dense.weight"])  # would unfreeze at step 6
    assert torch.equal(start["transformer.embeddings.word_embeddings.weight"],
                       end["transformer.embeddings.word_embeddings.weight"])


def test_freezing_all_only_evaluates(tmp_path, tiny_st_dir, caplog):
    with caplog.at_level(logging.WARNING, logger="mtst"):
        result = train(make_config(tmp_path, tiny_st_dir, freezing={"mode": "all"}))
    assert "nothing to train" in caplog.text
    assert result.steps == 0 and "mean/main" in result.best_metrics
    assert (Path(result.output_dir) / "final" / "heads.safetensors").exists()


def test_unknown_frozen_head_is_an_error(tmp_path, tiny_st_dir):
    with pytest.raises(MtstError, match="unknown task 'sentiment'"):
        train(make_config(tmp_path, tiny_st_dir, freezing={"heads": ["sentiment"]}))


@pytest.mark.parametrize("path", sorted(Path(__file__).parents[2].joinpath("configs").glob("*.yaml")),
                         ids=lambda p: p.name)
def test_every_shipped_config_validates(path):
    config = load_train_config(path)
    assert config.tasks


@pytest.mark.parametrize(("task", "message"), [
    ("type: regression", r"tasks.0.type: .*unknown task type 'regression'; choose one of sentence_classification"),
    ("type: sentence_classification\n    crf: true", r"tasks.0: .*token-task options; a sentence_classification"),
    ("type: scored_pairs\n    word_shape: 'on'", r"tasks.0: .*token-task options; a scored_pairs"),
])
def test_task_type_and_its_options_are_config_errors(tmp_path, task, message):
    path = tmp_path / "config.yaml"
    path.write_text(f"tasks:\n  - name: t\n    {task}\n    data: {{train: {{path: x.csv, format: csv}}}}\n"
                    "optimizer: {max_steps: 1}\n", encoding="utf-8")
    with pytest.raises(MtstError, match=message):
        load_train_config(path)


def test_setup_with_nothing_to_train_builds_no_training_parts(tmp_path, tiny_st_dir):
    recipe = Recipe(make_config(tmp_path, tiny_st_dir, freezing={"mode": "all"}))
    recipe.setup()
    assert recipe.total_steps == 0 and recipe.steps_per_epoch > 0
    assert (recipe.cache, recipe.anchor, recipe.optimizer, recipe.scheduler) == (None, None, None, None)


def test_bf16_mixed_precision_trains_in_bf16_and_saves_fp32(tmp_path, tiny_st_dir):
    """The forward passes run in bf16 (seen at the first encoder Linear), the saved weights stay fp32,
    and two bf16 runs are identical (determinism holds under autocast)."""
    seen: list[torch.dtype] = []
    original = torch.nn.Linear.forward

    def recording_forward(self, x):
        out = original(self, x)
        if torch.is_grad_enabled():  # training steps only, not evaluation
            seen.append(out.dtype)
        return out

    runs = []
    for name in ("a", "b"):
        config = make_config(tmp_path / name, tiny_st_dir, run={"mixed_precision": "bf16"},
                             embedding_anchor={"weight": 1.0})
        torch.nn.Linear.forward = recording_forward
        try:
            runs.append(Path(train(config).output_dir))
        finally:
            torch.nn.Linear.forward = original
    assert seen and set(seen) == {torch.bfloat16}
    weights = [MultiTaskModel.load(run / "final").state_dict() for run in runs]
    assert {t.dtype for t in weights[0].values() if t.is_floating_point()} == {torch.float32}
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    fp32_run = train(make_config(tmp_path / "fp32", tiny_st_dir, embedding_anchor={"weight": 1.0}))
    fp32 = MultiTaskModel.load(Path(fp32_run.output_dir) / "final").state_dict()
    assert any(not torch.equal(fp32[k], weights[0][k]) for k in fp32)  # autocast changed the arithmetic


def test_bf16_on_a_gpu_without_bf16_is_a_one_line_error(monkeypatch):
    from mtst.training.build import check_mixed_precision

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    with pytest.raises(MtstError, match="not supported by this GPU"):
        check_mixed_precision("bf16", torch.device("cuda"))
    check_mixed_precision("no", torch.device("cuda"))  # fp32 needs nothing
    check_mixed_precision("bf16", torch.device("cpu"))  # CPUs run bf16 autocast
