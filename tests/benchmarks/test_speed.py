"""The speed harness: its variants are well-formed data, rounds combine into medians, and every committed result
file still renders into docs/performance.md."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.speed.__main__ import RESULTS, analyse
from benchmarks.speed.prepare import EXPORTS
from benchmarks.speed.report import write_docs
from benchmarks.speed.variants import REFERENCE, VARIANTS


def test_every_variant_names_a_runtime_and_a_call_the_harness_has() -> None:
    assert REFERENCE in VARIANTS
    for variant in VARIANTS.values():
        assert variant.runtime in {"sentence-transformers", "model", *EXPORTS}, variant.name
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
