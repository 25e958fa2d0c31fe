"""sentence-transformers conventions: a snippet written for ST runs unchanged against mtst with the same numbers;
encode's keywords and defaults are ST's; similarity scores as ST's; the old keywords warn for one release."""

from __future__ import annotations

import functools
import inspect
import logging

import huggingface_hub.constants
import numpy as np
import pytest
import torch
from sentence_transformers import SentenceTransformer
from sentence_transformers.util import quantization
from sentence_transformers.util import similarity as st_similarity

from mtst import MultiTaskModel
from mtst.errors import MtstError
from mtst.model.cpu_paths import DEFAULT_BATCH_SIZE
from mtst.model.predictor import Predictor, TorchRuntime
from mtst.model.st_compat import show_progress

from .test_model_ids import cache_entry

TEXTS = ["john visited paris", "the cat sat on the mat", "the stock fell today", "a great film"]

# Written for sentence-transformers; ``Model`` is SentenceTransformer or mtst's MultiTaskModel.from_backbone.
SNIPPET = """
model = Model("org/tiny-st")
embeddings = model.encode(texts, normalize_embeddings=True, convert_to_tensor=True, batch_size=16,
                          show_progress_bar=False)
scores = model.similarity(embeddings, embeddings)
pairwise = model.similarity_pairwise(embeddings[:2], embeddings[2:])
one = model.encode(texts[0])
"""


def run(model_class) -> dict:
    names = {"Model": model_class, "texts": TEXTS}
    exec(SNIPPET, names)
    return names


def test_a_sentence_transformers_snippet_runs_unchanged_with_the_same_numbers(tmp_path, monkeypatch, tiny_st_dir):
    cache = tmp_path / "hub"
    cache_entry(cache, "org/tiny-st", tiny_st_dir)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    ours = run(MultiTaskModel.from_backbone)
    theirs = run(functools.partial(SentenceTransformer, cache_folder=str(cache), local_files_only=True,
                                   device="cpu"))
    for name in ("embeddings", "scores", "pairwise"):
        assert isinstance(ours[name], torch.Tensor) and ours[name].shape == theirs[name].shape
        torch.testing.assert_close(ours[name], theirs[name].cpu(), atol=1e-5, rtol=1e-4)
    assert ours["one"].shape == theirs["one"].shape == (32,)
    np.testing.assert_allclose(ours["one"], theirs["one"], atol=1e-5)


def test_encode_keywords_and_defaults_are_sentence_transformers():
    ours = inspect.signature(Predictor.encode).parameters
    theirs = inspect.signature(SentenceTransformer.encode).parameters
    for name in ("show_progress_bar", "convert_to_numpy", "convert_to_tensor", "normalize_embeddings", "device",
                 "precision"):
        assert ours[name].default == theirs[name].default, name
    # batch_size None: the batching measured fastest on this CPU (mtst.model.cpu_paths), else sentence-transformers'
    assert ours["batch_size"].default is None and DEFAULT_BATCH_SIZE == theirs["batch_size"].default
    assert inspect.signature(MultiTaskModel.encode) == inspect.signature(Predictor.encode)  # one surface


def test_output_types_follow_the_convert_keywords(bare_model):
    array = bare_model.encode(TEXTS)
    assert isinstance(array, np.ndarray) and array.shape == (4, 32)
    tensor = bare_model.encode(TEXTS, convert_to_tensor=True, convert_to_numpy=True)  # the tensor wins, as in ST
    assert isinstance(tensor, torch.Tensor) and np.array_equal(tensor.numpy(), array)
    vectors = bare_model.encode(TEXTS, convert_to_numpy=False)
    assert isinstance(vectors, list) and all(isinstance(v, torch.Tensor) and v.shape == (32,) for v in vectors)
    assert np.array_equal(bare_model.encode(TEXTS[1]), array[1])
    assert bare_model.encode(TEXTS[1], convert_to_tensor=True).shape == (32,)


def test_one_string_predicts_one_row(tiny_model):
    assert tiny_model.predict(TEXTS[0]) == tiny_model.predict(TEXTS[:1])[0]


