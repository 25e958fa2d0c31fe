"""Few-shot contrastive training of the task branch: SetFit's loss on every pair inside a batch (issue 30).

SetFit fine-tunes a sentence encoder on sampled same / different-label pairs (their cosine pushed to 1 / 0), then
fits a logistic head on the new embeddings. Here only the task branch trains, so the embedding path stays the
backbone's bit for bit; the frozen bottom runs once per text; and each step scores every pair inside a batch of
BATCH_SIZE texts instead of sampled pairs: 120 pairs for the price of 16 embeddings, where a SetFit batch of 16 pairs
embeds up to 32 texts. Each label's text (its name, or "name: description") joins every batch as one more example
of its label: it anchors the branch to what the labels mean (GoEmotions, 8 per class: +2.6 and +8.5 points).
Each step runs its texts in groups of similar length (``length_groups``), and the head is then fitted on the cached
bottom's branch states (``trained_embeddings``): on SST-2 at 8 per class that took a fit from 1.0 s to 0.6 s.

Settings picked on GoEmotions (4-way sentiment groups and 8 emotions), none of the benchmark's datasets
(benchmarks/fewshot/pick_in_batch.py). bf16 autocast where the CPU has native bf16 (AVX512-BF16, AMX): about 2x
faster steps; weights, optimizer state and the embeddings the head is fitted on stay fp32.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn
from transformers import get_linear_schedule_with_warmup

from mtst.errors import MtstError
from mtst.model.cpu_paths import cpu_has_native_bf16
from mtst.model.modes import eval_mode
from mtst.model.multitask import MultiTaskModel

FRESH_BRANCH_AT = 2  # a model built for a few-shot task (mtst few-shot --backbone) branches where the shipped one does
BATCH_SIZE = 16  # texts per step, besides the label texts
EPOCHS = 10
LR = 3e-4  # few, cheap steps of the branch alone: GoEmotions preferred it to 5e-5 and 1e-4
WARMUP = 0.1  # of the steps, then linear decay to 0
CALL_OVERHEAD = 64  # tokens that one more forward call is worth (length_groups)
EMBED_ROWS = 64  # rows per call of trained_embeddings
BOTTOM_ROWS = 512  # rows per call of the frozen bottom in frozen_inputs (memory: attention grows with rows)
FUSED_ADAMW = ("cpu", "cuda")  # devices whose fused AdamW kernel torch ships


def check_branch_is_free(model: MultiTaskModel, task: str) -> None:
    """Raise unless ``model`` has a task branch that no head but ``task``'s reads: training it must not move
    another head (the embedding path is separate from it, so ``encode`` never moves)."""
    if model.branch is None:
        raise MtstError("few-shot method 'contrastive' trains a task branch and this model has none; start from "
                        "MultiTaskModel.from_backbone(path, branch_at=2) or use method 'logistic'")
    if next(model.branch.parameters(), None) is None:
        raise MtstError(f"few-shot method 'contrastive' trains the task branch, and this one has no layers (it "
                        f"starts after the encoder's last, layer {model.branch.at}); build the model with a smaller "
                        "branch_at, or use method 'logistic'")
    readers = sorted(name for name, head in model.heads.items() if name != task and head.reads != "sentence_embedding")
    if readers:
        raise MtstError(f"few-shot method 'contrastive' would retrain the task branch that {', '.join(readers)} "
                        "read; use method 'logistic' (the frozen embedding) or a model whose branch carries no "
                        "other head, e.g. MultiTaskModel.from_backbone(path, branch_at=2)")


def branch_is_free(model: MultiTaskModel, task: str) -> bool:
    try:
        check_branch_is_free(model, task)
    except MtstError:
        return False
    return True


def balanced_pair_loss(unit: torch.Tensor, gold: torch.Tensor) -> torch.Tensor:
    """Mean (cos - 1)^2 over same-label pairs plus mean cos^2 over the others, each pair once (i < j): the two
    groups weigh the same, as SetFit's balanced pair sampler makes them; a group without pairs adds nothing.
    ``unit``: (B, H) unit rows, ``gold``: (B,) label ids."""
    cosine = unit @ unit.T  # (B, B)
    same = gold[:, None] == gold[None, :]
    upper = torch.ones_like(same).triu(1)
    loss = cosine.new_zeros(())
    for chosen, target in ((same & upper, 1.0), (~same & upper, 0.0)):
        if chosen.any():
            loss = loss + (cosine[chosen] - target).pow(2).mean()
    return loss


def frozen_inputs(model: MultiTaskModel, texts: Sequence[str]) -> dict[str, torch.Tensor]:
    """Token ids, mask and the branch's frozen bottom (``shared_states``, eval mode) of ``texts``, padded together:
    computed once, reused by every step; the bottom runs BOTTOM_ROWS texts at a time, so thousands of examples do
    not build one attention tensor of them all."""
    device = next(model.parameters()).device
    features = model.tokenizer.collate(model.tokenizer(list(texts), ids_only=True))
    inputs = {key: features[key].to(device) for key in ("input_ids", "attention_mask")}
    with eval_mode(model), torch.no_grad():
        inputs["shared_states"] = torch.cat([model.shared_states(ids, mask) for ids, mask in zip(
            inputs["input_ids"].split(BOTTOM_ROWS), inputs["attention_mask"].split(BOTTOM_ROWS), strict=True)])
    return inputs


def branch_embeddings(model: MultiTaskModel, inputs: dict[str, torch.Tensor], rows: torch.Tensor) -> torch.Tensor:
    """(R, H) unit task embeddings of ``rows`` of ``inputs`` through the branch, trimmed to their longest text."""
    longest = int(inputs["attention_mask"][rows].sum(1).max())
    batch = {key: value[rows, :longest] for key, value in inputs.items()}
    pooled = model(batch, tasks=[], embedding=False)["task_embedding"].float()
    return pooled if model.config.encoder.normalize else nn.functional.normalize(pooled, p=2, dim=-1)


def length_groups(lengths: Sequence[int], overhead: int) -> list[list[int]]:
    """Positions of ``lengths`` cut into groups of similar length that minimise the padded tokens plus ``overhead``
    tokens per group (one more forward call): a batch of short texts and one long one pads little."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    best, cut = [0] + [math.inf] * len(order), [0] * (len(order) + 1)  # best[j]: the cost of the j shortest
    for j in range(1, len(order) + 1):
        for i in range(j):  # the last group: order[i:j], padded to lengths[order[j - 1]]
            cost = best[i] + (j - i) * lengths[order[j - 1]] + overhead
            if cost < best[j]:
                best[j], cut[j] = cost, i
    groups, j = [], len(order)
    while j:
        groups.append(order[cut[j]:j])
        j = cut[j]
    return groups[::-1]


