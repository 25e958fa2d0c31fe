"""Seconds per training step of all-MiniLM-L6-v2: fp32 vs bf16 autocast vs bf16 with the token-embedding
matrix frozen (what `run.mixed_precision: bf16` and `freezing.mode: embeddings` change).

    .venv/bin/python benchmarks/speed/train_step.py [--threads 2] [--data-dir DIR]   # $MTST_DATA_DIR by default
    -> benchmarks/speed/results/train_step.json

One step = forward + backward + AdamW on 32 SST-2 train sentences (shuffled with seed 0, padded to the
longest); 3 warm-up steps, then the mean of 20. Run it on an idle machine: it measures the CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import time
from pathlib import Path

import torch
from transformers import AutoModel, AutoTokenizer

from mtst.model.encoder import default_backbone_path

BATCH, WARMUP, TIMED = 32, 3, 20
SETTINGS = {"fp32": (False, False), "bf16": (True, False), "bf16+frozen-token-embeddings": (True, True)}


def seconds_per_step(sentences: list[str], bf16: bool, freeze_embeddings: bool) -> tuple[float, float]:
    """(mean seconds per step, mean padded tokens per step)."""
    torch.manual_seed(0)
    path = default_backbone_path()
    tokenizer, model = AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).train()
    model.embeddings.word_embeddings.weight.requires_grad_(not freeze_embeddings)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)

    def step(batch: list[str]) -> int:
        features = tokenizer(batch, padding=True, truncation=True, max_length=128, return_tensors="pt")
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = model(**features).last_hidden_state.float().pow(2).mean()  # any scalar: the cost is the same
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return features["input_ids"].numel()

    batches = [sentences[i * BATCH:(i + 1) * BATCH] for i in range(WARMUP + TIMED)]
    for batch in batches[:WARMUP]:
        step(batch)
    start, tokens = time.perf_counter(), sum(step(batch) for batch in batches[WARMUP:])
    return (time.perf_counter() - start) / TIMED, tokens / TIMED


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--data-dir", type=Path, default=Path(os.environ.get(
        "MTST_DATA_DIR", Path(__file__).resolve().parents[3] / "shared" / "data")))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    lines = (args.data_dir / "sst2" / "train.tsv").read_text(encoding="utf-8").splitlines()[1:]
    sentences = [line.split("\t")[0] for line in lines]
    random.Random(0).shuffle(sentences)
    rows = {}
    for name, (bf16, frozen) in SETTINGS.items():
        seconds, tokens = seconds_per_step(sentences, bf16, frozen)
        rows[name] = {"seconds_per_step": round(seconds, 4), "padded_tokens_per_step": round(tokens)}
    base = rows["fp32"]["seconds_per_step"]
    for name, row in rows.items():
        row["speedup_vs_fp32"] = round(base / row["seconds_per_step"], 2)
        print(f"{name:32s} {row['seconds_per_step']:.3f} s/step  {row['speedup_vs_fp32']:.2f}x")
    out = Path(__file__).resolve().parent / "results" / "train_step.json"
    payload = {"threads": args.threads, "batch": BATCH, "timed_steps": TIMED, "torch": torch.__version__,
               "python": platform.python_version(), "cpu": platform.processor() or platform.machine(),
               "command": f".venv/bin/python benchmarks/speed/train_step.py --threads {args.threads}", "rows": rows}
    staging = out.with_suffix(".json.tmp")
    staging.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    staging.replace(out)


if __name__ == "__main__":
    main()
