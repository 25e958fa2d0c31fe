"""Joint vs separate at inference: parameters, weight memory and latency of one model with three heads
versus three single-head models (heads are untrained: cost does not depend on the weights' values).

    .venv/bin/python benchmarks/quality/footprint.py     # -> results/footprint/joint-vs-separate-seed0.json

Latency is measured in one process, interleaved (joint, separate, joint, ...) so both see the same machine
load; the median of the repeats is reported. The sentences are the first 256 of SST-2 dev.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import MAX_SEQ_LENGTH, result_path, seed_everything, setup_threads, task_splits, write_result  # noqa: E402

from mtst.model.multitask import MultiTaskModel  # noqa: E402

HEADS = {
    "topic": ("sentence_classification", ["World", "Sports", "Business", "Sci/Tech"]),
    "sentiment": ("sentence_classification", ["negative", "positive"]),
    "ner": ("token_classification", ["O", "B-LOC", "I-LOC", "B-MISC", "I-MISC", "B-ORG", "I-ORG", "B-PER", "I-PER"]),
}
REPEATS = 5


def _model(tasks: list[str]) -> MultiTaskModel:
    model = MultiTaskModel.from_backbone(max_seq_length=MAX_SEQ_LENGTH)
    for task in tasks:
        model.add_head(task, *HEADS[task])
    return model


def _bytes(models: list[MultiTaskModel]) -> int:
    return sum(p.numel() * p.element_size() for m in models for p in m.parameters())


def _time(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    setup_threads()
    seed_everything(0)
    sentences = task_splits("sentiment")["test"].texts[:256]
    joint = _model(list(HEADS))
    separate = [_model([task]) for task in HEADS]
    with torch.inference_mode():
        joint.predict(sentences[:16])  # warm-up
        for model in separate:
            model.predict(sentences[:16])
        joint_s, separate_s, one_s = [], [], []
        for _ in range(REPEATS):
            joint_s.append(_time(lambda: joint.predict(sentences, batch_size=32)))
            separate_s.append(_time(lambda: [m.predict(sentences, batch_size=32) for m in separate]))
            one_s.append(_time(lambda: joint.predict(sentences[:1])))
    result = {
        "experiment": "footprint", "variant": "joint-vs-separate", "seed": 0,
        "metrics": {
            "joint/parameters": sum(p.numel() for p in joint.parameters()),
            "separate/parameters": sum(p.numel() for m in separate for p in m.parameters()),
            "joint/weight_MiB": round(_bytes([joint]) / 2**20, 1),
            "separate/weight_MiB": round(_bytes(separate) / 2**20, 1),
            "joint/ms_per_sentence": round(1000 * statistics.median(joint_s) / len(sentences), 2),
            "separate/ms_per_sentence": round(1000 * statistics.median(separate_s) / len(sentences), 2),
            "joint/single_sentence_ms": round(1000 * statistics.median(one_s), 1),
        },
        "sentences": len(sentences), "repeats": REPEATS, "wall_s": round(sum(joint_s) + sum(separate_s), 1),
    }
    path = result_path("footprint", "joint-vs-separate", 0)
    write_result(path, result)
    print(result["metrics"])


if __name__ == "__main__":
    main()
