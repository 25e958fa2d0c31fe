"""Builds what the speed benchmark measures: sentence sets, the mtst model, its exports, a hand-made
OpenVINO conversion of the bare encoder (fp32 and NNCF int8). Nothing here is timed."""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
EXPORTS = [("onnx", None), ("onnx", "int8"), ("openvino", None), ("openvino", "int8")]


def stsb_test(data: Path = DATA) -> tuple[list[str], list[tuple[int, int, float]]]:
    """Unique STS-B test sentences in file order, and (index a, index b, gold score) pairs."""
    sentences: dict[str, int] = {}
    pairs = []
    with (data / "stsb" / "sts-test.csv").open(encoding="utf-8") as handle:
        for row in csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE):
            a, b = (sentences.setdefault(text, len(sentences)) for text in (row[5], row[6]))
            pairs.append((a, b, float(row[4])))
    return list(sentences), pairs


def ag_news_texts(count: int, data: Path = DATA) -> list[str]:
    """Long inputs: "title. description" of the first ``count`` AG News test rows (file order)."""
    with (data / "ag_news" / "test.csv").open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))[:count]
    return [f"{title}. {body}".replace("\\", " ") for _, title, body in rows]


def sentence_sets(work: Path, subsample: int | None) -> dict:
    from transformers import AutoTokenizer

    from mtst.model.encoder import default_backbone_path

    tokenizer = AutoTokenizer.from_pretrained(str(default_backbone_path()))
    stsb, pairs = stsb_test()
    if subsample:
        stsb = stsb[:subsample]
        pairs = [p for p in pairs if p[0] < subsample and p[1] < subsample]
    lengths = [len(ids) for ids in tokenizer(stsb, truncation=True, max_length=256)["input_ids"]]
    short = [text for text, n in zip(stsb, lengths, strict=True) if n <= 10][:1000]
    long = ag_news_texts(200)
    sets = {"stsb": stsb, "short": short, "long": long, "pairs": pairs}
    sets["tokens"] = {name: [len(ids) for ids in tokenizer(sets[name], truncation=True, max_length=256)["input_ids"]]
                      for name in ("stsb", "short", "long")}
    (work / "sentences.json").write_text(json.dumps(sets))
    return sets


def mtst_model(work: Path) -> tuple[Path, str]:
    """The shipped default model when it exists, else the backbone with seeded (untrained) heads."""
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


def hand_openvino(work: Path, calibration: list[str]) -> None:
    """The bare encoder: torch.onnx -> OpenVINO IR (fp32 weights) and an NNCF int8 copy."""
    import nncf
    import openvino as ov
    import torch
    from transformers import AutoModel, AutoTokenizer

    from mtst.model.encoder import default_backbone_path

    out = work / "hand-ov"
    out.mkdir(exist_ok=True)
    path = str(default_backbone_path())
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModel.from_pretrained(path, attn_implementation="eager").eval()
    sample = tokenizer(["a first sentence", "and a second, longer one"], padding=True, return_tensors="pt")

    class Bare(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask):
            return self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state  # (B, T, H)

    axes = {"input_ids": {0: "b", 1: "t"}, "attention_mask": {0: "b", 1: "t"}, "token_embeddings": {0: "b", 1: "t"}}
    torch.onnx.export(Bare(), (sample["input_ids"], sample["attention_mask"]), str(out / "encoder.onnx"),
                      dynamo=False, opset_version=17, input_names=["input_ids", "attention_mask"],
                      output_names=["token_embeddings"], dynamic_axes=axes)
    ov_model = ov.convert_model(str(out / "encoder.onnx"))
    ov.save_model(ov_model, str(out / "encoder.xml"), compress_to_fp16=False)
    items = []
    for text in calibration:
        enc = tokenizer([text], return_tensors="np")
        items.append({"input_ids": enc["input_ids"].astype(np.int64),
                      "attention_mask": enc["attention_mask"].astype(np.int64)})
    quantized = nncf.quantize(ov.convert_model(str(out / "encoder.onnx")), nncf.Dataset(items),
                              model_type=nncf.ModelType.TRANSFORMER, subset_size=len(items))
    ov.save_model(quantized, str(out / "encoder-int8.xml"), compress_to_fp16=False)


def prepare(work: Path, subsample: int | None, reuse: bool = False) -> dict:
    """Everything the variants need, under ``work``; returns what was built and how long it took.

    ``reuse``: keep the model and exports an earlier run left in ``work`` (sentences are always rebuilt).
    """
    from mtst.inference.export import export_model
    from mtst.inference.quantize import read_calibration

    work.mkdir(parents=True, exist_ok=True)
    (work / "results").mkdir(exist_ok=True)
    sentence_sets(work, subsample)
    if reuse and (work / "prepared.json").exists():
        return json.loads((work / "prepared.json").read_text())
    model_dir, model_kind = mtst_model(work)
    (work / "model_dir.txt").write_text(str(model_dir))
    export_seconds = {}
    for format, quantize in EXPORTS:
        start = time.perf_counter()
        export_model(model_dir, work / f"{format}-{quantize or 'fp32'}", format=format, quantize=quantize)
        export_seconds[f"{format}-{quantize or 'fp32'}"] = round(time.perf_counter() - start, 1)
    hand_openvino(work, read_calibration(None))
    built = {"model": str(model_dir), "model_kind": model_kind, "export_seconds": export_seconds}
    (work / "prepared.json").write_text(json.dumps(built))
    return built
