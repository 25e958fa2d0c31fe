"""What the speed harness measures, built once under a work folder: the sentences, the shipped default model's ONNX /
OpenVINO exports, fp32 and int8; and the one-pass variants' models, built in their own process (``backbone_model``)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from benchmarks.common import stsb_sentences

EXPORTS = {"onnx-fp32": ("onnx", None), "onnx-int8": ("onnx", "int8"), "openvino-fp32": ("openvino", None),
           "openvino-int8": ("openvino", "int8")}


def backbone_model(path: dict):
    """The default backbone on a task path (``from_backbone`` options: branch_at, side_reduction, ...) with the
    shipped model's heads, random weights (what one pass costs does not depend on them), and a task path whose
    weights differ from the backbone's, as after training (``distinct_task_path``)."""
    import torch

    from mtst import MultiTaskModel
    from mtst.model.storage import DEFAULT_MODEL_DIR, read_config

    torch.manual_seed(0)
    model = MultiTaskModel.from_backbone(**path)
    for name, head in read_config(DEFAULT_MODEL_DIR).heads.items():
        model.add_head(name, head.type, head.labels, head.hidden_dim, head.dropout, crf=head.crf,
                       word_shape="on" if head.word_shape_dim else "off")
    return distinct_task_path(model).eval()


def distinct_task_path(model, scale: float = 1e-3):
    """``model`` with noise of ``scale`` added to every weight of its branch or side network. A fresh branch is an
    exact copy of the backbone's top layers, and OpenVINO merges repeated subgraphs: it then computes the copy's
    first layers once for both paths, and times a one-pass call without most of its second stack (the one-pass
    tables before 2026-12-06 11:56 UTC did: 1.3x for the shipped branch, whose real export costs 1.9x)."""
    import torch

    tuned = model.tuned_encoder()
    if tuned is not model.encoder:
        generator = torch.Generator().manual_seed(1)
        with torch.no_grad():
            for parameter in tuned.parameters():
                parameter.add_(scale * torch.randn(parameter.shape, generator=generator, dtype=parameter.dtype))
    return model


def prepare(work: Path, subsample: int | None, runtimes: set[str], reuse: bool = False) -> dict:
    """Everything the variants need, under ``work``; returns what was built and how long the exports took.
    ``runtimes``: the exports wanted; ``reuse``: keep what an earlier run left in ``work`` (sentences are rebuilt)."""
    from mtst.inference.export import export_model
    from mtst.model.storage import DEFAULT_MODEL_DIR

    (work / "results").mkdir(parents=True, exist_ok=True)
    (work / "sentences.json").write_text(json.dumps({"stsb": stsb_sentences()[:subsample]}))  # what is timed
    built = json.loads((work / "prepared.json").read_text()) if reuse and (work / "prepared.json").exists() else {}
    if not built:  # the model as the package ships it
        built = {"model": str(DEFAULT_MODEL_DIR), "model_kind": "shipped default model (trained heads)",
                 "export_seconds": {}}
    for name in sorted(set(EXPORTS) & runtimes - set(built["export_seconds"])):
        start = time.perf_counter()
        export_model(built["model"], work / name, format=EXPORTS[name][0], quantize=EXPORTS[name][1])
        built["export_seconds"][name] = round(time.perf_counter() - start, 1)
    (work / "prepared.json").write_text(json.dumps(built))
    return built
