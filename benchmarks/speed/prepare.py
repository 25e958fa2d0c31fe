"""What the speed harness measures, built once under a work folder: the sentences, the mtst model (the shipped
default, else the backbone with seeded untrained heads) and its ONNX / OpenVINO exports, fp32 and int8."""

from __future__ import annotations

import json
import time
from pathlib import Path

from benchmarks.common import stsb_sentences

EXPORTS = {"onnx-fp32": ("onnx", None), "onnx-int8": ("onnx", "int8"), "openvino-fp32": ("openvino", None),
           "openvino-int8": ("openvino", "int8")}


def mtst_model(work: Path) -> tuple[Path, str]:
    import torch

    from mtst import MultiTaskModel
    from mtst.model.storage import DEFAULT_MODEL_DIR

    if (DEFAULT_MODEL_DIR / "mtst_config.json").exists():
        return DEFAULT_MODEL_DIR, "shipped default model (trained heads)"
    torch.manual_seed(0)
    model = MultiTaskModel.from_backbone()
    model.add_head("topic", "sentence_classification", ["World", "Sports", "Business", "Sci/Tech"])
    model.add_head("sentiment", "sentence_classification", ["negative", "positive"])
    model.add_head("ner", "token_classification",
                   ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"])
    return model.save(work / "model"), "all-MiniLM-L6-v2 + seeded untrained heads (topic, sentiment, ner)"


def prepare(work: Path, subsample: int | None, runtimes: set[str], reuse: bool = False) -> dict:
    """Everything the variants need, under ``work``; returns what was built and how long the exports took.
    ``runtimes``: the exports wanted; ``reuse``: keep what an earlier run left in ``work`` (sentences are rebuilt)."""
    from mtst.inference.export import export_model

    (work / "results").mkdir(parents=True, exist_ok=True)
    (work / "sentences.json").write_text(json.dumps({"stsb": stsb_sentences()[:subsample]}))  # what is timed
    built = json.loads((work / "prepared.json").read_text()) if reuse and (work / "prepared.json").exists() else {}
    if not built:
        model_dir, model_kind = mtst_model(work)
        built = {"model": str(model_dir), "model_kind": model_kind, "export_seconds": {}}
    for name in sorted(set(EXPORTS) & runtimes - set(built["export_seconds"])):
        start = time.perf_counter()
        export_model(built["model"], work / name, format=EXPORTS[name][0], quantize=EXPORTS[name][1])
        built["export_seconds"][name] = round(time.perf_counter() - start, 1)
    (work / "prepared.json").write_text(json.dumps(built))
    return built
