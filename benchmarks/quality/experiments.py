"""The trained experiments: each variant is a TrainConfig (built from the shared task specs + overrides)
run with ``mtst.training.recipe.train``, then evaluated on every task's test split and on STS-B test.

Budget (2 shared CPU cores): subsampled training sets (common.TRAIN_SIZES), max_seq_length 128,
batch 16, fixed step budgets (STEPS). Every number in the results comes from this small budget, not
from converged training; docs/training-guide.md says what a full budget would cost.
"""

from __future__ import annotations

import copy
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from common import (
    CACHE,
    MAX_SEQ_LENGTH,
    Timer,
    clean_spec,
    evaluate_model,
    result_path,
    sts_source,
    task_specs,
)

from mtst.model.multitask import MultiTaskModel
from mtst.training.config import TrainConfig

RUNS = CACHE / "runs"
STEPS = 100  # optimizer steps per task (joint runs get STEPS x number of tasks)
QUICK_STEPS = 4
CONLL_TRAIN_SENTENCES = 14041  # scarce-task percentages are of the full CoNLL-2003 train set

BASE_OPTIMIZER = {"lr": 5e-5, "head_lr": 1e-3, "batch_size": 16, "warmup_ratio": 0.1, "schedule": "linear"}


@dataclass(frozen=True)
class Variant:
    name: str
    tasks: tuple[str, ...]
    overrides: dict = field(default_factory=dict)  # deep-merged into the TrainConfig dict
    steps: int | None = None  # None: STEPS x len(tasks)
    train_sizes: dict = field(default_factory=dict)
    init_from: tuple[str, str] | None = None  # (experiment, variant) whose saved model (seed k) we start from
    max_seeds: int = 3  # --seeds beyond this many are ignored
    keep_model: bool = False  # keep the trained directory (another variant starts from it)
    note: str = ""
    eval_every: int | None = None  # evaluate on dev (+ STS-B dev) every N steps inside the trainer: a learning curve
    task_overrides: dict = field(default_factory=dict)  # task name -> keys merged into that task's spec


