from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from sentence_transformers import SentenceTransformer

from mtst import EncoderConfig, ModelConfig, MtstError, MultiTaskModel
from mtst.files import current_umask
from mtst.model.config import FORMAT_VERSION
from mtst.model.encoder import load_backbone
from mtst.model.storage import CONFIG_FILE, HEADS_FILE, read_model_dir, save_model_dir

SENTENCES = ["john works at google in paris", "the cat sat on the mat", ""]


def test_round_trip_gives_identical_outputs(tiny_model, tmp_path):
    saved = tiny_model.save(tmp_path / "model")
    loaded = MultiTaskModel.load(saved)
    assert np.array_equal(loaded.encode(SENTENCES), tiny_model.encode(SENTENCES))
    assert loaded.predict(SENTENCES, include_embedding=True) == tiny_model.predict(SENTENCES, include_embedding=True)
    assert loaded.config == tiny_model.config


def test_config_is_human_readable_and_complete(tiny_model, tmp_path):
    saved = tiny_model.save(tmp_path / "model")
    config = json.loads((saved / CONFIG_FILE).read_text())
    assert config["format_version"] == FORMAT_VERSION == 2
    assert config["encoder"]["pooling"] == "mean" and config["encoder"]["hidden_size"] == 32
    assert config["heads"]["ner"]["type"] == "token_classification"
    assert config["heads"]["topic"]["labels"] == ["world", "sports", "business"]
    assert not list(saved.rglob("*.bin")) and not list(saved.rglob("*.pkl"))  # no pickle anywhere


def test_encoder_directory_loads_in_sentence_transformers_unchanged(tiny_model, tmp_path):
    saved = tiny_model.save(tmp_path / "model")
    reference = SentenceTransformer(str(saved / "encoder"), device="cpu").encode(SENTENCES)
    assert np.allclose(reference, tiny_model.encode(SENTENCES), atol=1e-6)


def test_shared_encoder_stays_shared_after_load(tiny_model, tmp_path):
    loaded = MultiTaskModel.load(tiny_model.save(tmp_path / "model")).train()
    batch = loaded.tokenizer.collate(loaded.tokenizer(SENTENCES[:2]))
    weight = loaded.encoder.transformer.embeddings.word_embeddings.weight
    no_entities = torch.zeros_like(batch["input_ids"])
    loaded(batch, labels={"topic": torch.tensor([0, 1]), "ner": no_entities})["loss"].backward()
    both_tasks = weight.grad.clone()
    loaded.zero_grad()
    loaded(batch, labels={"ner": no_entities})["loss"].backward()
    assert weight.grad.abs().sum() > 0 and not torch.equal(both_tasks, weight.grad)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16"])
def test_storage_round_trips_plain_values(tmp_path, dtype):
    config = ModelConfig(encoder=EncoderConfig(hidden_size=4, backbone="default", backbone_sha256="ab" * 32))
    tensors = {"heads": {"topic.weight": torch.randn(3, 4), "topic.steps": torch.tensor([7])}}
    saved = save_model_dir(tmp_path / "model", config, tensors, write_encoder=None, dtype=dtype)
    stored = read_model_dir(saved)
    assert stored.config == config and stored.encoder_source is None  # the packaged default backbone
    heads = stored.tensors["heads"]
    assert heads["topic.weight"].dtype == torch.float32  # read back as float32, whatever it was stored as
    assert torch.equal(heads["topic.weight"], tensors["heads"]["topic.weight"].to(getattr(torch, dtype)).float())
    assert torch.equal(heads["topic.steps"], torch.tensor([7]))  # integers are never cast