@pytest.mark.parametrize("precision", ["int8", "uint8", "binary", "ubinary"])
def test_precision_quantises_as_sentence_transformers(bare_model, precision):
    expected = quantization.quantize_embeddings(bare_model.encode(TEXTS), precision=precision)
    got = bare_model.encode(TEXTS, precision=precision)
    assert got.dtype == expected.dtype and np.array_equal(got, expected)


def test_normalize_false_gives_the_raw_pooled_vectors_without_a_warning(bare_model, recwarn):
    raw = bare_model.encode(TEXTS, normalize=False)  # mtst's own keyword: ST's cannot ask for this
    assert not np.allclose(np.linalg.norm(raw, axis=-1), 1.0)
    np.testing.assert_allclose(raw / np.linalg.norm(raw, axis=-1, keepdims=True), bare_model.encode(TEXTS), atol=1e-6)
    assert not [w for w in recwarn if issubclass(w.category, DeprecationWarning)]


@pytest.mark.parametrize("old, new", [
    ({"show_progress": False}, {"show_progress_bar": False}),
    ({"convert_to": "torch"}, {"convert_to_tensor": True}),
])
def test_old_keywords_still_work_for_one_release(bare_model, old, new):
    name = next(iter(old))
    with pytest.warns(DeprecationWarning, match=f"encode\\({name}=...\\) is deprecated .* use {next(iter(new))}"):
        before = bare_model.encode(TEXTS, **old)
    after = bare_model.encode(TEXTS, **new)
    assert type(before) is type(after) and np.array_equal(np.asarray(before), np.asarray(after))
    with pytest.warns(DeprecationWarning) as warned:
        Predictor(TorchRuntime(bare_model)).encode(TEXTS, **old)
        bare_model.encode(TEXTS, **old)
    assert [w.filename for w in warned] == [__file__, __file__]  # the caller's line, through either surface
    with pytest.raises(TypeError, match="unexpected keyword argument 'normalise'"):
        bare_model.encode(TEXTS, normalise=True)


def test_normalize_embeddings_false_keeps_the_models_own_normalisation(bare_model):
    assert bare_model.config.encoder.normalize  # the tiny ST directory ends in Normalize
    norms = np.linalg.norm(bare_model.encode(TEXTS, normalize_embeddings=False), axis=-1)
    np.testing.assert_allclose(norms, 1.0, atol=1e-6)  # as in ST: False adds nothing, removes nothing


@pytest.mark.parametrize("fn, matrix, pairwise", [
    ("cosine", st_similarity.cos_sim, st_similarity.pairwise_cos_sim),
    ("dot", st_similarity.dot_score, st_similarity.pairwise_dot_score),
    ("euclidean", st_similarity.euclidean_sim, st_similarity.pairwise_euclidean_sim),
    ("manhattan", st_similarity.manhattan_sim, st_similarity.pairwise_manhattan_sim),
])
def test_similarity_functions_are_sentence_transformers(bare_model, fn, matrix, pairwise):
    a = np.random.default_rng(0).normal(size=(3, 8)).astype(np.float32)
    b = np.random.default_rng(1).normal(size=(3, 8)).astype(np.float32)
    bare_model.similarity_fn_name = fn
    torch.testing.assert_close(bare_model.similarity(a, b), matrix(a, b))
    torch.testing.assert_close(bare_model.similarity(a[0], b), matrix(a[0], b))  # one vector: one row
    torch.testing.assert_close(bare_model.similarity_pairwise(a, b), pairwise(a, b))


def test_similarity_of_a_normalising_model_cosine_is_dot(bare_model):
    embeddings = bare_model.encode(TEXTS, convert_to_tensor=True)
    cosine = bare_model.similarity(embeddings, embeddings)
    bare_model.similarity_fn_name = "dot"
    torch.testing.assert_close(bare_model.similarity(embeddings, embeddings), cosine)
    bare_model.similarity_fn_name = "jaccard"
    with pytest.raises(MtstError, match="unknown similarity_fn_name 'jaccard'"):
        bare_model.similarity(embeddings, embeddings)


def test_no_progress_bar_unless_logging_says_so(monkeypatch):
    logger = logging.getLogger("mtst")
    monkeypatch.setattr(logger, "level", logging.WARNING)
    assert not show_progress(None) and show_progress(True)
    monkeypatch.setattr(logger, "level", logging.INFO)
    assert show_progress(None) and not show_progress(False)