def grouped_branch_embeddings(model: MultiTaskModel, inputs: dict[str, torch.Tensor],
                              rows: torch.Tensor) -> torch.Tensor:
    """``branch_embeddings`` of ``rows``, run in groups of similar length (``length_groups``): the same rows for
    less padding. A step of 16 SST-2 texts padded to its longest ran 3.3x the real tokens."""
    lengths = inputs["attention_mask"][rows].sum(1).tolist()
    groups = [torch.tensor(group, device=rows.device) for group in length_groups(lengths, CALL_OVERHEAD)]
    pooled = torch.cat([branch_embeddings(model, inputs, rows[group]) for group in groups])
    return pooled.index_select(0, torch.argsort(torch.cat(groups)))


def trained_embeddings(model: MultiTaskModel, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    """(N, H) float64 unit task-path embeddings of every row of ``inputs`` (``frozen_inputs``), in eval mode and
    fp32: what the head reads after training, without running the frozen bottom again."""
    order = torch.argsort(inputs["attention_mask"].sum(1))
    with eval_mode(model), torch.no_grad():
        chunks = [grouped_branch_embeddings(model, inputs, rows) for rows in order.split(EMBED_ROWS)]
    vectors = torch.cat(chunks).index_select(0, torch.argsort(order))
    return nn.functional.normalize(vectors.double(), p=2, dim=-1).cpu()


def train_branch(model: MultiTaskModel, texts: Sequence[str], labels: Sequence[str],
                 label_texts: Sequence[str] | None, names: Sequence[str], seed: int = 0,
                 bf16: bool | None = None) -> dict[str, torch.Tensor]:
    """Train ``model.branch`` on every pair inside batches of BATCH_SIZE ``texts`` (seeded: dropout and order);
    ``label_texts`` (one per entry of ``names``, None: no anchors) join every batch. ``bf16`` None: where native.
    Returns the ``frozen_inputs`` of ``texts`` then ``label_texts`` (for ``trained_embeddings``)."""
    device = next(model.parameters()).device
    if bf16 is None:
        bf16 = device.type == "cpu" and bool(cpu_has_native_bf16())
    anchors = list(label_texts or [])
    gold = torch.tensor([names.index(label) for label in labels] + list(range(len(anchors))), device=device)
    extra = torch.arange(len(texts), len(texts) + len(anchors), device=device)  # the anchors' rows
    per_epoch = math.ceil(len(texts) / BATCH_SIZE)
    steps = EPOCHS * per_epoch
    parameters = list(model.branch.parameters())
    trainable = [p.requires_grad for p in parameters]
    was_training = model.training
    with torch.random.fork_rng(devices=[]):  # seeded, and the caller's random state is left as it was
        torch.manual_seed(seed)
        inputs = frozen_inputs(model, [*texts, *anchors])
        optimizer = torch.optim.AdamW(parameters, lr=LR, fused=device.type in FUSED_ADAMW)  # half the update time
        schedule = get_linear_schedule_with_warmup(optimizer, int(WARMUP * steps), steps)
        for p in parameters:
            p.requires_grad_(True)
        model.train()
        try:
            for _ in range(EPOCHS):
                order = torch.randperm(len(texts)).to(device)
                for step in range(per_epoch):
                    rows = torch.cat([order[step::per_epoch], extra])  # equal batches (within one text)
                    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                        unit = grouped_branch_embeddings(model, inputs, rows)  # (R, H)
                    balanced_pair_loss(unit, gold[rows]).backward()
                    optimizer.step()
                    schedule.step()
                    optimizer.zero_grad(set_to_none=True)
        finally:
            model.train(was_training)
            for p, flag in zip(parameters, trainable, strict=True):
                p.requires_grad_(flag)
    return inputs


def task_path_embeddings(model: MultiTaskModel, texts: Sequence[str], batch_size: int = 64) -> torch.Tensor:
    """(N, H) unit pooled task-path states of ``texts`` in input order (length-sorted batches, eval mode)."""
    device = next(model.parameters()).device
    out = torch.empty(len(texts), model.config.encoder.hidden_size)
    with eval_mode(model), torch.no_grad():
        for indices, features in model.tokenizer.sorted_batches(model.tokenizer(list(texts), ids_only=True),
                                                                batch_size):
            batch = {key: value.to(device) for key, value in features.items() if key != "word_ids"}
            pooled = model(batch, tasks=[], embedding=False)["task_embedding"]
            out[indices] = nn.functional.normalize(pooled.float(), p=2, dim=-1).cpu()
    return out