def test_a_directory_without_its_encoder_must_reference_the_backbone(tmp_path):
    config = ModelConfig(encoder=EncoderConfig(hidden_size=4, backbone="default"))  # no backbone_sha256
    with pytest.raises(MtstError, match="must record the backbone's sha256"):
        save_model_dir(tmp_path / "model", config, {"heads": {}}, write_encoder=None)
    config.encoder.backbone = str(tmp_path / "gone")
    with pytest.raises(MtstError, match="references the backbone by its directory, but .* is not one"):
        save_model_dir(tmp_path / "model", config, {"heads": {}}, write_encoder=None)
    assert not (tmp_path / "model").exists()


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
@pytest.mark.parametrize("include_encoder", [True, False])
def test_half_precision_round_trip_keeps_the_encoder_and_rounds_only_the_heads(tiny_model, tmp_path, dtype,
                                                                                 include_encoder):
    saved = tiny_model.save(tmp_path / "model", include_encoder=include_encoder, dtype=dtype)
    loaded = MultiTaskModel.load(saved)
    assert (saved / "encoder").is_dir() is include_encoder
    assert np.array_equal(loaded.encode(SENTENCES), tiny_model.encode(SENTENCES))
    for key, value in tiny_model.heads.state_dict().items():
        got = loaded.heads.state_dict()[key]
        assert got.dtype == torch.float32 and torch.equal(got, value.to(getattr(torch, dtype)).float()), key
    assert loaded.config.encoder.backbone_sha256 == (None if include_encoder else tiny_model.backbone_sha256)


@pytest.mark.parametrize("pooling, normalize", [("mean", True), ("cls", False), ("max", True)])
def test_the_encoder_folder_says_what_the_model_does_in_sentence_transformers_terms(tiny_st_dir, tmp_path, pooling,
                                                                                     normalize):
    model = MultiTaskModel.from_backbone(tiny_st_dir, pooling=pooling, normalize=normalize, max_seq_length=40)
    saved = model.save(tmp_path / "model")
    _, _, settings = load_backbone(saved / "encoder")  # the reader of the format its writer wrote
    # the heads read 40 tokens; the embedding path reads the backbone's 48, and the folder says what encode does
    assert model.config.encoder.embedding_max_seq_length == 48
    assert (settings.pooling, settings.normalize, settings.max_seq_length) == (pooling, normalize, 48)
    reference = SentenceTransformer(str(saved / "encoder"), device="cpu").encode(SENTENCES)
    assert np.allclose(reference, model.encode(SENTENCES), atol=1e-6)


def test_saving_over_an_existing_model_replaces_it_whole(tiny_model, tmp_path):
    target = tmp_path / "model"
    tiny_model.save(target)
    (target / "stale.txt").write_text("old")
    tiny_model.save(target)
    assert not (target / "stale.txt").exists() and (target / HEADS_FILE).exists()
    assert [p.name for p in tmp_path.iterdir()] == ["model"]  # no temp dirs left behind


def test_a_saved_model_is_readable_by_others_not_private_like_its_staging_folder(tiny_model, tmp_path):
    saved = tiny_model.save(tmp_path / "model")
    umask = current_umask()
    modes = {path.stat().st_mode & 0o777 for path in [saved, *saved.rglob("*")] if path.is_dir()}
    assert modes == {0o777 & ~umask}  # not mkdtemp's 0700
    modes = {path.stat().st_mode & 0o777 for path in saved.rglob("*") if path.is_file()}
    assert modes == {0o666 & ~umask}  # not 0600 (safetensors' files, the shipped model's package data)


def test_save_without_encoder_references_the_backbone_and_loads_back(tiny_model, tmp_path):
    saved = tiny_model.save(tmp_path / "model", include_encoder=False)
    assert not (saved / "encoder").exists()
    config = json.loads((saved / CONFIG_FILE).read_text())["encoder"]
    assert config["backbone_sha256"] == tiny_model.encoder.fingerprint()
    loaded = MultiTaskModel.load(saved)
    assert loaded.predict(SENTENCES, include_embedding=True) == tiny_model.predict(SENTENCES, include_embedding=True)


def test_save_without_encoder_refuses_an_encoder_that_trained(tiny_model, tmp_path):
    with torch.no_grad():
        tiny_model.encoder.transformer.embeddings.LayerNorm.bias.add_(0.01)
    with pytest.raises(MtstError, match="the encoder changed since it was loaded"):
        tiny_model.save(tmp_path / "model", include_encoder=False)
    assert not (tmp_path / "model").exists()


