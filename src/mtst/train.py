"""The multi-task training recipe: setup -> train (evaluate, checkpoint) -> cleanup.

One optimizer step = ``grad_accumulation`` single-task batches drawn by the TaskSampler; the
combined loss comes from LossWeighting. The run directory holds:

    config.yaml     the resolved config (inferred labels written in)
    metrics.jsonl   one JSON per log ({"step", "loss": {task: ...}}, "anchor": {task: ...} with
                    embedding_anchor) and per evaluation ({"eval": {...}})
    best/ final/    model directories (MultiTaskModel.save; encoder kept per run.keep_encoder_in_saved_model)
    checkpoint/     the latest resumable state (see mtst.checkpoint)
    training.png    loss and dev-metric curves;  summary.json  what TrainResult holds
Only the main process writes files.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import yaml
from accelerate import Accelerator

from mtst.anchor import EmbeddingAnchor
from mtst.checkpoint import CHECKPOINT_DIR, load_checkpoint, save_checkpoint
from mtst.data import check_labels, infer_labels, read_task_splits
from mtst.distributed import average_gradients, broadcast_floats
from mtst.errors import MtstError
from mtst.evaluate import MEAN_KEY, evaluate_all
from mtst.feature_cache import FeatureCache, encoder_frozen
from mtst.loss_weighting import LossWeighting
from mtst.model import MultiTaskModel
from mtst.optim import (
    NOTHING_TO_TRAIN,
    GradualUnfreezer,
    apply_freezing,
    build_optimizer,
    build_scheduler,
    nothing_to_train,
    param_groups,
)
from mtst.plots import write_training_plot
from mtst.progress import TrainingProgress
from mtst.sampling import TaskSampler
from mtst.task_encoding import collate, encode_task
from mtst.train_config import TrainConfig

logger = logging.getLogger("mtst")
DEBUG_INDICES = "MTST_DEBUG_INDICES"  # "1": every rank logs the example indices it trained on (tests)


@dataclass
class TrainResult:
    output_dir: str
    steps: int  # optimizer steps done
    total_steps: int
    metric: str  # the selection metric, e.g. "mean/main"
    best_metric: float | None = None
    best_step: int | None = None
    best_metrics: dict[str, float] = field(default_factory=dict)  # the best evaluation, all keys
    stopped_early: bool = False
    interrupted: bool = False  # stop_after_steps reached (tests): no final/ written
    wall_seconds: float = 0.0


def check_mixed_precision(mode: str, device: torch.device) -> None:
    """bf16 autocast needs a GPU that has bf16 (Ampere or newer); CPUs always run it (fast with AVX512-BF16/AMX)."""
    if mode == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise MtstError("run.mixed_precision: bf16 is not supported by this GPU; set it to \"no\"")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class Recipe:
    """Holds the live training objects; each phase is a method, read top to bottom."""

    def __init__(self, config: TrainConfig, resume: Path | None = None):
        self.config, self.resume = config, resume
        self.accelerator = Accelerator(cpu=not torch.cuda.is_available())
        self.rank, self.world = self.accelerator.process_index, self.accelerator.num_processes
        self.main = self.accelerator.is_main_process
        self.run_dir = Path(resume) if resume else Path(config.run.output_dir)
        self.metric = config.evaluation.metric or MEAN_KEY
        self.step, self.best, self.best_step, self.bad_evals = 0, None, None, 0
        self.best_metrics: dict[str, float] = {}

    # ---- setup --------------------------------------------------------------------------
    def setup(self) -> None:
        cfg = self.config
        self._check_run_dir()
        check_mixed_precision(cfg.run.mixed_precision, self.accelerator.device)
        seed_everything(cfg.run.seed)
        self.splits = {task.name: read_task_splits(task) for task in cfg.tasks}
        self.model = self._build_model()
        self.encoded = {}
        for task in cfg.tasks:
            head = self.model.config.heads[task.name]
            for split in ("dev", "test"):
                if split in self.splits[task.name]:
                    check_labels(self.splits[task.name][split], head.labels)
            self.encoded[task.name] = encode_task(self.model.tokenizer, self.splits[task.name]["train"],
                                                  head.labels, head.type)
        self.model.to(self.accelerator.device)
        apply_freezing(self.model, cfg)
        self.weighting = LossWeighting({t.name: t.loss_weight for t in cfg.tasks},
                                       learned=cfg.loss_weighting.mode == "uncertainty").to(self.accelerator.device)
        every = cfg.freezing.gradual_unfreeze_every
        self.unfreezer = GradualUnfreezer(self.model, every, cfg.freezing.gradual_unfreeze_unit) if every else None
        if not cfg.run.keep_encoder_in_saved_model and self._encoder_may_change():
            raise MtstError("run.keep_encoder_in_saved_model: false needs a frozen default encoder "
                            "(freezing.mode: encoder); otherwise the trained encoder would be lost")
        sizes = {name: len(encoded) for name, encoded in self.encoded.items()}
        opt = cfg.optimizer
        self.examples_per_step = opt.batch_size * opt.grad_accumulation
        self.steps_per_epoch = max(1, math.ceil(sum(sizes.values()) / self.examples_per_step))
        self.total_steps = opt.max_steps or max(1, math.ceil(opt.epochs * self.steps_per_epoch))
        self.eval_every = cfg.evaluation.every_steps or (self.steps_per_epoch if opt.max_steps is None
                                                         else self.total_steps)
        self.sampler = TaskSampler(sizes, opt.batch_size, cfg.sampling.strategy, cfg.sampling.temperature,
                                   {t.name: t.sampling_weight for t in cfg.tasks}, cfg.run.seed, self.rank, self.world)
        if self.main and not self.resume:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            _write_yaml(self.run_dir / "config.yaml", self._resolved_config())
        self.accelerator.wait_for_everyone()  # the run directory exists before any rank writes to it
        if nothing_to_train(self.model, self.weighting):
            return
        self.cache = None
        if encoder_frozen(self.model) and self.unfreezer is None:
            self.cache = FeatureCache(self.model, self.encoded, cfg.evaluation.batch_size,
                                      show_progress=self.main and sys.stderr.isatty())
        self.anchor = self._build_anchor()  # before _load_checkpoint: the teacher is the starting encoder
        groups = param_groups(self.model, cfg, self.weighting, include_frozen=self.unfreezer is not None)
        self.optimizer = build_optimizer(groups, cfg)
        self.scheduler = build_scheduler(self.optimizer, cfg, self.total_steps)
        if self.resume:
            self._load_checkpoint()

    def _check_run_dir(self) -> None:
        if self.resume is None and (self.run_dir / "metrics.jsonl").exists():
            raise MtstError(f"{self.run_dir} already holds a run; resume it with --resume {self.run_dir} "
                            "or choose another --output-dir")

    def _build_model(self) -> MultiTaskModel:
        section = self.config.model
        if section.init_from:
            model = MultiTaskModel.load(section.init_from)
        else:
            model = MultiTaskModel.from_backbone(section.backbone, section.pooling, section.normalize,
                                                 section.max_seq_length)
        for task in self.config.tasks:
            if task.name in model.heads:
                existing = model.config.heads[task.name]
                if existing.type != task.type or (task.labels and task.labels != existing.labels):
                    raise MtstError(f"task '{task.name}' differs from the head in {section.init_from} "
                                    "(type or labels); rename the task or match it")
                continue
            labels = task.labels or infer_labels(self.splits[task.name]["train"], task.type)
            model.add_head(task.name, task.type, labels, task.hidden_dim, task.dropout)
        return model

    def _build_anchor(self) -> EmbeddingAnchor | None:
        section = self.config.embedding_anchor
        if section is None or section.weight == 0:
            return None
        if self.cache is not None:
            logger.info("embedding_anchor skipped: the encoder is frozen, so the embeddings cannot move")
            return None
        return EmbeddingAnchor(self.model, self.encoded, section.loss, self.config.evaluation.batch_size,
                               show_progress=self.main and sys.stderr.isatty())

    def _encoder_may_change(self) -> bool:
        trainable = any(p.requires_grad for p in self.model.encoder.parameters())
        return trainable or self.unfreezer is not None or self.model.config.encoder.backbone != "default"

    def _resolved_config(self) -> dict:
        raw = self.config.model_dump(mode="json")
        for task in raw["tasks"]:
            task["labels"] = list(self.model.config.heads[task["name"]].labels)
        return raw

    def _load_checkpoint(self) -> None:
        state = load_checkpoint(self.run_dir, self.model, self.weighting, self.optimizer, self.scheduler)
        self.sampler.load_state_dict(state["sampler"])
        self.step, self.best, self.best_step = state["step"], state["best"], state["best_step"]
        self.bad_evals, self.best_metrics = state["bad_evals"], state["best_metrics"]
        if self.unfreezer:
            self.unfreezer.step(self.step, self._epoch())
        if self.main:  # forget what the interrupted run logged after its last checkpoint
            kept = [line for line in _read_lines(self.run_dir / "metrics.jsonl")
                    if json.loads(line)["step"] <= self.step]
            _write_text(self.run_dir / "metrics.jsonl", "".join(line + "\n" for line in kept))

    # ---- train --------------------------------------------------------------------------
    def train(self, stop_after_steps: int | None = None) -> TrainResult:
        start = time.perf_counter()
        result = TrainResult(str(self.run_dir), self.step, self.total_steps, self.metric)
        if nothing_to_train(self.model, self.weighting):
            logger.warning("%s; skipping training", NOTHING_TO_TRAIN)
            self.total_steps = result.total_steps = 0
            self._evaluate()
            return self._finish(result, start)
        trainable = [p for group in self.optimizer.param_groups for p in group["params"]]
        losses: dict[str, list[float]] = {}
        anchors: dict[str, list[float]] = {}  # unweighted anchor loss per task (embedding_anchor)
        window_steps, window_seconds = 0, 0.0  # training time since the last log (evaluation excluded)
        with TrainingProgress(self.total_steps, self.step, enabled=self.main and sys.stderr.isatty()) as bar:
            while self.step < self.total_steps:
                tick = time.perf_counter()
                self._set_modes()
                total = torch.zeros((), device=self.accelerator.device)
                for _ in range(self.config.optimizer.grad_accumulation):
                    task, indices = self.sampler.next_batch()
                    task_losses, anchor = self._forward(task, indices)
                    loss = self.weighting(task_losses)
                    if anchor is not None:  # outside the task weighting: uncertainty weights cannot shrink it
                        loss = loss + self.config.embedding_anchor.weight * anchor
                        anchors.setdefault(task, []).append(anchor.item())
                    loss = loss / self.config.optimizer.grad_accumulation
                    loss.backward()  # even when NaN: every rank must hold the same grads; we stop before step()
                    total = total + loss.detach()
                    losses.setdefault(task, []).append(task_losses[task].item())
                    self._debug_indices(task, indices)
                total = average_gradients(trainable, total, self.world)
                if not torch.isfinite(total):
                    raise MtstError(self._nan_message(float(total)))
                if self.config.optimizer.max_grad_norm:
                    torch.nn.utils.clip_grad_norm_([p for p in trainable if p.grad is not None],
                                                   self.config.optimizer.max_grad_norm)
                self.optimizer.step()
                self.scheduler.step()
                self.optimizer.zero_grad(set_to_none=True)
                self.step += 1
                if self.unfreezer and self.unfreezer.step(self.step, self._epoch()):
                    self._set_modes()
                window_steps, window_seconds = window_steps + 1, window_seconds + time.perf_counter() - tick
                examples_per_s = window_steps * self.examples_per_step / window_seconds  # batch_size: all ranks
                bar.update(self.step, {t: sum(v[-20:]) / len(v[-20:]) for t, v in losses.items()}, examples_per_s)
                if self.step % self.config.run.log_every_steps == 0 or self.step == self.total_steps:
                    record = {"step": self.step, "epoch": round(self._epoch(), 4),
                              "lr": self.optimizer.param_groups[0]["lr"], "examples_per_s": round(examples_per_s, 1),
                              "loss": {t: sum(v) / len(v) for t, v in losses.items()},
                              "loss_weights": self.weighting.current_weights()}
                    if anchors:
                        record["anchor"] = {t: sum(v) / len(v) for t, v in anchors.items()}
                    self._log(record)
                    losses, anchors, window_steps, window_seconds = {}, {}, 0, 0.0
                stop = False
                if self.step % self.eval_every == 0 or self.step == self.total_steps:
                    stop = self._evaluate()
                every = self.config.run.checkpoint_every_steps
                if every and self.step % every == 0:
                    self._save_checkpoint()
                if stop_after_steps is not None and self.step >= stop_after_steps:
                    result.interrupted = True
                    break
                if stop:
                    result.stopped_early = True
                    logger.info("early stopping at step %d: no better %s for %d evaluations",
                                self.step, self.metric, self.bad_evals)
                    break
        return self._finish(result, start)

    def _forward(self, task: str, indices: list[int]) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
        """({task: loss}, unweighted anchor loss or None) for one single-task batch; from cached encoder
        outputs when the encoder is frozen."""
        device = self.accelerator.device
        features, labels = collate(self.model.tokenizer, self.encoded[task], indices)
        labels = labels.to(device)  # (B,) or (B, T)
        if self.cache is not None:
            head = self.model.heads[task]
            return {task: head.loss(head(self.cache.batch(task, indices)), labels)}, None
        features = {k: features[k].to(device) for k in ("input_ids", "attention_mask")}
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=self.config.run.mixed_precision == "bf16"):
            out = self.model(features, tasks=[task], labels={task: labels})
            anchor = self.anchor.loss(task, indices, out["sentence_embedding"]) if self.anchor else None  # ()
        return out["losses"], anchor

    def _set_modes(self) -> None:
        """Heads (and trainable encoder parts) in train mode; a fully frozen encoder runs in eval
        mode, so it is a fixed feature extractor without dropout noise."""
        self.model.train()
        if not any(p.requires_grad for p in self.model.encoder.parameters()):
            self.model.encoder.eval()

    def _epoch(self) -> float:
        return self.step / self.steps_per_epoch

    def _nan_message(self, value: float) -> str:
        kept = self.run_dir / CHECKPOINT_DIR
        where = f"the last good checkpoint is {kept}" if kept.exists() else "no checkpoint was written yet"
        return (f"training loss became {value} at step {self.step + 1}; stopped ({where}); "
                "lower optimizer.lr / head_lr or check the data")

    # ---- evaluate / checkpoint ------------------------------------------------------------
    def _evaluate(self) -> bool:
        """Evaluate on dev (main process), keep the best model; returns whether to stop early."""
        has_dev = any("dev" in s for s in self.splits.values()) or self.config.evaluation.sts is not None
        if not has_dev:
            return False
        score, stop = 0.0, 0.0
        if self.main:
            device = self.accelerator.device
            self.model.to("cpu")  # evaluation and predict run on CPU tensors
            metrics = evaluate_all(self.model, self.config, split="dev", splits=self.splits)
            self.model.to(device)
            if self.metric not in metrics:
                raise MtstError(f"evaluation.metric '{self.metric}' is not computed; choose one of "
                                f"{', '.join(metrics)}")
            self._log({"step": self.step, "epoch": round(self._epoch(), 4), "eval": metrics})
            score = metrics[self.metric]
            better = self.best is None or (score > self.best if self.config.evaluation.greater_is_better
                                           else score < self.best)
            if better:
                self.best, self.best_step, self.best_metrics, self.bad_evals = score, self.step, metrics, 0
                self._save_model("best")
            else:
                self.bad_evals += 1
            patience = self.config.evaluation.patience
            stop = float(patience is not None and self.bad_evals >= patience)
        score, stop, bad = broadcast_floats([score, stop, float(self.bad_evals)], self.world, self.accelerator.device)
        if not self.main:
            self.bad_evals = int(bad)
        return bool(stop)

    def _save_model(self, name: str) -> None:
        self.model.config.trained = True
        self.model.save(self.run_dir / name, include_encoder=self.config.run.keep_encoder_in_saved_model)

    def _save_checkpoint(self) -> None:
        if self.main:
            state = {"step": self.step, "best": self.best, "best_step": self.best_step, "bad_evals": self.bad_evals,
                     "best_metrics": self.best_metrics, "sampler": self.sampler.state_dict()}
            save_checkpoint(self.run_dir, self.model, self.weighting, self.optimizer, self.scheduler, state)
        self.accelerator.wait_for_everyone()

    def _log(self, record: dict) -> None:
        if self.main:
            with (self.run_dir / "metrics.jsonl").open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(record) + "\n")

    def _debug_indices(self, task: str, indices: list[int]) -> None:
        if os.environ.get(DEBUG_INDICES) == "1":
            with (self.run_dir / f"indices.rank{self.rank}.jsonl").open("a", encoding="utf-8") as handle:
                handle.write(json.dumps({"step": self.step, "task": task, "indices": indices}) + "\n")

    # ---- cleanup ------------------------------------------------------------------------
    def _finish(self, result: TrainResult, start: float) -> TrainResult:
        result.steps = self.step
        result.best_metric, result.best_step, result.best_metrics = self.best, self.best_step, self.best_metrics
        result.wall_seconds = round(time.perf_counter() - start, 1)
        if self.main and not result.interrupted:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self._save_model("final")
            if self.best is None:  # nothing evaluated: the final weights are the best we know
                self._save_model("best")
            write_training_plot(self.run_dir / "metrics.jsonl", self.run_dir / "training.png")
            _write_text(self.run_dir / "summary.json", json.dumps(asdict(result), indent=2) + "\n")
        self.accelerator.wait_for_everyone()
        return result

    def cleanup(self) -> None:
        if self.world > 1 and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def train(config: TrainConfig, resume: Path | None = None, stop_after_steps: int | None = None) -> TrainResult:
    """Train per ``config`` (or continue the run in ``resume``); returns what happened.

    ``stop_after_steps`` simulates an interruption (tests): the loop ends there without final/.
    """
    recipe = Recipe(config, resume)
    try:
        recipe.setup()
        return recipe.train(stop_after_steps)
    finally:
        recipe.cleanup()


def _read_lines(path: Path) -> list[str]:
    return [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()] if path.exists() else []


def _write_text(path: Path, text: str) -> None:
    staging = path.with_name(f".{path.name}.tmp")
    staging.write_text(text, encoding="utf-8")
    os.replace(staging, path)


def _write_yaml(path: Path, data: dict) -> None:
    _write_text(path, yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
