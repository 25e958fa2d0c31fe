"""Models by id: ``from_backbone("org/name")`` / ``load("org/name")`` read the local Hugging Face cache, offline."""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

import huggingface_hub.constants
import numpy as np
import pytest

from mtst import MultiTaskModel
from mtst.errors import MtstError
from mtst.model.encoder import resolve_model_path

SENTENCES = ["john visited paris", "the cat sat on the mat"]
SHA = "0123456789abcdef0123456789abcdef01234567"


def cache_entry(cache: Path, repo_id: str, source: Path) -> Path:
    """``source`` laid out as the Hugging Face cache holds a downloaded model: refs/main -> snapshots/<sha>/."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(SHA)
    return Path(shutil.copytree(source, repo / "snapshots" / SHA))


@pytest.fixture
def hf_cache(tmp_path, monkeypatch) -> Path:
    """An empty Hugging Face cache, and no network: any connection attempt fails the test."""
    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))  # read once, at import

    def no_network(*args, **kwargs):
        raise AssertionError("mtst tried to reach the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    return cache


def test_a_backbone_by_id_is_its_cached_snapshot(hf_cache, tiny_st_dir):
    snapshot = cache_entry(hf_cache, "org/tiny", tiny_st_dir)
    by_id = MultiTaskModel.from_backbone("org/tiny")
    assert by_id.config.encoder.backbone == str(snapshot.resolve())  # a reference save() can follow
    assert np.array_equal(by_id.encode(SENTENCES), MultiTaskModel.from_backbone(tiny_st_dir).encode(SENTENCES))
    assert resolve_model_path("org/tiny") == snapshot


def test_a_model_by_id_loads_from_the_cache(hf_cache, tiny_model, tmp_path):
    saved = tiny_model.save(tmp_path / "model")
    cache_entry(hf_cache, "org/mtst-tiny", saved)
    assert MultiTaskModel.load("org/mtst-tiny").predict(SENTENCES) == tiny_model.predict(SENTENCES)


@pytest.mark.parametrize("load", [MultiTaskModel.from_backbone, MultiTaskModel.load])
def test_an_id_not_in_the_cache_is_one_line_saying_how_to_get_it(hf_cache, load):
    with pytest.raises(MtstError) as error:
        load("org/missing")
    message = str(error.value)
    assert "\n" not in message and "hf download org/missing" in message
    assert "SentenceTransformer('org/missing').save(DIR)" in message


def test_a_local_directory_wins_and_paths_are_never_ids(hf_cache, tiny_st_dir, tmp_path, monkeypatch):
    cache_entry(hf_cache, "org/tiny", tiny_st_dir)
    local = tmp_path / "org" / "tiny"
    shutil.copytree(tiny_st_dir, local)
    monkeypatch.chdir(tmp_path)
    assert resolve_model_path("org/tiny") == Path("org/tiny")  # the directory here, not the cached model
    for path in ("./org/missing", "a/b/c", "/abs/missing"):
        assert resolve_model_path(path) == Path(path)
    with pytest.raises(MtstError, match="model directory not found: a/b/c"):
        MultiTaskModel.from_backbone("a/b/c")
