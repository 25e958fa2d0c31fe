"""The CPU-path choice: the gate, the choice from (fake) timings, the cache key, the cache, the overrides."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mtst.errors import MtstError
from mtst.model import cpu_paths, cpu_probe
from mtst.model.cpu_paths import CpuPath, cache_key, choose, parity, passes, remember, resolve
from mtst.model.predictor import TorchRuntime

VERSIONS = {"mtst": "1", "torch": "2", "transformers": "5"}
CPU = {"model": "Some CPU", "flags": ["avx2", "avx512_bf16"]}


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("MTST_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("MTST_ONEDNN", raising=False)


def outputs(rows: int = 400, flip_rows: int = 0, flip_words: int = 0):
    vectors = np.random.default_rng(0).normal(size=(rows, 8)).astype(np.float32)
    labels = [{"topic": "a", "ner": {0: "O", 1: "B-PER"}} for _ in range(rows)]
    for row in labels[:flip_rows]:
        row["topic"] = "b"
    for row in labels[rows - flip_words:] if flip_words else []:
        row["ner"] = {0: "B-LOC", 1: "B-PER"}
    return vectors, labels


def test_the_reference_passes_its_own_gate():
    report = parity(outputs(), outputs())
    assert report == {"mean_cosine": pytest.approx(1.0), "min_cosine": pytest.approx(1.0), "row_agreement": 1.0,
                      "word_agreement": 1.0}
    assert passes(report)


@pytest.mark.parametrize("flipped", [{"flip_rows": 5}, {"flip_words": 5}])
def test_the_gate_refuses_a_path_that_changes_labels(flipped):
    report = parity(outputs(), outputs(**flipped))  # 5 of 800 task rows, or 5 of 800 words: 0.994 < 0.995
    assert report["mean_cosine"] == pytest.approx(1.0)
    assert not passes(report)


def test_the_gate_refuses_a_path_whose_embeddings_drift():
    vectors, labels = outputs()
    drifted = vectors.copy()
    drifted[0] = -drifted[0]  # one sentence's embedding turned around
    assert not passes(parity((vectors, labels), (drifted, labels)))


def timings(fast: tuple[str, str]) -> dict:
    """Fake seconds: ``fast`` takes half as long as the others, batch 64 encodes and batch 32 predicts fastest."""
    table = {}
    for kind in (("torch", "fp32"), ("onednn", "fp32"), ("torch", "bf16")):
        for size in (32, 64, 128):
            base = 0.5 if kind == fast else 1.0
            table[(*kind, "encode", size)] = base * (1.0 if size == 64 else 1.2)
            table[(*kind, "predict", size)] = base * (2.0 if size == 32 else 2.5)
    return table


def test_the_fastest_passing_path_wins_with_its_batch_sizes():
    everything = {("torch", "fp32"), ("onednn", "fp32"), ("torch", "bf16")}
    assert choose(timings(("torch", "bf16")), everything) == CpuPath("torch", "bf16", 64, 32)
    assert choose(timings(("onednn", "fp32")), everything) == CpuPath("onednn", "fp32", 64, 32)


def test_a_faster_path_that_failed_the_gate_is_refused():
    assert choose(timings(("torch", "bf16")), {("torch", "fp32"), ("onednn", "fp32")}).precision == "fp32"
    with pytest.raises(MtstError, match="parity gate"):
        choose(timings(("torch", "bf16")), set())


def test_the_probe_refuses_a_faster_candidate_whose_labels_flip(tiny_model, monkeypatch):
    real_outputs = cpu_probe.outputs

    def flipping(model, texts, batch_size=64):
        vectors, labels = real_outputs(model, texts, batch_size)
        if model.cpu_path.precision == "bf16":  # a fake lossy path: every topic label changes
            labels = [{**row, "topic": "flipped"} for row in labels]
        return vectors, labels

    monkeypatch.setattr(cpu_probe, "outputs", flipping)
    monkeypatch.setattr(cpu_probe, "candidates", lambda *facts: [("torch", "fp32"), ("torch", "bf16")])
    monkeypatch.setattr(cpu_probe, "alternating_rounds", lambda calls, rounds, summary=None: {
        key: (0.1 if key[1] == "bf16" else 1.0) for key in calls})  # bf16 "measured" 10x faster
    result = tiny_model.choose_cpu_path(["a short one", "Anna lives in Berlin .", "three words here"])
    assert result["path"].name == "torch-fp32"
    assert not result["parity"]["torch-bf16"]["passed"] and result["parity"]["torch-fp32"]["passed"]
    assert tiny_model.cpu_path.name == "torch-fp32"
    cached = json.loads((cpu_paths.cache_dir() / cpu_paths.CACHE_FILE).read_text())
    assert [entry["path"]["precision"] for entry in cached.values()] == ["fp32"]


def test_a_real_probe_on_the_tiny_model_keeps_its_choice_for_later_loads(tiny_model):
    texts = ["a short one", "Anna lives in Berlin .", "a longer sentence with a few more words in it"] * 4
    result = cpu_probe.probe(tiny_model, texts, rounds=1, batchings=((4, None), (8, 40)))
    assert result["path"].name in result["parity"] and result["parity"]["torch-fp32"]["passed"]
    assert result["path"].batching("encode") in ((4, None), (8, 40))
    assert f"{result['path'].name} encode 8/40t" in result["timings"]
    assert resolve("auto", tiny_model.config) == (result["path"], "cached")
    assert resolve("fp32", tiny_model.config) == (CpuPath(), "requested")  # an explicit precision wins


def test_the_cache_key_changes_with_cpu_flags_versions_model_and_probe(monkeypatch):
    key = cache_key(CPU, VERSIONS, "model-a")
    assert key == cache_key(dict(CPU), dict(VERSIONS), "model-a")
    assert key != cache_key({**CPU, "model": "Other CPU"}, VERSIONS, "model-a")
    assert key != cache_key({**CPU, "flags": ["avx2"]}, VERSIONS, "model-a")
    assert key != cache_key(CPU, {**VERSIONS, "torch": "3"}, "model-a")
    assert key != cache_key(CPU, VERSIONS, "model-b")
    monkeypatch.setattr(cpu_paths, "PROBE_VERSION", cpu_paths.PROBE_VERSION + 1)  # the probe measures more now
    assert key != cache_key(CPU, VERSIONS, "model-a")


def test_the_model_fingerprint_follows_its_heads_not_its_training_state(tiny_model):
    before = cpu_paths.model_fingerprint(tiny_model.config)
    assert cpu_paths.model_fingerprint(tiny_model.config.model_copy(update={"trained": True})) == before
    tiny_model.add_head("mood", "sentence_classification", ["up", "down"])
    assert cpu_paths.model_fingerprint(tiny_model.config) != before


def test_auto_applies_a_cached_choice_and_explicit_precisions_and_mtst_onednn_override(tiny_model, monkeypatch):
    assert tiny_model.use_precision("auto") == CpuPath() and tiny_model.cpu_path_source == "default"
    remember(cpu_paths.key_for(tiny_model.config), CpuPath("torch", "bf16", 128, 64), {})
    assert tiny_model.use_precision("auto") == CpuPath("torch", "bf16", 128, 64)
    assert tiny_model.cpu_path_source == "cached"
    assert tiny_model.use_precision("fp32") == CpuPath()
    assert tiny_model.use_precision("bf16").precision == "bf16"
    remember(cpu_paths.key_for(tiny_model.config), CpuPath("onednn", "fp32"), {})
    monkeypatch.setenv("MTST_ONEDNN", "0")
    assert tiny_model.use_precision("auto").kernels == "torch"  # the environment fixes the kernels
    with pytest.raises(MtstError, match="unknown precision 'fp16'"):
        tiny_model.use_precision("fp16")


def test_an_unreadable_cache_is_ignored(tiny_model):
    folder = cpu_paths.cache_dir()
    folder.mkdir(parents=True)
    (folder / cpu_paths.CACHE_FILE).write_text("{not json")
    assert resolve("auto", tiny_model.config) == (CpuPath(), "default")


def test_bf16_runs_under_autocast_and_gives_float32_close_to_fp32(tiny_model):
    reference = tiny_model.encode(["Anna lives in Berlin .", "a short one"])
    tiny_model.use_cpu_path(CpuPath(precision="bf16"))
    with TorchRuntime(tiny_model).running():
        assert torch.is_autocast_enabled("cpu")
    embeddings = tiny_model.encode(["Anna lives in Berlin .", "a short one"])
    assert embeddings.dtype == np.float32
    cosine = (reference * embeddings).sum(-1) / np.linalg.norm(embeddings, axis=-1)
    assert cosine.min() > 0.99
    rows = tiny_model.predict(["Anna lives in Berlin ."], include_embedding=True)
    assert isinstance(rows[0]["topic"]["score"], float)
    tiny_model.use_cpu_path(CpuPath())
    with TorchRuntime(tiny_model).running():
        assert not torch.is_autocast_enabled("cpu")


def test_only_native_bf16_cpus_get_a_bf16_candidate():
    assert ("torch", "bf16") not in cpu_probe.candidates(["avx2", "avx512f"], onednn=True, onednn_bf16=True)
    assert ("torch", "bf16") in cpu_probe.candidates(["amx_bf16"], onednn=False)
    assert ("onednn", "fp32") not in cpu_probe.candidates(["amx_bf16"], onednn=False)
    assert ("onednn", "bf16") in cpu_probe.candidates(["amx_bf16"], onednn=True, onednn_bf16=True)
    assert ("onednn", "bf16") not in cpu_probe.candidates(["amx_bf16"], onednn=True, onednn_bf16=False)


def test_a_token_budget_batching_is_chosen_with_its_kernels():
    table = {("torch", "bf16", "encode", (64, None)): 1.0, ("torch", "bf16", "encode", (256, 2048)): 0.7,
             ("torch", "bf16", "predict", (32, None)): 2.0, ("torch", "bf16", "predict", (256, 1024)): 2.1}
    path = choose(table, {("torch", "bf16")})
    assert path == CpuPath("torch", "bf16", 256, 32, 2048, None)
    assert path.batching("encode") == (256, 2048) and path.batching("predict") == (32, None)
    assert cpu_paths.batching_label((256, 2048)) == "256/2048t" and cpu_paths.batching_label(64) == "64"


def passes_of(model, **options) -> list[int]:
    """The rows of each pass ``encode`` makes over 7 sentences of different lengths."""
    sizes = []
    real = TorchRuntime.embed

    def embed(runtime, batch, normalize):
        sizes.append(len(batch["input_ids"]))
        return real(runtime, batch, normalize)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(TorchRuntime, "embed", embed)
        model.encode([" ".join(["word"] * n) for n in range(1, 8)], **options)
    return sorted(sizes)


def test_encode_without_a_batch_size_takes_the_measured_batching_only(tiny_model):
    assert passes_of(tiny_model) == [7]  # nothing measured: 32 rows, as sentence-transformers
    remember(cpu_paths.key_for(tiny_model.config), CpuPath("torch", "fp32", 4, 32, 18, None), {})
    tiny_model.use_precision("auto")  # cached: at most 4 rows and 18 padded tokens per pass
    assert tiny_model.cpu_path_source == "cached"
    assert passes_of(tiny_model) == [2, 2, 3]  # 3 to 9 tokens: (9, 8), (7, 6), (5, 4, 3)
    assert passes_of(tiny_model, batch_size=7) == [7]  # a batch size given: as given, no measured budget
    tiny_model.max_tokens = 100
    assert passes_of(tiny_model) == [2, 2, 3]  # both budgets cap a pass: the tighter one decides
    tiny_model.max_tokens = 10
    assert passes_of(tiny_model) == [1, 1, 1, 1, 1, 2]  # 9 | 8 | 7 | 6 | 5, 4 | 3
    tiny_model.use_precision("fp32")
    tiny_model.max_tokens = None
    assert passes_of(tiny_model) == [7]


def test_a_model_with_nothing_cached_measures_its_path_once_on_first_use(tiny_st_dir, monkeypatch):
    import mtst.model.multitask as multitask
    from mtst import MultiTaskModel

    calls = []

    def fake_probe(model, sentences=None, save=True, quick=False):
        calls.append(quick)
        model.use_cpu_path(CpuPath())
        return {"path": model.cpu_path}

    monkeypatch.setattr(multitask, "probe", fake_probe)
    MultiTaskModel.from_backbone(tiny_st_dir)  # the suite's default: MTST_CPU_PROBE=0
    assert calls == []
    monkeypatch.setenv("MTST_CPU_PROBE", "1")
    MultiTaskModel.from_backbone(tiny_st_dir)
    assert calls == [True]  # the quick probe
    MultiTaskModel.from_backbone(tiny_st_dir, precision="fp32")  # an explicit precision never measures
    assert calls == [True]
