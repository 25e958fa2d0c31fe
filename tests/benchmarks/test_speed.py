"""The speed harness: its variants are well-formed data, rounds combine into medians, every committed result
file still renders into docs/performance.md, and a one-pass run renders its table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.speed.__main__ import RESULTS, analyse
from benchmarks.speed.prepare import EXPORTS
from benchmarks.speed.report import one_pass_table, write_docs
from benchmarks.speed.variants import ONE_PASS, REFERENCE, VARIANTS, sizes


def test_every_variant_names_a_runtime_and_a_call_the_harness_has() -> None:
    assert REFERENCE in VARIANTS
    assert not set(VARIANTS) & set(ONE_PASS)
    for variant in [*VARIANTS.values(), *ONE_PASS.values()]:
        runtimes = {"sentence-transformers", "model", "backbone", "backbone-openvino", *EXPORTS}
        assert variant.runtime in runtimes, variant.name
        assert variant.call in {"encode", "predict", "predict+embedding", "separate"}, variant.name
        assert variant.runtime != "sentence-transformers" or variant.call == "encode"


def _round(speeds: dict[str, float]) -> dict[str, dict]:
    return {name: {"sets": {"stsb": {"sentences": 100, "seconds": 100 / speed, "sentences_per_s": speed}}}
            for name, speed in speeds.items()}


def test_ratios_are_taken_within_each_round_then_the_median(tmp_path: Path) -> None:
    rounds = [_round({REFERENCE: 100, "torch-predict": 200, "separate-models": 50}),
              _round({REFERENCE: 50, "torch-predict": 110, "separate-models": 20}),  # a slow round: both slowed
              _round({REFERENCE: 100, "torch-predict": 210, "separate-models": 60})]
    results = analyse(rounds, tmp_path)
    row = results["torch-predict"]["sets"]["stsb"]
    assert row["ratios"] == [2.0, 2.2, 2.1] and row["ratio_to_reference"] == 2.1 and row["sentences_per_s"] == 200
    assert results["separate-models"]["cost_vs_mtst_predict"] == 4.0  # 200 / 50, the medians
    assert rounds[0]["torch-predict"]["sets"]["stsb"]["sentences_per_s"] == 200  # the rounds are left as they were


@pytest.mark.parametrize("path", sorted([*RESULTS.glob("speed-*.json"), *RESULTS.glob("rounds-*.json")]),
                         ids=lambda path: path.name)
def test_every_committed_result_renders(path: Path, tmp_path: Path) -> None:
    docs = tmp_path / "performance.md"
    write_docs(json.loads(path.read_text()), path, "main", docs)
    text = docs.read_text()
    assert "begin -->" in text and "end -->" in text and "| variant |" in text


def test_a_one_pass_run_renders_its_table(tiny_model) -> None:
    found = sizes(tiny_model)  # the frozen encoder: no layer beside the backbone's
    assert found["layer_work_ratio"] == 1.0 and found["trainable_parameters"] > 0
    assert 0 < found["saved_bytes_bfloat16"] < found["saved_bytes_float32"]
    same = {"predict_s": 0.5, "encode_s": 0.4, "ratio": 1.25, "cpu_ratio": 1.2, "labels_ratio": 1.1}
    report = {"results": {"frozen-encoder": {"sets": {"stsb": {"sentences": 100}},
                                             "predict_vs_encode_same_process": same, **found}}}
    row = one_pass_table(report).splitlines()[2]
    assert row.startswith("| frozen-encoder | 1.25x | 1.20x | 1.00x | 1.10x | 200 | 250 | ")
    del same["labels_ratio"]  # a run from before predict alone was timed
    assert one_pass_table(report).splitlines()[2].startswith("| frozen-encoder | 1.25x | 1.20x | 1.00x | - | 200 | ")


def test_the_one_pass_models_branch_is_not_a_copy_that_openvino_would_merge(tiny_st_dir, tmp_path) -> None:
    """A fresh branch copies the backbone's layers and OpenVINO computes identical subgraphs once, so a one-pass
    timing of it left out the second stack; distinct_task_path makes the branch's weights differ, as trained ones do."""
    import re

    from benchmarks.speed.prepare import distinct_task_path
    from mtst import MultiTaskModel
    from mtst.inference.export import export_model

    attention = {}
    for distinct in (False, True):
        model = MultiTaskModel.from_backbone(tiny_st_dir, branch_at=0)
        model.add_head("topic", "sentence_classification", ["a", "b"])
        if distinct:
            distinct_task_path(model)
            copies = zip(model.branch.state_dict().values(), model.encoder.layers.state_dict().values(), strict=True)
            assert not any(mine.equal(theirs) for mine, theirs in copies)
        exported = export_model(model.save(tmp_path / f"model-{distinct}"), tmp_path / f"ov-{distinct}",
                                format="openvino")
        graph = (Path(exported) / "openvino_model.xml").read_text(encoding="utf-8")
        attention[distinct] = len(re.findall(r'type="ScaledDotProductAttention"', graph))
    layers = len(model.encoder.layers)
    assert attention == {False: layers, True: 2 * layers}  # merged into one stack; both stacks
