"""SetFit's recipe on mtst's task branch: a fresh model with a branch (layers 3-6 copied, the embedding path frozen),
the branch trained with SetFit's cosine-similarity loss on same / different-label pairs of the few examples, then
scikit-learn's LogisticRegression on the branch's ``task_embedding``. The frozen bottom runs once per example.

``bf16``: the branch trains under bf16 autocast (for CPUs with native bf16, AVX512-BF16 / AMX: the recipe's steps
run ~2x faster there); the weights, the optimizer and the embeddings the logistic head reads stay fp32.

Pairs as SetFit's sampler (setfit/sampler.py, ``num_iterations``): every combination of two examples (with
replacement) shuffled, split into same-label (target 1) and different-label (target 0) lists, and ITERATIONS x N of
each drawn in turn, cycling. Settings picked once, not tuned on the benchmark's data.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from transformers import get_linear_schedule_with_warmup

from mtst.training.few_shot_branch import branch_embeddings, frozen_inputs

BRANCH_AT = 2
ITERATIONS = 10  # pairs per epoch: 2 x ITERATIONS x examples (SetFit's paper: num_iterations 20, one epoch)
EPOCHS = 2
BATCH_SIZE = 16  # pairs per step (SetFit's default)
LR = 5e-5  # only the branch trains: a little above SetFit's 2e-5 for the whole body
WARMUP = 0.1


def pairs(labels: Sequence[str], iterations: int, seed: int) -> list[tuple[int, int, float]]:
    """(row, row, target) in SetFit's order: a same-label pair, then a different-label one, ``iterations`` x N each."""
    combos = np.stack(np.triu_indices(len(labels)), axis=-1)
    combos = combos[np.random.default_rng(seed).permutation(len(combos))]
    same = [(int(a), int(b), 1.0) for a, b in combos if labels[a] == labels[b]]
    other = [(int(a), int(b), 0.0) for a, b in combos if labels[a] != labels[b]]
    count = iterations * len(labels)
    return [pair for k in range(count) for pair in (same[k % len(same)], other[k % len(other)])]


def _embed(model, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
    """(N, H) task embeddings of ``texts`` in length-sorted batches, in input order."""
    items, out = model.tokenizer(list(texts), ids_only=True), np.empty((len(texts), model.config.encoder.hidden_size))
    with torch.no_grad():
        for indices, features in model.tokenizer.sorted_batches(items, batch_size):
            out[indices] = model(features, tasks=[], embedding=False)["task_embedding"].numpy()
    return out


def train_branch(model, texts: Sequence[str], labels: Sequence[str], seed: int, bf16: bool = False) -> None:
    """Train ``model.branch`` on SetFit pairs of the examples (seeded: dropout, order, pairs)."""
    torch.manual_seed(seed)
    inputs = frozen_inputs(model, texts)  # the frozen bottom once per text
    planned = pairs(labels, ITERATIONS, seed)
    plan = torch.tensor([(a, b) for a, b, _ in planned])  # (P, 2)
    targets = torch.tensor([target for *_, target in planned])  # (P,)
    steps = EPOCHS * math.ceil(len(plan) / BATCH_SIZE)
    optimizer = torch.optim.AdamW(model.branch.parameters(), lr=LR)
    schedule = get_linear_schedule_with_warmup(optimizer, int(WARMUP * steps), steps)
    generator = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(EPOCHS):
        order = torch.randperm(len(plan), generator=generator)
        for start in range(0, len(order), BATCH_SIZE):
            chosen = order[start : start + BATCH_SIZE]
            rows, where = torch.unique(plan[chosen], return_inverse=True)  # each text once per step
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                unit = branch_embeddings(model, inputs, rows)  # (R, H)
            cosine = (unit[where[:, 0]] * unit[where[:, 1]]).sum(-1)
            loss = torch.nn.functional.mse_loss(cosine, targets[chosen])
            loss.backward()
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
    model.eval()


def fit_and_predict(texts: Sequence[str], labels: Sequence[str], test_texts: Sequence[str], seed: int,
                    bf16: bool = False) -> tuple[list[str], float]:
    """(predicted labels of ``test_texts``, training wall seconds: branch, embeddings and logistic head)."""
    from mtst import MultiTaskModel

    model = MultiTaskModel.from_backbone(None, branch_at=BRANCH_AT, precision="fp32")
    started = time.perf_counter()
    train_branch(model, texts, labels, seed, bf16)
    head = LogisticRegression(max_iter=1000).fit(_embed(model, texts), list(labels))
    seconds = time.perf_counter() - started
    return head.predict(_embed(model, test_texts)).tolist(), seconds