def test_a_missing_or_foreign_referenced_backbone_is_a_clear_error(tiny_st_dir, tmp_path):
    import shutil

    from helpers import build_tiny_encoder

    backbone = tmp_path / "backbone"
    shutil.copytree(tiny_st_dir, backbone)
    model = MultiTaskModel.from_backbone(backbone)
    saved = model.save(tmp_path / "model", include_encoder=False)
    shutil.rmtree(backbone)
    with pytest.raises(MtstError, match="references its backbone at .* backbone=DIR"):
        MultiTaskModel.load(saved)
    assert np.array_equal(MultiTaskModel.load(saved, backbone=tiny_st_dir).encode(SENTENCES), model.encode(SENTENCES))
    foreign = build_tiny_encoder(tmp_path / "foreign", sentence_transformers_layout=True)
    with torch.no_grad():  # same architecture and vocabulary, other weights
        other = MultiTaskModel.from_backbone(foreign)
        other.encoder.transformer.pooler.dense.bias.add_(1.0)
        other.encoder.transformer.save_pretrained(str(foreign))
    with pytest.raises(MtstError, match="is not the one .* was trained on"):
        MultiTaskModel.load(saved, backbone=foreign)


def _corrupt_config(path):
    (path / CONFIG_FILE).write_text("{not json")


def _drop_heads(path):
    (path / HEADS_FILE).unlink()


def _garbage_heads(path):
    (path / HEADS_FILE).write_bytes(b"\x00" * 64)


def _wrong_label_count(path):
    config = json.loads((path / CONFIG_FILE).read_text())
    config["heads"]["topic"]["labels"].append("extra")
    (path / CONFIG_FILE).write_text(json.dumps(config))


def _future_version(path):
    config = json.loads((path / CONFIG_FILE).read_text())
    config["format_version"] = 99
    (path / CONFIG_FILE).write_text(json.dumps(config))


def _unknown_key(path):
    config = json.loads((path / CONFIG_FILE).read_text())
    config["encoder"]["poolng"] = "mean"
    (path / CONFIG_FILE).write_text(json.dumps(config))


def _crf_on_a_sentence_head(path):
    config = json.loads((path / CONFIG_FILE).read_text())
    config["heads"]["topic"]["crf"] = True
    (path / CONFIG_FILE).write_text(json.dumps(config))


def _unknown_task_type(path):
    config = json.loads((path / CONFIG_FILE).read_text())
    config["heads"]["topic"]["type"] = "regression"
    (path / CONFIG_FILE).write_text(json.dumps(config))


@pytest.mark.parametrize("damage, message", [
    (_corrupt_config, "corrupt"),
    (_drop_heads, "no heads.safetensors"),
    (_garbage_heads, "corrupt or mismatched"),
    (_wrong_label_count, "corrupt or mismatched"),
    (_future_version, "newer than this mtst supports"),
    (_unknown_key, "encoder.poolng"),
    (_crf_on_a_sentence_head, r"invalid .*mtst_config.json: heads.topic: crf and word_shape_dim are token-head"),
    (_unknown_task_type, r"invalid .*mtst_config.json: heads.topic: unknown task type 'regression'"),
])
def test_damaged_directories_fail_with_one_line(tiny_model, tmp_path, damage, message):
    saved = tiny_model.save(tmp_path / "model")
    damage(saved)
    with pytest.raises(MtstError, match=message) as info:
        MultiTaskModel.load(saved)
    assert "\n" not in str(info.value)


def test_missing_and_foreign_directories(tmp_path, tiny_st_dir):
    with pytest.raises(MtstError, match="model directory not found"):
        MultiTaskModel.load(tmp_path / "nope")
    with pytest.raises(MtstError, match="looks like a backbone"):
        MultiTaskModel.load(tiny_st_dir)


def test_the_shipped_default_model_is_found_inside_the_package():
    from mtst.model.config import CONFIG_FILE
    from mtst.model.storage import BRANCH_FILE, DEFAULT_MODEL_DIR, HEADS_FILE, read_config

    assert (DEFAULT_MODEL_DIR / CONFIG_FILE).is_file() and (DEFAULT_MODEL_DIR / HEADS_FILE).is_file()
    config = read_config(DEFAULT_MODEL_DIR)
    assert (DEFAULT_MODEL_DIR / BRANCH_FILE).is_file() == (config.encoder.branch_at is not None)
    assert config.encoder.backbone == "default" and config.encoder.backbone_sha256  # referenced, never copied
