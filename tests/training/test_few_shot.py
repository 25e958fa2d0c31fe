"""Few-shot heads (mtst.training.few_shot): deterministic for a seed, the embedding and other heads bit-identical,
better than zero-shot when label names say nothing, warm updates, save/load, one-line errors, export parity; the
same for contrastive training of a free task branch (mtst.training.few_shot_branch), plus its loss and anchors."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

import mtst
from mtst import MtstError, MultiTaskModel
from mtst.training import few_shot_branch
from mtst.training.few_shot import FewShotFit, choose_method, fit_few_shot, update_few_shot

# Label names the tiny encoder cannot relate to the texts; each label's texts come from its own words.
WORDS = {"x": ["stock", "market", "fell", "rose", "today"], "y": ["team", "game", "won", "play", "guitar"],
         "z": ["cat", "dog", "sat", "mat", "man"]}
PROBE = ["the stock fell today", "team won", "a", "the cat sat on the mat"]


def draw(per_label: int, seed: int, labels=("x", "y", "z")) -> tuple[list[str], list[str]]:
    rng = random.Random(seed)
    texts, gold = [], []
    for label in labels:
        for _ in range(per_label):
            texts.append(" ".join(rng.choice(WORDS[label]) for _ in range(5)))
            gold.append(label)
    return texts, gold


def accuracy(model: MultiTaskModel, texts: list[str], gold: list[str]) -> float:
    rows = model.predict(texts, tasks=["intent"])
    return 100 * sum(row["intent"]["label"] == label for row, label in zip(rows, gold, strict=True)) / len(gold)


@pytest.fixture
def model(tiny_model) -> MultiTaskModel:
    """The tiny model (topic + NER heads) with a zero-shot task whose label names are uninformative."""
    tiny_model.add_head("intent", "zero_shot_classification", ["x", "y", "z"])
    return tiny_model


def other_outputs(model: MultiTaskModel) -> tuple[dict, np.ndarray]:
    features = model.tokenizer.collate(model.tokenizer(PROBE))
    with torch.no_grad():
        logits = model(features, tasks=["topic", "ner"])["logits"]
    return logits, model.encode(PROBE)


@pytest.mark.parametrize("method", ["prototype", "logistic"])
def test_a_fit_is_deterministic_for_a_seed(model, method):
    texts, gold = draw(8, seed=1)
    first = fit_few_shot(model, "intent", texts, gold, method=method, seed=3)
    vectors, temperature = model.heads["intent"].label_vectors.clone(), model.config.heads["intent"].temperature
    second = fit_few_shot(model, "intent", texts, gold, method=method, seed=3)
    assert torch.equal(model.heads["intent"].label_vectors, vectors)
    assert model.config.heads["intent"].temperature == temperature
    assert (first.method, first.examples, first.train_accuracy) == (second.method, second.examples,
                                                                    second.train_accuracy) == (method, 24, 100.0)


def test_fit_and_update_leave_the_embedding_and_every_other_head_bit_identical(model):
    logits, embeddings = other_outputs(model)
    fit_few_shot(model, "intent", *draw(8, seed=1))
    update_few_shot(model, "intent", *draw(2, seed=2))
    after_logits, after_embeddings = other_outputs(model)
    assert all(torch.equal(logits[task], after_logits[task]) for task in ("topic", "ner"))
    assert np.array_equal(embeddings, after_embeddings)


@pytest.mark.parametrize("method", ["prototype", "logistic"])
def test_few_shot_beats_zero_shot_when_label_names_say_nothing(model, method):
    held_out = draw(30, seed=99)
    zero_shot = accuracy(model, *held_out)
    fit = fit_few_shot(model, "intent", *draw(8, seed=1), method=method)
    few_shot = accuracy(model, *held_out)
    assert isinstance(fit, FewShotFit) and fit.seconds > 0
    assert few_shot >= 90 and few_shot > zero_shot + 30


def test_update_moves_the_vectors_towards_new_examples_and_keeps_the_labels(model):
    fit_few_shot(model, "intent", *draw(8, seed=1))
    before = model.heads["intent"].label_vectors.clone()
    texts = ["guitar guitar play", "play the guitar", "guitar"] * 2  # only "y", and only its guitar corner
    new = torch.from_numpy(model.encode(texts, normalize_embeddings=True)).mean(dim=0)
    fit = update_few_shot(model, "intent", texts, ["y"] * len(texts))
    after = model.heads["intent"].label_vectors
    assert model.heads["intent"].labels == ["x", "y", "z"] and fit.examples == 6
    assert float(after[1] @ new) > float(before[1] @ new)
    assert torch.equal(after[[0, 2]], before[[0, 2]])  # labels without new examples keep their vectors


def test_a_label_without_examples_keeps_its_zero_shot_vector(model):
    zero_shot = model.heads["intent"].label_vectors.clone()
    fit_few_shot(model, "intent", *draw(8, seed=1, labels=("x", "y")))
    assert torch.equal(model.heads["intent"].label_vectors[2], zero_shot[2])
    assert not torch.equal(model.heads["intent"].label_vectors[0], zero_shot[0])


def test_a_new_task_is_added_with_sorted_labels_and_descriptions(bare_model):
    texts, gold = draw(4, seed=1, labels=("z", "x"))
    fit = fit_few_shot(bare_model, "intent", texts, gold, descriptions={"x": "money", "y": "sport", "z": "pets"})
    config = bare_model.config.heads["intent"]
    assert config.type == "zero_shot_classification" and config.labels == ["x", "y", "z"]
    assert config.descriptions == ["money", "sport", "pets"] and fit.examples == 8
    zero_shot = bare_model.encode(["y: sport"], normalize_embeddings=True)[0]
    assert np.allclose(bare_model.heads["intent"].label_vectors[1].numpy(), zero_shot, atol=1e-6)


def test_save_and_load_keep_the_vectors_and_the_temperature(model, tmp_path):
    fit_few_shot(model, "intent", *draw(8, seed=1))
    temperature = model.config.heads["intent"].temperature
    assert temperature is not None and temperature != model.heads["intent"].DEFAULT_TEMPERATURE
    loaded = MultiTaskModel.load(model.save(tmp_path / "m"))
    assert torch.equal(loaded.heads["intent"].label_vectors, model.heads["intent"].label_vectors)
    assert loaded.heads["intent"].temperature == temperature
    assert loaded.predict(PROBE, tasks=["intent"]) == model.predict(PROBE, tasks=["intent"])


def test_bad_input_is_a_one_line_error(model):
    texts, gold = draw(2, seed=1)
    with pytest.raises(MtstError, match=r"labels \['w'\] are not among"):
        update_few_shot(model, "intent", texts, [*gold[:-1], "w"])
    with pytest.raises(MtstError, match="one label per text"):
        fit_few_shot(model, "intent", texts, gold[:-1])
    with pytest.raises(MtstError, match="few-shot fitting is for zero_shot_classification"):
        fit_few_shot(model, "topic", texts, gold)
    with pytest.raises(MtstError, match="unknown few-shot method"):
        fit_few_shot(model, "intent", texts, gold, method="setfit")
    with pytest.raises(MtstError, match="fit_few_shot adds it"):
        update_few_shot(model, "missing", texts, gold)
    with pytest.raises(MtstError, match="at least 2 labels"):
        fit_few_shot(model, "single", texts[:2], gold[:2])
    assert "single" not in model.config.heads  # nothing half-added
    with pytest.raises(MtstError, match="one description per label"):
        fit_few_shot(model, "intent", texts, gold, descriptions=["only one"])
    assert model.config.heads["intent"].descriptions is None


def test_the_public_names_and_the_auto_rule():
    assert mtst.fit_few_shot is fit_few_shot and mtst.update is update_few_shot
    assert {choose_method(n) for n in (1, 8, 16, 64)} <= {"prototype", "logistic"}


def test_onnx_export_parity_of_a_fitted_head(model, tmp_path):
    from mtst.inference.backends import load_predictor
    from mtst.inference.export import export_model

    fit_few_shot(model, "intent", *draw(8, seed=1))
    model.save(tmp_path / "m")
    exported = load_predictor(export_model(tmp_path / "m", tmp_path / "onnx"))
    want, got = model.predict(PROBE, tasks=["intent"]), exported.predict(PROBE, tasks=["intent"])
    for w, g in zip(want, got, strict=True):
        assert w["intent"]["label"] == g["intent"]["label"]
        assert np.allclose(list(w["intent"]["distribution"].values()), list(g["intent"]["distribution"].values()),
                           atol=1e-4)


def test_a_fit_drops_a_confidence_curve_fitted_at_the_old_temperature(model):
    model.config.heads["intent"].confidence_curve = [[0.0, 0.0], [1.0, 0.5]]
    fit_few_shot(model, "intent", *draw(4, seed=1))
    assert model.config.heads["intent"].confidence_curve is None


def test_the_prior_weight_is_large_for_a_telling_label_text_and_small_for_a_misleading_one():
    from mtst.training.few_shot_head import PRIOR_WEIGHTS, held_out_prior_weight

    generator = torch.Generator().manual_seed(0)
    centres = torch.nn.functional.normalize(torch.randn(3, 16, generator=generator, dtype=torch.double), dim=-1)
    gold = torch.arange(3).repeat_interleave(4)  # 4 noisy examples per label
    x = torch.nn.functional.normalize(centres[gold] + 0.25 * torch.randn(12, 16, generator=generator,
                                                                          dtype=torch.double), dim=-1)
    assert held_out_prior_weight(centres, x, gold, 0.05) >= 8  # the label texts point at the class centres
    misleading = centres[[1, 2, 0]]  # each label's text describes another label
    assert held_out_prior_weight(misleading, x, gold, 0.05) == PRIOR_WEIGHTS[0]



# ---- contrastive training of a free task branch -------------------------------------------------
@pytest.fixture
def fresh(tiny_st_dir, monkeypatch) -> MultiTaskModel:
    """The tiny encoder with a task branch above layer 1 and no heads: the branch is free (4 epochs: fast)."""
    monkeypatch.setattr(few_shot_branch, "EPOCHS", 4)
    return MultiTaskModel.from_backbone(tiny_st_dir, branch_at=1, precision="fp32")


def state(model: MultiTaskModel) -> dict[str, torch.Tensor]:
    return {key: value.clone() for key, value in model.state_dict().items()}


def test_contrastive_trains_the_branch_for_the_head_and_never_moves_the_embedding(fresh):
    embeddings, before = fresh.encode(PROBE), state(fresh)
    fit = fit_few_shot(fresh, "intent", *draw(8, seed=1))  # auto: the branch is free
    changed = {key for key, value in fresh.state_dict().items() if key in before and not torch.equal(value,
                                                                                                     before[key])}
    assert fit.method == "contrastive" and fresh.config.heads["intent"].task_path
    assert fresh.heads["intent"].reads == "task_embedding"
    assert changed and all(key.startswith("branch.") for key in changed)
    assert all(value.requires_grad for value in fresh.branch.parameters())  # as the model had them
    assert np.array_equal(fresh.encode(PROBE), embeddings)


def test_contrastive_fits_are_deterministic_for_a_seed_and_differ_across_seeds(tiny_st_dir, monkeypatch):
    monkeypatch.setattr(few_shot_branch, "EPOCHS", 4)

    def fitted(seed: int) -> MultiTaskModel:
        model = MultiTaskModel.from_backbone(tiny_st_dir, branch_at=1, precision="fp32")
        fit_few_shot(model, "intent", *draw(8, seed=1), method="contrastive", seed=seed)
        return model

    first, again, other = fitted(3), fitted(3), fitted(4)
    assert all(torch.equal(value, again.state_dict()[key]) for key, value in first.state_dict().items())
    assert first.config.heads["intent"].temperature == again.config.heads["intent"].temperature
    assert not torch.equal(first.heads["intent"].label_vectors, other.heads["intent"].label_vectors)


def test_contrastive_beats_zero_shot_when_label_names_say_nothing(fresh):
    fresh.add_head("intent", "zero_shot_classification", ["x", "y", "z"])
    held_out = draw(30, seed=99)
    zero_shot = accuracy(fresh, *held_out)
    fit_few_shot(fresh, "intent", *draw(8, seed=1), method="contrastive")
    few_shot = accuracy(fresh, *held_out)
    assert few_shot >= 90 and few_shot > zero_shot + 30


def test_an_update_keeps_the_branch_and_moves_only_the_label_vectors(fresh):
    fit_few_shot(fresh, "intent", *draw(8, seed=1), method="contrastive")
    before, embeddings = state(fresh), fresh.encode(PROBE)
    fit = update_few_shot(fresh, "intent", *draw(2, seed=2))
    changed = {key for key, value in fresh.state_dict().items() if not torch.equal(value, before[key])}
    assert fit.method == "logistic" and changed == {"heads.intent.label_vectors"}
    assert np.array_equal(fresh.encode(PROBE), embeddings) and fresh.config.heads["intent"].task_path


def test_a_taken_missing_or_empty_branch_is_refused_in_one_line_with_nothing_changed(fresh, bare_model,
                                                                                      tiny_st_dir):
    fresh.add_head("topic", "sentence_classification", ["a", "b"])  # reads the branch
    before = state(fresh)
    with pytest.raises(MtstError, match="would retrain the task branch that topic read; use method 'logistic'"):
        fit_few_shot(fresh, "intent", *draw(4, seed=1), method="contrastive")
    assert "intent" not in fresh.config.heads
    assert all(torch.equal(value, before[key]) for key, value in fresh.state_dict().items())
    assert fit_few_shot(fresh, "intent", *draw(4, seed=1)).method == "logistic"  # auto keeps the branch
    with pytest.raises(MtstError, match="has none; start from MultiTaskModel.from_backbone"):
        fit_few_shot(bare_model, "intent", *draw(4, seed=1), method="contrastive")
    empty = MultiTaskModel.from_backbone(tiny_st_dir, branch_at=2)  # above the tiny encoder's last layer
    with pytest.raises(MtstError, match="has no layers"):
        fit_few_shot(empty, "intent", *draw(4, seed=1), method="contrastive")
    assert fit_few_shot(empty, "intent", *draw(4, seed=1)).method == "logistic"


def test_the_auto_rule_trains_only_a_free_branch():
    assert {choose_method(n, free_branch=True) for n in (8, 16)} == {"contrastive"}
    assert {choose_method(n) for n in (8, 16, 64)} == {"logistic"}


def test_save_load_and_onnx_export_keep_a_contrastive_head(fresh, tmp_path):
    from mtst.inference.backends import load_predictor
    from mtst.inference.export import export_model

    fit_few_shot(fresh, "intent", *draw(8, seed=1), method="contrastive")
    want = fresh.predict(PROBE, tasks=["intent"])
    loaded = MultiTaskModel.load(fresh.save(tmp_path / "m"), precision="fp32")
    assert loaded.config.heads["intent"].task_path and loaded.predict(PROBE, tasks=["intent"]) == want
    exported = load_predictor(export_model(tmp_path / "m", tmp_path / "onnx"))
    for w, g in zip(want, exported.predict(PROBE, tasks=["intent"]), strict=True):
        assert w["intent"]["label"] == g["intent"]["label"]
        assert np.allclose(list(w["intent"]["distribution"].values()), list(g["intent"]["distribution"].values()),
                           atol=1e-4)


def test_task_path_is_refused_on_a_trained_head_type(fresh):
    from mtst.model.config import HeadConfig
    from mtst.model.tasks import task_type

    config = HeadConfig(type="sentence_classification", labels=["a", "b"], input_dim=32, task_path=True)
    with pytest.raises(MtstError, match="task_path are for zero-shot heads"):
        task_type(config.type).check(config)


def test_the_loss_weighs_same_and_different_pairs_equally_each_pair_once():
    gold = torch.tensor([0, 0, 1, 1, 1])
    unit = torch.nn.functional.normalize(torch.randn(5, 8, generator=torch.Generator().manual_seed(0)), dim=-1)
    cosine = unit @ unit.T
    same = [(0, 1), (2, 3), (2, 4), (3, 4)]
    other = [(i, j) for i in range(5) for j in range(i + 1, 5) if (i, j) not in same]
    expected = (sum((cosine[i, j] - 1) ** 2 for i, j in same) / len(same)
                + sum(cosine[i, j] ** 2 for i, j in other) / len(other))
    assert torch.allclose(few_shot_branch.balanced_pair_loss(unit, gold), expected)
    collapsed = torch.nn.functional.normalize(torch.ones(5, 8), dim=-1)  # every pair at cosine 1
    assert torch.allclose(few_shot_branch.balanced_pair_loss(collapsed, gold), torch.tensor(1.0))
    assert few_shot_branch.balanced_pair_loss(collapsed, torch.zeros(5, dtype=torch.long)).abs() < 1e-6


def test_each_label_text_joins_every_step_and_an_epoch_covers_each_example_once(fresh, monkeypatch):
    monkeypatch.setattr(few_shot_branch, "EPOCHS", 2)
    monkeypatch.setattr(few_shot_branch, "BATCH_SIZE", 4)  # two steps per epoch on six texts
    texts, labels = ["good film", "great movie", "bad film", "awful movie", "fine", "poor"], list("ppnnpn")
    seen, embed = [], few_shot_branch.grouped_branch_embeddings

    def recording(model, inputs, rows):
        seen.append((rows.tolist(), len(inputs["input_ids"])))
        return embed(model, inputs, rows)

    monkeypatch.setattr(few_shot_branch, "grouped_branch_embeddings", recording)
    few_shot_branch.train_branch(fresh, texts, labels, ["negative", "positive"], ["n", "p"], seed=0)
    assert len(seen) == 2 * 2 and all(count == len(texts) + 2 for _, count in seen)
    assert all(rows[-2:] == [6, 7] for rows, _ in seen)  # each label's text, last in every step
    assert sorted(row for rows, _ in seen[:2] for row in rows[:-2]) == list(range(len(texts)))


def test_length_groups_cover_each_row_once_and_trade_padding_against_calls():
    lengths = [4, 40, 3, 12, 3, 11, 38, 5]
    for overhead in (0, 16, 64, 10_000):
        groups = few_shot_branch.length_groups(lengths, overhead)
        assert sorted(row for group in groups for row in group) == list(range(len(lengths)))
        spans = [(min(lengths[row] for row in group), max(lengths[row] for row in group)) for group in groups]
        assert all(high <= spans[i + 1][0] for i, (_, high) in enumerate(spans[:-1]))  # shortest group first
    assert len(few_shot_branch.length_groups(lengths, 10_000)) == 1  # calls cost more than any padding
    assert len(few_shot_branch.length_groups(lengths, 0)) == len(set(lengths))  # padding costs, calls do not
    assert few_shot_branch.length_groups(lengths, 16) == [[2, 4, 0, 7], [5, 3], [6, 1]]
    assert few_shot_branch.length_groups([], 16) == []


def test_grouped_and_trained_embeddings_are_what_one_padded_batch_and_the_head_path_give(fresh, monkeypatch):
    texts = ["a", "the stock market fell today and the team won the game", "cat", "dog sat on the mat"]
    inputs, rows = few_shot_branch.frozen_inputs(fresh.eval(), texts), torch.tensor([3, 0, 1, 2])
    calls, embed = [], few_shot_branch.branch_embeddings
    monkeypatch.setattr(few_shot_branch, "branch_embeddings", lambda *args: calls.append(args[2]) or embed(*args))
    monkeypatch.setattr(few_shot_branch, "CALL_OVERHEAD", 0)  # one call per length here
    with torch.no_grad():
        grouped = few_shot_branch.grouped_branch_embeddings(fresh, inputs, rows)
        padded = embed(fresh, inputs, rows)
    assert len(calls) == 3 and torch.allclose(grouped, padded, atol=1e-5)  # "a" and "cat" share a length
    fit_few_shot(fresh, "intent", *draw(4, seed=1), method="contrastive")
    trained = few_shot_branch.trained_embeddings(fresh, few_shot_branch.frozen_inputs(fresh, texts))
    assert trained.dtype == torch.float64 and trained.shape == (4, fresh.config.encoder.hidden_size)
    assert torch.allclose(trained.float(), few_shot_branch.task_path_embeddings(fresh, texts), atol=1e-5)


def test_the_frozen_bottom_runs_in_chunks_with_the_same_states(fresh, monkeypatch):
    texts = ["a", "the stock market fell today", "cat", "dog sat on the mat", "team won"]
    whole = few_shot_branch.frozen_inputs(fresh, texts)
    monkeypatch.setattr(few_shot_branch, "BOTTOM_ROWS", 2)
    calls, bottom = [], fresh.shared_states
    monkeypatch.setattr(fresh, "shared_states", lambda ids, mask: calls.append(len(ids)) or bottom(ids, mask))
    chunked = few_shot_branch.frozen_inputs(fresh, texts)
    assert calls == [2, 2, 1] and torch.equal(chunked["input_ids"], whole["input_ids"])
    assert torch.allclose(chunked["shared_states"], whole["shared_states"], atol=1e-5)


def test_halves_split_every_label_evenly_and_cover_each_example_once():
    from mtst.training.few_shot_crossfit import halves

    gold = [0, 0, 0, 1, 1, 2, 2, 2, 2, 0]
    first, second = halves(gold, seed=3)
    assert sorted(first + second) == list(range(len(gold))) and abs(len(first) - len(second)) <= 1
    for label in set(gold):
        a, b = sum(gold[i] == label for i in first), sum(gold[i] == label for i in second)
        assert abs(a - b) <= 1
    assert halves(gold, seed=3) == (first, second) and halves(gold, seed=4) != (first, second)


def test_a_cross_fitted_temperature_changes_only_the_temperature(tiny_st_dir, monkeypatch):
    monkeypatch.setattr(few_shot_branch, "EPOCHS", 4)
    fits = {}
    for cross_fit in (False, True, True):
        model = MultiTaskModel.from_backbone(tiny_st_dir, branch_at=1, precision="fp32")
        fit_few_shot(model, "intent", *draw(6, seed=1), method="contrastive", cross_fit_temperature=cross_fit)
        fits.setdefault(cross_fit, []).append(model)
    plain, (crossed, again) = fits[False][0], fits[True]
    assert all(torch.equal(value, crossed.state_dict()[key]) for key, value in plain.state_dict().items())
    t_plain, t_crossed = (m.config.heads["intent"].temperature for m in (plain, crossed))
    assert t_crossed != t_plain and t_crossed == again.config.heads["intent"].temperature


def test_a_cross_fitted_temperature_needs_two_examples_and_changes_nothing_without(fresh):
    fresh.add_head("intent", "zero_shot_classification", ["x", "y", "z"])
    before, config = state(fresh), fresh.config.heads["intent"].model_copy()
    with pytest.raises(MtstError, match="at least 2 labelled examples"):
        fit_few_shot(fresh, "intent", ["stock fell"], ["x"], method="contrastive", cross_fit_temperature=True)
    assert all(torch.equal(value, before[key]) for key, value in fresh.state_dict().items())
    assert fresh.config.heads["intent"] == config