def _merge(base: dict, extra: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in extra.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


ALL = ("topic", "sentiment", "ner")
PAIR = ("sentiment", "ner")
RR = {"sampling": {"strategy": "round_robin"}}  # equal updates per task: joint vs separate at equal compute
PRESERVE = {"optimizer": {"lr": 2e-5, "layer_decay": 0.8}}
RECIPE = _merge(PRESERVE, {"optimizer": {"head_lr": 1e-2}})  # what the guide recommends for short budgets

EXPERIMENTS: dict[str, list[Variant]] = {
    # 2. joint vs separate (+ embedding preservation): each task alone vs all three in one model.
    "joint": [
        Variant("single-topic", ("topic",)),
        Variant("single-sentiment", ("sentiment",), keep_model=True),
        Variant("single-ner", ("ner",)),
        # sentiment + NER: the pair every later experiment builds on (200 steps, round robin)
        Variant("joint-sentiment-ner", PAIR, RR),
        Variant("joint-sentiment-ner-preserve-lr2e-5-decay0.8", PAIR, _merge(RR, PRESERVE)),
        Variant("joint-sentiment-ner-preserve-head-lr1e-2", PAIR,
                _merge(RR, RECIPE)),
        # self-distillation toward the starting encoder's embeddings (embedding_anchor), alone and with the recipe
        Variant("joint-sentiment-ner-anchor1", PAIR, _merge(RR, {"embedding_anchor": {"weight": 1.0}})),
        Variant("joint-sentiment-ner-anchor1-preserve", PAIR,
                _merge(RR, _merge(RECIPE, {"embedding_anchor": {"weight": 1.0}}))),
        Variant("joint-sentiment-ner-anchor10-preserve", PAIR,
                _merge(RR, _merge(RECIPE, {"embedding_anchor": {"weight": 10.0}}))),
        # the same recipe for each task alone: joint vs separate with identical optimizer settings
        Variant("single-sentiment-recipe", ("sentiment",), RECIPE),
        Variant("single-ner-recipe", ("ner",), RECIPE),
        Variant("joint-full", ALL, RR),
        # all three tasks with the embedding-keeping recipe, without and with the anchor; topic alone with the recipe
        Variant("joint-full-recipe", ALL, _merge(RR, RECIPE)),
        Variant("joint-full-recipe-anchor10", ALL, _merge(RR, _merge(RECIPE, {"embedding_anchor": {"weight": 10.0}}))),
        Variant("single-topic-recipe", ("topic",), RECIPE),
        # closing the three-task sentiment gap at equal updates per task: weight its loss up, or learn the weights
        Variant("joint-full-recipe-sentiment-weight2", ALL, _merge(RR, RECIPE),
                task_overrides={"sentiment": {"loss_weight": 2.0}}),
        # ... or give it more of the updates: half of the 300 steps (fixed sampling weights 1 : 2 : 1)
        Variant("joint-full-recipe-sentiment-sampled2", ALL, _merge(RECIPE, {"sampling": {"strategy": "fixed"}}),
                task_overrides={"sentiment": {"sampling_weight": 2.0}}),
        # the same mix with a third more training steps (100 / 200 / 100 updates): still one encoder pass to serve
        Variant("joint-full-recipe-sentiment-sampled2-400steps", ALL,
                _merge(RECIPE, {"sampling": {"strategy": "fixed"}}), steps=400,
                task_overrides={"sentiment": {"sampling_weight": 2.0}}),
        Variant("joint-full-recipe-uncertainty", ALL,
                _merge(RR, _merge(RECIPE, {"loss_weighting": {"mode": "uncertainty"}}))),
        Variant("joint-frozen-encoder", ALL, _merge(RR, {"freezing": {"mode": "encoder"}})),
        Variant("joint-preserve-lr2e-5-decay0.8", ALL, _merge(RR, PRESERVE)),
        Variant("joint-preserve-bottom3", ALL, _merge(RR, {"freezing": {"mode": "bottom_k", "bottom_k": 3}})),
    ],
    # 1. freezing, on sentiment + NER jointly (round robin, equal steps); full fine-tuning = joint/joint-sentiment-ner.
    "freezing": [
        Variant("frozen-encoder", PAIR, _merge(RR, {"freezing": {"mode": "encoder"}})),
        # heads on unit-length embeddings learn slowly at head_lr 1e-3: the same with 10x the head LR
        Variant("frozen-encoder-head-lr1e-2", PAIR,
                _merge(RR, {"freezing": {"mode": "encoder"}, "optimizer": {"head_lr": 1e-2}})),
        Variant("frozen-embeddings", PAIR, _merge(RR, {"freezing": {"mode": "embeddings"}})),
        Variant("frozen-bottom3", PAIR, _merge(RR, {"freezing": {"mode": "bottom_k", "bottom_k": 3}})),
        # full fine-tuning of the pair is joint/joint-sentiment-ner (same config)
        Variant("gradual-unfreeze", PAIR, _merge(RR, {"freezing": {"gradual_unfreeze_every": 25}})),
        # Start from the sentiment model of "joint", add NER and train it: what does sentiment keep?
        Variant("sentiment-kept-then-ner", ("ner",), {"freezing": {"heads": ["sentiment"]}}, steps=STEPS,
                init_from=("joint", "single-sentiment"), note="sentiment head frozen, encoder trains on NER only"),
        Variant("sentiment-kept-then-ner-frozen-encoder", ("ner",),
                {"freezing": {"mode": "encoder", "heads": ["sentiment"]}}, steps=STEPS,
                init_from=("joint", "single-sentiment"), note="sentiment head and encoder frozen, NER head trains"),
        Variant("sentiment-head-frozen-replay", PAIR, _merge(RR, {"freezing": {"heads": ["sentiment"]}}),
                steps=STEPS, init_from=("joint", "single-sentiment"),
                note="sentiment head frozen but its loss still reaches the encoder (replay), NER trains"),
    ],
    # 4. layer-wise LR decay at the 1e-4 base (and the 5e-5 flat default), sentiment + NER.
    "llrd": [
        Variant("lr1e-4-flat", PAIR, _merge(RR, {"optimizer": {"lr": 1e-4}})),
        Variant("lr1e-4-decay0.95", PAIR, _merge(RR, {"optimizer": {"lr": 1e-4, "layer_decay": 0.95}})),
        Variant("lr1e-4-decay0.8", PAIR, _merge(RR, {"optimizer": {"lr": 1e-4, "layer_decay": 0.8}})),
        # the 5e-5 flat reference is joint/joint-sentiment-ner (same config)
    ],
}


def _scarce_variants(percent: int) -> list[Variant]:
    """Abundant A = sentiment (8,000 phrases), scarce B = NER cut to ``percent`` % of CoNLL train."""
    sizes = {"ner": max(1, CONLL_TRAIN_SENTENCES * percent // 100)}
    p = f"ner{percent}pct"
    return [
        Variant(f"{p}-alone", ("ner",), train_sizes=sizes),
        Variant(f"{p}-proportional", PAIR, {"sampling": {"strategy": "proportional"}}, train_sizes=sizes),
        Variant(f"{p}-temperature2", PAIR, {"sampling": {"strategy": "temperature", "temperature": 2.0}},
                train_sizes=sizes),
        Variant(f"{p}-round-robin", PAIR, RR, train_sizes=sizes),
        Variant(f"{p}-proportional-uncertainty", PAIR,
                {"sampling": {"strategy": "proportional"}, "loss_weighting": {"mode": "uncertainty"}},
                train_sizes=sizes),
        # static vs uncertainty weighting when the sampler is fair (round robin)
        Variant(f"{p}-round-robin-uncertainty", PAIR, _merge(RR, {"loss_weighting": {"mode": "uncertainty"}}),
                train_sizes=sizes),
        Variant(f"{p}-sequential", PAIR, {"sampling": {"strategy": "round_robin"}}, steps=STEPS,
                train_sizes=sizes, init_from=("joint", "single-sentiment"),
                note="sentiment first (joint/single-sentiment), then NER added and trained with sentiment replayed"),
        Variant(f"{p}-sequential-ner-only", ("ner",), steps=STEPS, train_sizes=sizes,
                init_from=("joint", "single-sentiment"),
                note="sentiment first, then NER alone: sentiment head untouched, encoder drifts"),
    ]


EXPERIMENTS["scarce"] = _scarce_variants(5) + _scarce_variants(1) + _scarce_variants(25)

# Toward the targets: full SST-2 and CoNLL training sets, batch 32, 1,500 steps (~0.36 epoch of SST-2, ~1.7 of
# CoNLL in round robin), with a dev learning curve (SST-2 dev, CoNLL valid, STS-B dev) every 250 steps.
FULL_DATA = {"sentiment": None, "ner": None}
LONG = {"optimizer": {"batch_size": 32, "lr": 4e-5, "layer_decay": 0.9, "head_lr": 1e-3}, **RR}
# All three tasks, full training sets, 8,000 steps of 32 (~2.2 epochs of SST-2, ~4.7 of CoNLL, ~7 of AG News
# train at temperature 2): bf16 autocast and a frozen token-embedding matrix make a step 2.4x cheaper, and the
# NER head is the windowed one the shipped model uses. Checkpointed at every dev evaluation, so it resumes.
LONG_ALL = {"optimizer": {"batch_size": 32, "lr": 5e-5, "layer_decay": 0.9, "head_lr": 1e-3, "warmup_ratio": 0.06},
            "sampling": {"strategy": "temperature", "temperature": 2.0},
            "freezing": {"mode": "embeddings"}, "run": {"mixed_precision": "bf16"}}
WINDOWED_NER = {"ner": {"type": "windowed_token_classification", "hidden_dim": 256}}
EXPERIMENTS["long"] = [
    Variant("joint-sentiment-ner-1500steps", PAIR, LONG, steps=1500, train_sizes=FULL_DATA, eval_every=250),
    Variant("joint-all-8000steps-bf16", ALL, LONG_ALL, steps=8000, train_sizes=FULL_DATA, eval_every=1000,
            keep_model=True, task_overrides=WINDOWED_NER),
    # the same with the embedding anchor at weight 10: what keeping STS-B costs the tasks at a longer budget
    Variant("joint-all-8000steps-bf16-anchor10", ALL, _merge(LONG_ALL, {"embedding_anchor": {"weight": 10.0}}),
            steps=8000, train_sizes=FULL_DATA, eval_every=1000, keep_model=True, task_overrides=WINDOWED_NER),
    # run 2 at the learning rate that won the single-task sweep below (not run yet: ~80 min on one core)
    Variant("joint-all-8000steps-bf16-lr1e-4", ALL, _merge(LONG_ALL, {"optimizer": {"lr": 1e-4}}), steps=8000,
            train_sizes=FULL_DATA, eval_every=1000, keep_model=True, task_overrides=WINDOWED_NER),
    # each task alone with the same settings and the same number of its own updates as in the joint run above
    # (temperature 2 gives sentiment 56.9 % of 8,000 steps and NER 26.0 %): joint cost vs backbone limit
    Variant("single-sentiment-4550steps-bf16", ("sentiment",), LONG_ALL, steps=4550, train_sizes=FULL_DATA,
            eval_every=1000),
    Variant("single-ner-2080steps-bf16", ("ner",), LONG_ALL, steps=2080, train_sizes=FULL_DATA, eval_every=520,
            task_overrides=WINDOWED_NER),
    Variant("single-topic-1370steps-bf16", ("topic",), LONG_ALL, steps=1370, train_sizes=FULL_DATA,
            eval_every=274),
    # the learning-rate sweep around 5e-5 for each task alone (the accuracy targets: backbone or recipe?)
    *[Variant(f"single-sentiment-4550steps-bf16-lr{lr}", ("sentiment",),
              _merge(LONG_ALL, {"optimizer": {"lr": float(lr)}}), steps=4550, train_sizes=FULL_DATA, eval_every=1000)
      for lr in ("1e-4", "2e-4", "2e-5")],
    *[Variant(f"single-ner-2080steps-bf16-lr{lr}", ("ner",), _merge(LONG_ALL, {"optimizer": {"lr": float(lr)}}),
              steps=2080, train_sizes=FULL_DATA, eval_every=520, task_overrides=WINDOWED_NER)
      for lr in ("1e-4", "2e-4", "4e-4", "2e-5")],
]


# The task branch (model.branch_at, issue 14): the long run's settings with the heads on a trainable copy of the
# backbone's top L - k layers and the embedding path untouched. lr 1e-4 (the single-task sweep's winner for
# SST-2; the branch never costs the embeddings, so a rate that moved them too far is fine here). The shared
# bottom is cached once per training example, so a step costs only the branch's layers. fp32: the machine these
# ran on (AMD EPYC, AVX2 only, no AVX512-BF16) runs a bf16 matmul ~37x slower than fp32 (383 vs 10.4 ms for
# (416 x 384) @ (384 x 1536), one thread), where the earlier long runs' CPU ran it 2x faster.
def _branch(k: int) -> Variant:
    settings = _merge(LONG_ALL, {"model": {"branch_at": k}, "freezing": {"mode": "none"}, "optimizer": {"lr": 1e-4},
                                 "run": {"mixed_precision": "no"}})
    return Variant(f"joint-all-8000steps-fp32-branch{k}", ALL, settings, steps=8000, train_sizes=FULL_DATA,
                   eval_every=1000, keep_model=True, task_overrides=WINDOWED_NER)


EXPERIMENTS["branch"] = [_branch(k) for k in (5, 4, 3, 2)]

# NER heads on a branch (issue 15): CoNLL alone with the NER share of the long run (2,080 steps), then the best
# head in the three-task run. Windowed = the shipped head; + shape = word-shape embeddings (the backbone is
# uncased); + CRF = BIO-constrained CRF loss and Viterbi decoding.
NER_HEADS = {
    "linear": {"type": "token_classification"},
    "windowed": WINDOWED_NER["ner"],
    "windowed-shape": {**WINDOWED_NER["ner"], "word_shape": "on"},
    "windowed-shape-crf": {**WINDOWED_NER["ner"], "word_shape": "on", "crf": True},
}


def _branch_ner(k: int, head: str, seeds: int = 3) -> Variant:
    base = _branch(k)
    return Variant(f"single-ner-2080steps-fp32-branch{k}-{head}", ("ner",), base.overrides, steps=2080,
                   train_sizes=FULL_DATA, eval_every=520, task_overrides={"ner": NER_HEADS[head]}, max_seeds=seeds)


def _branch_with_ner_head(k: int, head: str) -> Variant:
    base = _branch(k)
    return Variant(f"{base.name}-{head}", ALL, base.overrides, steps=8000, train_sizes=FULL_DATA, eval_every=1000,
                   keep_model=True, task_overrides={"ner": NER_HEADS[head]})


# Training the embedding itself (issue 17): STS-B train (5,749 scored pairs) with CoSENT, 4 epochs of 32
# (sentence-transformers' recipe: lr 2e-5, 10 % warm-up) on the whole encoder; beside a task branch only the
# embedding path's own top layers train (lr 1e-4, like the branch runs).
STS_RECIPE = {"optimizer": {"batch_size": 32, "lr": 2e-5, "head_lr": 1e-3, "warmup_ratio": 0.1},
              "freezing": {"mode": "none"}, "run": {"mixed_precision": "no"}}
EXPERIMENTS["pairs"] = [
    Variant("single-sts-720steps", ("sts",), STS_RECIPE, steps=720, eval_every=180, keep_model=True),
    *[Variant(f"single-sts-720steps-branch{k}-top", ("sts",),
              _merge(STS_RECIPE, {"model": {"branch_at": k}, "optimizer": {"lr": 1e-4}}), steps=720, eval_every=180)
      for k in (5, 4)],
]

# the deeper branches (k = 3, 2: three and four trainable layers) test whether the missing NER points are depth
EXPERIMENTS["ner"] = ([_branch_ner(4, head) for head in NER_HEADS] + [_branch_with_ner_head(4, "windowed-shape-crf")]
                      + [_branch_ner(k, "windowed-shape-crf") for k in (3, 2)]
                      + [_branch_with_ner_head(k, "windowed-shape-crf") for k in (3, 2)])

# ---- running one variant --------------------------------------------------------------------
def build_config(experiment: str, variant: Variant, seed: int, quick: bool) -> dict:
    """The TrainConfig dict of one run (validated by TrainConfig before training)."""
    specs = task_specs(variant.train_sizes)
    steps = QUICK_STEPS if quick else (variant.steps or STEPS * len(variant.tasks))
    config = {
        "model": {"max_seq_length": MAX_SEQ_LENGTH},
        "tasks": [_merge(clean_spec(specs[task]), variant.task_overrides.get(task, {})) for task in variant.tasks],
        "optimizer": {**BASE_OPTIMIZER, "max_steps": steps},
        "sampling": {"strategy": "proportional"},
        "evaluation": {"batch_size": 64},
        "run": {"output_dir": str(RUNS / experiment / f"{variant.name}-seed{seed}"), "seed": seed,
                "log_every_steps": 50},
    }
    if variant.eval_every:  # a learning curve on dev; the harness still evaluates test afterwards
        config["evaluation"].update(every_steps=variant.eval_every, sts=sts_source("dev"))
        config["run"].update(log_every_steps=min(100, variant.eval_every), checkpoint_every_steps=variant.eval_every)
    for task in config["tasks"] if not variant.eval_every else []:  # no dev evaluation inside the trainer
        task["data"].pop("dev", None)
        if "split" in task["data"]:  # same train rows (the first 80 % of the seeded order), dev folded into test
            task["data"]["split"] = {**task["data"]["split"], "dev": 0.0, "test": 0.2}
    if variant.init_from is not None:
        start = RUNS / variant.init_from[0] / f"{variant.init_from[1]}-seed{seed}" / "final"
        config["model"]["init_from"] = str(start)
    return _merge(config, variant.overrides)


def _trained_model(result: object, output_dir: str) -> MultiTaskModel:
    """The trained model from train()'s result, whatever form the trainer gives it in."""
    model = getattr(result, "model", None)
    if isinstance(model, MultiTaskModel):
        return model
    model_dir = Path(getattr(result, "output_dir", None) or output_dir)
    return MultiTaskModel.load(model_dir / "final" if (model_dir / "final").exists() else model_dir)


def run_variant(experiment: str, variant: Variant, seed: int, quick: bool) -> dict:
    """Train one variant, evaluate every head the model has (frozen-head variants included) + STS-B."""
    from mtst.training.recipe import train
    from mtst.training.run_files import TrainResult

    raw = build_config(experiment, variant, seed, quick)
    if variant.init_from is not None and not Path(raw["model"]["init_from"]).exists():
        raise RuntimeError(f"{variant.name} starts from {variant.init_from} (same seed): run that first")
    config = TrainConfig.model_validate(raw)
    output_dir = raw["run"]["output_dir"]
    run_dir, resume = Path(output_dir), None
    finished = (run_dir / "summary.json").exists() and (run_dir / "final").exists()
    if variant.eval_every and variant.keep_model and finished:
        # training finished but its evaluation did not (or the harness changed): evaluate the saved model
        result = TrainResult(**json.loads((run_dir / "summary.json").read_text(encoding="utf-8")))
        train_seconds = result.wall_seconds  # wall time of the trainer's own (last) call
    else:
        resume = run_dir if (run_dir / "checkpoint").exists() else None  # a stopped long run
        if resume is None:
            shutil.rmtree(output_dir, ignore_errors=True)  # a half-finished earlier attempt
        with Timer() as train_timer:
            result = train(config, resume=resume)
        train_seconds = train_timer.seconds
    model = _trained_model(result, output_dir)
    with Timer() as eval_timer:
        metrics = evaluate_model(model, model.tasks, limit=100 if quick else None)
    payload = {
        "experiment": experiment, "variant": variant.name, "seed": seed, "quick": quick, "note": variant.note,
        "tasks": list(variant.tasks), "metrics": metrics,
        "train_sizes": _train_sizes(config, variant.train_sizes),
        "steps": raw["optimizer"]["max_steps"], "wall_s": round(train_seconds, 1),
        "resumed": resume is not None,  # wall_s then covers only the part after the last checkpoint
        "batch_size": raw["optimizer"]["batch_size"],
        "dev_metrics": dict(getattr(result, "best_metrics", {}) or {}),
        "dev_curve": _dev_curve(Path(output_dir)) if variant.eval_every else [],
        "eval_wall_s": round(eval_timer.seconds, 1),
        "parameters": sum(p.numel() for p in model.parameters()),
        "head_parameters": {t: sum(p.numel() for p in model.heads[t].parameters()) for t in model.tasks},
        "config": raw,
    }
    if not variant.keep_model:
        shutil.rmtree(output_dir, ignore_errors=True)
    del model
    return payload


def read_metrics(run_dir: Path) -> list[dict]:
    """The trainer's metrics.jsonl records: training-loss lines and dev evaluations ({"step": k, "eval": {...}})."""
    lines = (run_dir / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def _dev_curve(run_dir: Path) -> list[dict]:
    return [record for record in read_metrics(run_dir) if "eval" in record]


def _train_sizes(config: TrainConfig, sizes: dict) -> dict[str, int]:
    from common import task_splits

    out = {}
    for task in config.tasks:
        limit = task.data.train.max_examples if task.data.train is not None else None
        out[task.name] = limit or len(task_splits(task.name, sizes)["train"])
    return out


def result_exists(experiment: str, variant: Variant, seed: int) -> bool:
    return result_path(experiment, variant.name, seed).exists()
