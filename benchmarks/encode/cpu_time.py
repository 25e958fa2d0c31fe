"""torch fp32 encode: CPU ms per sentence and sentences/s, before/after oneDNN linears, in one process.

    .venv/bin/python benchmarks/encode/cpu_time.py [--threads 2] [--rounds 3] [--sentences N] [--matmul-only]

Variants, alternating round by round over the unique STS-B test sentences (needs ../shared/data):
sentence-transformers ``encode`` (batch 32, the reference), plain transformers AutoModel + mean pooling
(sorted by token length, batch 64), mtst ``encode`` (batch 64) with ``MTST_ONEDNN=0`` (torch's MKL
matmuls: before) and with oneDNN (after). CPU time is the process's (all threads), so it shows work done
even on a shared machine; sentences/s is wall time and only means something on an idle machine. The
fastest round counts. Also checks the cosine of every mtst embedding against sentence-transformers.
First, one fp32 product of MiniLM's shapes through torch's ``F.linear`` (MKL sgemm), MKL's packed-weight GEMM
and oneDNN's linear (CPU ms per call, fastest of 3 x 50 calls).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "speed"))

from prepare import stsb_test  # noqa: E402


def plain_transformers(model, texts: list[str], batch_size: int = 64) -> np.ndarray:
    """What a user writes by hand: AutoModel + mask-aware mean pooling + L2, sorted by token length."""
    import torch

    tokenizer, transformer = model.tokenizer.tokenizer, model.encoder.transformer
    ids = tokenizer(texts, truncation=True, max_length=model.config.encoder.max_seq_length)["input_ids"]
    order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
    out = np.zeros((len(ids), model.config.encoder.hidden_size), dtype=np.float32)
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            input_ids = torch.zeros((len(batch), len(ids[batch[0]])), dtype=torch.long)  # (B, T)
            mask = torch.zeros_like(input_ids)
            for row, index in enumerate(batch):
                input_ids[row, : len(ids[index])] = torch.tensor(ids[index])
                mask[row, : len(ids[index])] = 1
            states = transformer(input_ids=input_ids, attention_mask=mask).last_hidden_state  # (B, T, H)
            weights = mask[..., None].float()
            pooled = (states * weights).sum(1) / weights.sum(1).clamp(min=1e-9)  # (B, H)
            out[batch] = torch.nn.functional.normalize(pooled, dim=-1).numpy()
    return out


def matmul_check(rows: int = 960) -> None:
    """(rows x 384) @ (384 x 1536): the encoder's intermediate layer for a batch of 64 x 15 tokens."""
    import torch

    x, weight, bias = torch.randn(rows, 384), torch.randn(1536, 384), torch.randn(1536)
    packed = torch.ops.mkl._mkl_reorder_linear_weight(weight, rows)
    calls = {
        "F.linear (MKL sgemm)": lambda: torch.nn.functional.linear(x, weight, bias),
        "MKL packed weights": lambda: torch.ops.mkl._mkl_linear(x, packed, weight, bias, rows),
        "oneDNN linear": lambda: torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], ""),
    }
    with torch.inference_mode():
        for name, call in calls.items():
            best = float("inf")
            for _ in range(3):
                start = time.process_time()
                for _ in range(50):
                    call()
                best = min(best, (time.process_time() - start) / 50)
            print(f"matmul {name:22s} CPU {1000 * best:.2f} ms/call  {2 * rows * 384 * 1536 / best / 1e9:.0f} GFLOP/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sentences", type=int, default=None, help="first N unique STS-B test sentences")
    parser.add_argument("--matmul-only", action="store_true", help="only the single-product comparison")
    args = parser.parse_args()
    import torch
    from sentence_transformers import SentenceTransformer

    from mtst import MultiTaskModel
    from mtst.model.encoder import default_backbone_path

    torch.set_num_threads(args.threads)
    matmul_check()
    if args.matmul_only:
        return
    texts = stsb_test()[0][: args.sentences]
    os.environ["MTST_ONEDNN"] = "0"
    before = MultiTaskModel.from_backbone()
    del os.environ["MTST_ONEDNN"]
    after = MultiTaskModel.from_backbone()
    st = SentenceTransformer(str(default_backbone_path()), device="cpu")
    variants = {
        "sentence-transformers": lambda: st.encode(texts, batch_size=32, convert_to_numpy=True),
        "transformers-by-hand": lambda: plain_transformers(before, texts),
        "mtst-mkl (MTST_ONEDNN=0)": lambda: before.encode(texts, batch_size=64),
        "mtst-onednn": lambda: after.encode(texts, batch_size=64),
    }
    reference = variants["sentence-transformers"]()
    cosine = {name: float((variants[name]() * reference).sum(1).min()) for name in list(variants)[1:]}
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
    load_before = os.getloadavg()
    for _ in range(args.rounds):
        for name, run in variants.items():
            cpu, wall = time.process_time(), time.perf_counter()
            run()
            times[name].append((time.process_time() - cpu, time.perf_counter() - wall))
    ref_speed = len(texts) / min(wall for _, wall in times["sentence-transformers"])
    results = {}
    for name, rounds in times.items():
        speed = len(texts) / min(wall for _, wall in rounds)
        results[name] = {"cpu_ms_per_sentence": 1000 * min(cpu for cpu, _ in rounds) / len(texts),
                         "sentences_per_s": speed, "ratio_to_reference": speed / ref_speed,
                         "min_cosine_to_reference": cosine.get(name, 1.0)}
        print(f"{name:26s} CPU {results[name]['cpu_ms_per_sentence']:.3f} ms/sentence   {speed:6.0f} sentences/s "
              f"({speed / ref_speed:.2f}x)   min cos {results[name]['min_cosine_to_reference']:.7f}")
    print(json.dumps({"sentences": len(texts), "threads": args.threads, "rounds": args.rounds,
                      "load_before": load_before, "load_after": os.getloadavg(), "results": results}))


if __name__ == "__main__":
    main()
