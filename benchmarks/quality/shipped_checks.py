"""Checks of a model meant to ship, on real data: its embeddings against sentence-transformers, and what storing
its branch and heads as bfloat16 does to its predictions.

    .venv/bin/python benchmarks/quality/shipped_checks.py [MODEL_DIR]   # default: the shipped default model

MODEL_DIR is the float32 model before it is stored as bfloat16 (a run's ``final/``): the shipped files are bfloat16
already, so on them check 2 compares bfloat16 with itself.

1. ``encode`` vs sentence-transformers' all-MiniLM-L6-v2 on the unique STS-B test sentences: min cosine, max |diff|,
   and STS-B test Spearman of both (issue 14: min cosine >= 0.9999, Spearman 82.03).
2. The same model saved with ``dtype="bfloat16"`` vs float32: arg-max label agreement per task (topic: AG News test
   split, sentiment: SST-2 dev, NER: CoNLL-2003 test sentences as raw text, per word) and the stored sizes.
Writes benchmarks/quality/results/shipped_checks.json.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import RESULTS, read_sts_test, setup_threads, task_splits  # noqa: E402
from scipy.stats import spearmanr  # noqa: E402


def parity(model) -> dict:
    from sentence_transformers import SentenceTransformer

    from mtst.model.encoder import default_backbone_path

    first, second, scores = read_sts_test()
    unique = sorted(set(first) | set(second))
    ours = np.asarray(model.encode(unique, batch_size=64))
    reference = SentenceTransformer(str(default_backbone_path()), device="cpu").encode(unique, batch_size=64)
    cosine = (ours * reference).sum(-1) / (np.linalg.norm(ours, axis=-1) * np.linalg.norm(reference, axis=-1))
    index = {text: i for i, text in enumerate(unique)}

    def spearman(vectors: np.ndarray) -> float:
        a, b = vectors[[index[t] for t in first]], vectors[[index[t] for t in second]]
        a, b = (v / np.linalg.norm(v, axis=-1, keepdims=True) for v in (a, b))
        return round(100 * float(spearmanr((a * b).sum(-1), scores).statistic), 3)

    return {"sentences": len(unique), "min_cosine": float(cosine.min()),
            "max_abs_diff": float(np.abs(ours - reference).max()), "stsb_spearman_mtst": spearman(ours),
            "stsb_spearman_sentence_transformers": spearman(reference)}


def storage(directory: Path, model) -> dict:
    from mtst import MultiTaskModel
    from mtst.inference.agreement import label_agreement, predicted_labels

    sentences = {"topic": task_splits("topic")["test"].texts, "sentiment": task_splits("sentiment")["test"].texts,
                 "ner": [" ".join(words) for words in task_splits("ner")["test"].texts]}
    with tempfile.TemporaryDirectory() as tmp:
        half_dir = model.save(Path(tmp) / "bf16", include_encoder=False, dtype="bfloat16")
        half = MultiTaskModel.load(half_dir)
        report = {"files_bytes": {}}
        for name, path in (("float32", directory), ("bfloat16", half_dir)):
            report["files_bytes"][name] = {f.name: f.stat().st_size for f in path.glob("*.safetensors")}
        agreement = {}
        for task, texts in sentences.items():
            got = label_agreement(predicted_labels(model, texts), predicted_labels(half, texts))
            agreement.update({key: round(100 * value, 3) for key, value in got.items() if key.startswith(task)})
        report["agreement_percent"] = agreement
        report["sentences"] = {task: len(texts) for task, texts in sentences.items()}
    return report


def main() -> None:
    from mtst import MultiTaskModel
    from mtst.model.storage import DEFAULT_MODEL_DIR

    setup_threads()
    directory = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_MODEL_DIR
    started = time.time()
    model = MultiTaskModel.load(directory)
    result = {"model": str(directory), "parity": parity(model)}
    print(json.dumps(result["parity"]), flush=True)
    if model.branch is not None:
        result["storage"] = storage(directory, model)
        print(json.dumps(result["storage"]), flush=True)
    result["wall_s"] = round(time.time() - started, 1)
    out = RESULTS / "shipped_checks.json"
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
