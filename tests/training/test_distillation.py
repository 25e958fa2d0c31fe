"""Slimmer branches and distillation: the branch's shape, FFN and attention-head pruning, starting from the teacher,
the loss, a distilled run (logged, resumable, the embedding untouched), export parity and the errors."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from helpers import make_config, perturb, read_jsonl
from mtst import MtstError, MultiTaskModel
from mtst.data.readers import Examples
from mtst.data.task_encoding import collate, encode_task
from mtst.inference.agreement import parity_report
from mtst.inference.backends import load_predictor
from mtst.inference.export import export_model
from mtst.model.branch import TaskBranch, ffn_importance, head_importance, prune_ffn, prune_heads
from mtst.model.config import EncoderConfig
from mtst.model.tokenization import NO_WORD
from mtst.training.augment import mask_copies, with_masked_copies
from mtst.training.config import DistillationSection
from mtst.training.distillation import TeacherTargets, load_teacher, soft_label_loss, start_from_teacher
from mtst.training.recipe import Recipe, train

SENTENCES = ["john lives in paris", "the team won the game today", "acme corp stock fell"]
SLIM = {"branch_at": 1, "branch_intermediate_size": 16, "branch_attention_heads": 1}  # the tiny encoder: 2 layers,
# FFN 64, 2 heads of 16


def _with_heads(model: MultiTaskModel) -> MultiTaskModel:
    model.add_head("topic", "sentence_classification", ["sports", "business", "world"], hidden_dim=8)
    model.add_head("ner", "token_classification", ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"])
    return model


@pytest.fixture
def teacher_dir(tmp_path, tiny_st_dir) -> Path:
    """A two-layer branch (at 0) with trained-looking weights, topic + NER heads, saved."""
    torch.manual_seed(0)
    teacher = _with_heads(MultiTaskModel.from_backbone(tiny_st_dir, branch_at=0))
    perturb(teacher.branch, scale=0.2)
    perturb(teacher.heads, seed=2, scale=0.2)
    return teacher.save(tmp_path / "teacher")


def test_a_slim_branch_has_its_shape_keeps_the_embedding_and_round_trips(tiny_st_dir, tmp_path):
    plain = MultiTaskModel.from_backbone(tiny_st_dir)
    model = _with_heads(MultiTaskModel.from_backbone(tiny_st_dir, branch_at=0, branch_layers=1,
                                                     branch_intermediate_size=16, branch_attention_heads=1))
    (layer,) = model.branch.layers  # a copy of the backbone's first layer only
    assert (layer.intermediate.dense.out_features, layer.output.dense.in_features) == (16, 16)
    assert (layer.attention.self.key.out_features, layer.attention.output.dense.in_features) == (16, 16)
    assert np.array_equal(model.encode(SENTENCES), plain.encode(SENTENCES))  # the embedding path is the backbone's
    perturb(model.branch)
    loaded = MultiTaskModel.load(model.save(tmp_path / "slim"))
    shape = loaded.config.encoder
    assert (shape.branch_layers, shape.branch_intermediate_size, shape.branch_attention_heads) == (1, 16, 1)
    assert loaded.predict(SENTENCES) == model.predict(SENTENCES)


@pytest.mark.parametrize(("shape", "message"), [
    ({"branch_at": 1, "branch_layers": 2}, "branch_layers must be between 1 and 1"),
    ({"branch_at": 0, "branch_intermediate_size": 65}, "branch_intermediate_size must be between 1 and 64"),
    ({"branch_at": 0, "branch_attention_heads": 3}, "branch_attention_heads must be between 1 and 2"),
])
def test_a_branch_shape_the_encoder_cannot_hold_is_one_clear_error(tiny_st_dir, shape, message):
    with pytest.raises(MtstError, match=message):
        MultiTaskModel.from_backbone(tiny_st_dir, **shape)


def test_a_branch_shape_needs_a_branch():
    with pytest.raises(ValueError, match="set branch_at too"):
        EncoderConfig(hidden_size=32, branch_layers=1)


def test_pruning_keeps_the_units_with_the_largest_weights_in_and_out(tiny_st_dir):
    model = MultiTaskModel.from_backbone(tiny_st_dir, branch_at=0)
    layer = model.branch.layers[0]
    importance = ffn_importance(layer)
    expected = importance.topk(16).indices.sort().values
    up, down = layer.intermediate.dense.weight.clone(), layer.output.dense.weight.clone()
    prune_ffn(layer, 16)
    assert torch.equal(layer.intermediate.dense.weight, up[expected])
    assert torch.equal(layer.output.dense.weight, down[:, expected])
    before = layer.intermediate.dense
    prune_ffn(layer, 16)  # already that wide: nothing changes
    assert layer.intermediate.dense is before


def test_pruning_heads_keeps_the_strongest_and_equals_the_full_layer_without_the_others(tiny_st_dir):
    model = MultiTaskModel.from_backbone(tiny_st_dir, branch_at=0)
    layer = model.branch.layers[0].eval()
    perturb(layer, seed=3, scale=0.5)  # heads of different strength
    kept = int(head_importance(layer).argmax())
    states = torch.randn(2, 5, 32, generator=torch.Generator().manual_seed(0))  # unpadded: no mask
    without_the_other = TaskBranch(model.encoder, 0, layers=1).eval()
    without_the_other.layers[0].load_state_dict(layer.state_dict())
    dropped = slice(16, 32) if kept == 0 else slice(0, 16)
    with torch.no_grad():
        without_the_other.layers[0].attention.output.dense.weight[:, dropped] = 0
    value = layer.attention.self.value.weight.clone()
    prune_heads(layer, 1)
    assert torch.equal(layer.attention.self.value.weight, value[kept * 16:(kept + 1) * 16])
    with torch.no_grad():
        pruned = TaskBranch(model.encoder, 0, layers=1, attention_heads=1).eval()
        pruned.layers[0].load_state_dict(layer.state_dict())
        torch.testing.assert_close(pruned(states, None), without_the_other(states, None))
    before = layer.attention.self.query
    prune_heads(layer, 1)  # already that many heads: nothing changes
    assert layer.attention.self.query is before


def test_the_student_starts_from_the_teachers_heads_and_top_layers(tiny_st_dir, teacher_dir):
    teacher = MultiTaskModel.load(teacher_dir, precision="fp32")
    student = _with_heads(MultiTaskModel.from_backbone(tiny_st_dir, **SLIM))
    copied = start_from_teacher(student, teacher)
    assert copied == ["head topic", "head ner", "branch layers from the teacher's top 1 of 2"]
    for key, value in teacher.heads.state_dict().items():
        assert torch.equal(value, student.heads.state_dict()[key]), key
    top, mine = teacher.branch.layers[1], student.branch.layers[0]
    head = int(head_importance(top).argmax())
    assert torch.equal(mine.attention.self.query.weight, top.attention.self.query.weight[head * 16:(head + 1) * 16])
    kept = ffn_importance(top).topk(16).indices.sort().values
    assert torch.equal(mine.intermediate.dense.weight, top.intermediate.dense.weight[kept])
    assert not torch.equal(mine.attention.self.query.weight, TaskBranch(student.encoder, 1, attention_heads=1)
                           .layers[0].attention.self.query.weight)  # not the backbone's copy any more


def test_soft_label_loss_is_zero_at_the_teacher_and_positive_elsewhere():
    logits = torch.randn(4, 3)
    assert soft_label_loss(logits, logits, 2.0, multi_label=False).abs() < 1e-6
    assert soft_label_loss(torch.zeros(4, 3), logits, 2.0, multi_label=False) > 0.01
    same, other = soft_label_loss(logits, logits, 1.0, True), soft_label_loss(-logits, logits, 1.0, True)
    assert other > same  # the cross-entropy to the teacher's probabilities is smallest at the teacher


def test_a_student_equal_to_its_teacher_has_no_distillation_loss(tiny_st_dir, teacher_dir):
    teacher = MultiTaskModel.load(teacher_dir, precision="fp32")
    student = _with_heads(MultiTaskModel.from_backbone(tiny_st_dir, branch_at=0))
    start_from_teacher(student, teacher)  # same shape: an exact copy
    examples = Examples([s.split() for s in SENTENCES], [["O"] * len(s.split()) for s in SENTENCES], ["t:1"] * 3)
    encoded = {"ner": encode_task(student.tokenizer, examples, teacher.heads["ner"].labels, "token_classification")}
    section = DistillationSection(teacher=str(teacher_dir), temperature=2.0)
    targets = TeacherTargets(teacher, encoded, section)
    features, labels = collate(student.tokenizer, encoded["ner"], [2, 0])
    features = {k: v for k, v in features.items() if k != "word_ids"}
    with torch.no_grad():
        out = student.eval()(features, tasks=["ner"], embedding=False)
        assert targets.loss("ner", [2, 0], out, features["attention_mask"], labels) < 1e-4
        perturb(student.branch, scale=0.5)
        out = student(features, tasks=["ner"], embedding=False)
        assert targets.loss("ner", [2, 0], out, features["attention_mask"], labels) > 1e-3


def test_the_distillation_loss_reaches_the_branch_and_heads_never_the_backbone(tiny_st_dir, teacher_dir):
    teacher = MultiTaskModel.load(teacher_dir, precision="fp32")
    student = _with_heads(MultiTaskModel.from_backbone(tiny_st_dir, **SLIM))
    start_from_teacher(student, teacher)
    examples = Examples([s.split() for s in SENTENCES], [["O"] * len(s.split()) for s in SENTENCES], ["t:1"] * 3)
    encoded = {"ner": encode_task(student.tokenizer, examples, teacher.heads["ner"].labels, "token_classification")}
    targets = TeacherTargets(teacher, encoded, DistillationSection(teacher=str(teacher_dir)))
    features, labels = collate(student.tokenizer, encoded["ner"], [0, 1, 2])
    features = {k: v for k, v in features.items() if k != "word_ids"}
    out = student.train()(features, tasks=["ner"], embedding=False)
    targets.loss("ner", [0, 1, 2], out, features["attention_mask"], labels).backward()
    assert all(p.grad is None and not p.requires_grad for p in student.encoder.parameters())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in student.branch.parameters())
    assert student.heads["ner"].classifier.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in student.heads["topic"].parameters())  # another task's head: untouched


def _distilled_config(tmp_path: Path, backbone: Path, teacher: Path, **sections):
    return make_config(tmp_path, backbone, model=dict(SLIM),
                       distillation={"teacher": str(teacher), "weight": 1.0, "hidden_weight": 1.0}, **sections)


def test_a_distilled_run_logs_its_loss_resumes_exactly_and_keeps_the_embedding(tmp_path, tiny_st_dir, teacher_dir):
    sections = {"optimizer": {"max_steps": 8}, "run": {"checkpoint_every_steps": 3}}
    full = train(_distilled_config(tmp_path / "a", tiny_st_dir, teacher_dir, **sections))
    config_b = _distilled_config(tmp_path / "b", tiny_st_dir, teacher_dir, **sections)
    resumed = train(config_b, resume=Path(train(config_b, stop_after_steps=5).output_dir))
    a = MultiTaskModel.load(Path(full.output_dir) / "final")
    b = MultiTaskModel.load(Path(resumed.output_dir) / "final")
    for key, value in a.state_dict().items():
        assert torch.equal(value, b.state_dict()[key]), key
    assert a.config.encoder.branch_intermediate_size == 16
    backbone = MultiTaskModel.from_backbone(tiny_st_dir)
    for key, value in backbone.encoder.state_dict().items():
        assert torch.equal(value, a.encoder.state_dict()[key]), key  # the backbone never trained
    assert np.array_equal(a.encode(SENTENCES), backbone.encode(SENTENCES))  # bit for bit
    logged = [row for row in read_jsonl(Path(full.output_dir) / "metrics.jsonl") if "loss" in row]
    assert all(value > 0 for row in logged for value in row["distillation"].values())


def test_a_teacher_without_the_runs_tasks_is_one_clear_error(tmp_path, tiny_st_dir):
    other = MultiTaskModel.from_backbone(tiny_st_dir, branch_at=0)
    other.add_head("topic", "sentence_classification", ["a", "b"])
    with pytest.raises(MtstError, match="has no task 'topic'"):
        load_teacher(str(other.save(tmp_path / "other")), _with_heads(MultiTaskModel.from_backbone(tiny_st_dir)),
                     torch.device("cpu"))


@pytest.fixture
def topic_teacher_dir(tmp_path, tiny_st_dir) -> Path:
    """Another teacher, with a topic head only (labels as the main teacher's): a task teacher."""
    torch.manual_seed(1)
    teacher = MultiTaskModel.from_backbone(tiny_st_dir, branch_at=0)
    teacher.add_head("topic", "sentence_classification", ["sports", "business", "world"], hidden_dim=8)
    perturb(teacher.branch, seed=5, scale=0.2)
    perturb(teacher.heads, seed=6, scale=0.5)
    return teacher.save(tmp_path / "topic-teacher")


def test_a_task_teacher_gives_its_task_the_targets_and_the_teacher_the_others(tiny_st_dir, teacher_dir,
                                                                                topic_teacher_dir):
    teacher, other = (MultiTaskModel.load(path, precision="fp32") for path in (teacher_dir, topic_teacher_dir))
    student = _with_heads(MultiTaskModel.from_backbone(tiny_st_dir, **SLIM))
    ner = Examples([s.split() for s in SENTENCES], [["O"] * len(s.split()) for s in SENTENCES], ["t:1"] * 3)
    topic = Examples(SENTENCES, ["world", "sports", "business"], ["t:1"] * 3)
    encoded = {"ner": encode_task(student.tokenizer, ner, teacher.heads["ner"].labels, "token_classification"),
               "topic": encode_task(student.tokenizer, topic, teacher.heads["topic"].labels,
                                    "sentence_classification")}
    section = DistillationSection(teacher=str(teacher_dir), task_teachers={"topic": str(topic_teacher_dir)})
    mixed = TeacherTargets(teacher, encoded, section, task_teachers={"topic": other})
    alone, theirs = TeacherTargets(teacher, encoded, section), TeacherTargets(other, {"topic": encoded["topic"]},
                                                                               section)
    for mine, expected, not_expected in zip(mixed.logits["topic"], theirs.logits["topic"], alone.logits["topic"],
                                            strict=True):
        assert torch.equal(mine, expected) and not torch.allclose(mine, not_expected)
    for mine, expected in zip(mixed.logits["ner"], alone.logits["ner"], strict=True):
        assert torch.equal(mine, expected)
    for mine, expected in zip(mixed.states["topic"], theirs.states["topic"], strict=True):
        assert torch.equal(mine, expected)  # the token states too: the task teacher's path


def test_a_run_with_a_task_teacher_names_it_and_trains(tmp_path, tiny_st_dir, teacher_dir, topic_teacher_dir):
    from mtst.training.dry_run import plan_run

    config = _distilled_config(tmp_path, tiny_st_dir, teacher_dir, optimizer={"max_steps": 4})
    config.distillation.task_teachers = {"topic": str(topic_teacher_dir)}
    lines = plan_run(config).lines(config)
    assert any(line.startswith(f"distillation from {teacher_dir}, topic from {topic_teacher_dir}") for line in lines)
    result = train(config)
    logged = [row for row in read_jsonl(Path(result.output_dir) / "metrics.jsonl") if "loss" in row]
    assert {task for row in logged for task in row["distillation"]} == {"topic", "ner"}


def test_each_teacher_directory_is_loaded_once_however_it_is_written(tiny_st_dir, teacher_dir, topic_teacher_dir,
                                                                       monkeypatch):
    import mtst.training.distillation as distillation

    loads = []
    monkeypatch.setattr(distillation, "load_teacher", lambda path, *args, **kwargs: loads.append(
        (Path(path).resolve(), kwargs["tasks"])) or load_teacher(path, *args, **kwargs))
    student = _with_heads(MultiTaskModel.from_backbone(tiny_st_dir, **SLIM))
    topic = Examples(SENTENCES, ["world", "sports", "business"], ["t:1"] * 3)
    encoded = {"topic": encode_task(student.tokenizer, topic, student.heads["topic"].labels, "sentence_classification")}
    same = DistillationSection(teacher=str(teacher_dir), task_teachers={"topic": f"{teacher_dir}/."})
    targets = distillation.build_teacher_targets(student, encoded, same, True, torch.device("cpu"), 8, False)
    assert loads == [(teacher_dir.resolve(), {"topic", "ner"})]  # checked for every task it teaches, once
    assert set(targets.logits) == {"topic"}
    loads.clear()
    other = DistillationSection(teacher=str(teacher_dir), task_teachers={"topic": str(topic_teacher_dir)})
    distillation.build_teacher_targets(student, encoded, other, True, torch.device("cpu"), 8, False)
    assert sorted(loads) == sorted([(teacher_dir.resolve(), {"ner"}), (topic_teacher_dir.resolve(), {"topic"})])


def test_task_teachers_are_checked_for_their_tasks_only(tmp_path, tiny_st_dir, topic_teacher_dir):
    student = _with_heads(MultiTaskModel.from_backbone(tiny_st_dir))
    assert load_teacher(str(topic_teacher_dir), student, torch.device("cpu"), tasks={"topic"}).heads.keys() == {
        "topic"}  # no NER head needed for the task it teaches
    with pytest.raises(MtstError, match="has no task 'ner'"):
        load_teacher(str(topic_teacher_dir), student, torch.device("cpu"), tasks={"ner"})
    with pytest.raises(ValidationError, match=r"distillation.task_teachers names \['sentiment'\], not tasks"):
        make_config(tmp_path, tiny_st_dir, distillation={"teacher": str(topic_teacher_dir), "task_teachers": {
            "sentiment": str(topic_teacher_dir)}})


def test_a_slim_branch_exports_with_parity(tiny_st_dir, tmp_path):
    model = _with_heads(MultiTaskModel.from_backbone(tiny_st_dir, branch_at=0, branch_layers=1,
                                                     branch_intermediate_size=16, branch_attention_heads=1))
    perturb(model.branch)
    saved = model.save(tmp_path / "slim")
    exported = export_model(saved, tmp_path / "onnx", format="onnx")
    report = parity_report(MultiTaskModel.load(saved, precision="fp32"), load_predictor(exported), SENTENCES)
    for name in ("sentence_embedding", "logits_topic", "logits_ner"):
        assert report[f"{name}/max_abs_diff"] <= 1e-4, (name, report)


def test_the_dry_run_of_a_distilled_run_names_the_teacher_and_probes(tmp_path, tiny_st_dir, teacher_dir):
    from mtst.training.dry_run import plan_run

    config = _distilled_config(tmp_path, tiny_st_dir, teacher_dir)
    config.distillation.augment = 1
    plan = plan_run(config)
    assert plan.seconds_per_step is not None  # the probe trained toward the teacher, on its labels and the copies
    assert any(line.startswith(f"distillation from {teacher_dir}") for line in plan.lines(config))
    assert any(line.startswith("distillation augment: 1 masked copies (p=0.1)") for line in plan.lines(config))


# ---- masked-copy augmentation (mtst.training.augment) ----------------------------------------------------------
TOPICS = Examples(["john lives in paris", "the team won the game today", "acme corp stock fell", "x"],
                  ["world", "sports", "business", "world"], ["t:1", "t:2", "t:3", "t:4"])


def _topics(model: MultiTaskModel):
    return encode_task(model.tokenizer, TOPICS, ["world", "sports", "business"], "sentence_classification")


def test_masked_copies_follow_their_originals_and_mask_only_real_tokens(tiny_model):
    data, mask_id = _topics(tiny_model), tiny_model.tokenizer.tokenizer.mask_token_id
    augmented = mask_copies(data, 2, 0.3, mask_id, seed=5)
    n = len(data)
    assert len(augmented) == 3 * n and len(data) == n  # the input is not changed
    assert augmented.items[:n] == data.items and augmented.label_ids[:n] == data.label_ids
    for index in range(n, 3 * n):
        copy, original = augmented.items[index], data.items[index % n]
        assert augmented.label_ids[index] == data.label_ids[index % n]
        assert len(copy.input_ids) == len(original.input_ids) and copy.word_ids == original.word_ids
        changed = [i for i, (a, b) in enumerate(zip(copy.input_ids, original.input_ids, strict=True)) if a != b]
        assert changed, index  # at least one mask per copy: never a plain duplicate
        assert all(copy.input_ids[i] == mask_id and original.word_ids[i] != NO_WORD for i in changed)
        assert (copy.input_ids[0], copy.input_ids[-1]) == (original.input_ids[0], original.input_ids[-1])  # CLS, SEP
    one_word = augmented.items[n + 3]  # "x": its only real token is always the one masked
    assert one_word.input_ids[1:-1] == [mask_id]


def test_masked_copies_are_the_same_for_a_seed_and_differ_across_seeds(tiny_model):
    data, mask_id = _topics(tiny_model), tiny_model.tokenizer.tokenizer.mask_token_id
    state = torch.get_rng_state()
    first = mask_copies(data, 3, 0.3, mask_id, seed=1)
    assert torch.equal(torch.get_rng_state(), state)  # the global stream (new heads' weights) is untouched
    assert mask_copies(data, 3, 0.3, mask_id, seed=1).items == first.items
    assert mask_copies(data, 3, 0.3, mask_id, seed=2).items != first.items


def test_only_the_distilled_sentence_tasks_get_copies(tiny_model):
    tokenizer = tiny_model.tokenizer
    words = Examples([s.split() for s in SENTENCES], [["O"] * len(s.split()) for s in SENTENCES], ["n:1"] * 3)
    pairs = Examples([(SENTENCES[0], SENTENCES[1])], ["0.5"], ["p:1"])
    encoded = {"topic": _topics(tiny_model),
               "ner": encode_task(tokenizer, words, tiny_model.heads["ner"].labels, "token_classification"),
               "sts": encode_task(tokenizer, pairs, [], "scored_pairs")}
    section = DistillationSection(teacher="unused", augment=2, mask_probability=0.5)
    augmented = with_masked_copies(tiny_model, encoded, section, seed=0)
    assert {task: len(data) for task, data in augmented.items()} == {"topic": 12, "ner": 3, "sts": 1}
    assert augmented["ner"] is encoded["ner"] and augmented["sts"] is encoded["sts"] and len(encoded["topic"]) == 4
    assert with_masked_copies(tiny_model, encoded, section.model_copy(update={"augment": 0}), seed=0) is encoded
    assert with_masked_copies(tiny_model, encoded, None, seed=0) is encoded


def test_a_tokenizer_without_a_mask_token_is_one_clear_error(tiny_model):
    tiny_model.tokenizer.tokenizer.mask_token = None  # as in a GPT-style tokenizer (this model is the test's own)
    section = DistillationSection(teacher="unused", augment=1)
    with pytest.raises(MtstError, match="needs a mask token.*augment: 0"):
        with_masked_copies(tiny_model, {"topic": _topics(tiny_model)}, section, seed=0)


@pytest.mark.parametrize("bad", [{"augment": -1}, {"mask_probability": 0.0}, {"mask_probability": 1.0}])
def test_augment_settings_out_of_range_are_refused(bad):
    with pytest.raises(ValidationError, match=next(iter(bad))):
        DistillationSection(teacher="unused", **bad)


def test_an_augmented_run_distils_the_copies_at_the_same_steps_and_mix(tmp_path, tiny_st_dir, teacher_dir, caplog):
    sections = {"optimizer": {"max_steps": 8}, "run": {"checkpoint_every_steps": 3}}
    plain = Recipe(_distilled_config(tmp_path / "plain", tiny_st_dir, teacher_dir, **sections))
    plain.setup()
    config = _distilled_config(tmp_path / "a", tiny_st_dir, teacher_dir, **sections)
    config.distillation.augment = 1
    augmented = Recipe(config)
    with caplog.at_level("INFO", logger="mtst"):
        augmented.setup()
    assert "distillation: 10 masked copies of 10 topic examples (p=0.1)" in caplog.text
    assert (augmented.total_steps, augmented.steps_per_epoch) == (plain.total_steps, plain.steps_per_epoch)
    assert torch.equal(augmented.sampler.probs, plain.sampler.probs)  # the mix of the original counts
    assert augmented.sampler.sizes == {"topic": 20, "ner": 6}
    sampler = copy.deepcopy(augmented.sampler)
    assert sorted(i for _ in range(5) for i in sampler.take("topic")) == list(range(20))  # copies are drawn too
    teacher = augmented.batch_losses.teacher
    assert [len(teacher.logits[task]) for task in ("topic", "ner")] == [20, 6]
    assert any(not torch.equal(teacher.logits["topic"][i], teacher.logits["topic"][i + 10]) for i in range(10))
    assert augmented.cache is not None and len(augmented.cache.rows["topic"]) == 20
    full = augmented.train()
    assert full.steps == plain.total_steps
    config_b = _distilled_config(tmp_path / "b", tiny_st_dir, teacher_dir, **sections)
    config_b.distillation.augment = 1
    resumed = train(config_b, resume=Path(train(config_b, stop_after_steps=5).output_dir))  # rebuilds the copies
    a = MultiTaskModel.load(Path(full.output_dir) / "final")
    b = MultiTaskModel.load(Path(resumed.output_dir) / "final")
    for key, value in a.state_dict().items():
        assert torch.equal(value, b.state_dict()[key]), key
