"""The multi-task training recipe: setup -> train (evaluate, checkpoint) -> cleanup.

One optimizer step = ``grad_accumulation`` single-task batches drawn by the TaskSampler; the combined loss
comes from LossWeighting. The run directory holds config.yaml, metrics.jsonl and summary.json
(mtst.training.run_files), best/ and final/ (MultiTaskModel.save), checkpoint/ (mtst.training.checkpoint)
and training.png. Only the main process writes files.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch
from accelerate import Accelerator

from mtst.data.sampling import TaskSampler
from mtst.data.splits import check_labels, read_task_splits
from mtst.data.task_encoding import encode_task
from mtst.errors import MtstError
from mtst.model.config import PAIR_TYPES
from mtst.progress import TrainingProgress
from mtst.training.anchor import EmbeddingAnchor
from mtst.training.batch_losses import BatchLosses
from mtst.training.build import build_model, check_mixed_precision, resolved_config, seed_everything
from mtst.training.checkpoint import CHECKPOINT_DIR, load_checkpoint, save_checkpoint
from mtst.training.config import TrainConfig
from mtst.training.distributed import average_gradients, broadcast_floats
from mtst.training.evaluation import MEAN_KEY, evaluate_all
from mtst.training.feature_cache import FeatureCache, cacheable
from mtst.training.freezing import NOTHING_TO_TRAIN, GradualUnfreezer, apply_freezing, nothing_to_train
from mtst.training.loss_weighting import LossWeighting
from mtst.training.optim import build_optimizer, build_scheduler, param_groups
from mtst.training.plots import write_training_plot
from mtst.training.run_files import LossWindow, RunFiles, TrainResult
from mtst.training.selection import BestTracker

logger = logging.getLogger("mtst")


class Recipe:
    """Holds the live training objects; each phase is a method, read top to bottom."""

    def __init__(self, config: TrainConfig, resume: Path | None = None):
        self.config, self.resume = config, resume
        self.accelerator = Accelerator(cpu=not torch.cuda.is_available())
        self.rank, self.world = self.accelerator.process_index, self.accelerator.num_processes
        self.main = self.accelerator.is_main_process
        self.run_dir = Path(resume) if resume else Path(config.run.output_dir)
        self.metric = config.evaluation.metric or MEAN_KEY
        self.step = 0
        self.tracker = BestTracker(config.evaluation.greater_is_better, config.evaluation.patience)
        self.files = RunFiles(self.run_dir, self.main, self.rank)

    # ---- setup --------------------------------------------------------------------------
    def setup(self) -> None:
        cfg = self.config
        self._check_run_dir()
        check_mixed_precision(cfg.run.mixed_precision, self.accelerator.device)
        seed_everything(cfg.run.seed)
        self.splits = {task.name: read_task_splits(task.name, task.type, task.data) for task in cfg.tasks}
        self.model = build_model(cfg, self.splits)
        self.encoded = {}
        for task in cfg.tasks:
            head = self.model.config.heads[task.name]
            for split in ("dev", "test") if head.type not in PAIR_TYPES else ():  # pairs carry scores
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
            raise MtstError("run.keep_encoder_in_saved_model: false needs an encoder that does not train "
                            "(freezing.mode: encoder, or model.branch_at); otherwise the trained encoder would be lost")
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
            self.files.write_config(resolved_config(cfg, self.model))
        self.accelerator.wait_for_everyone()  # the run directory exists before any rank writes to it
        if nothing_to_train(self.model, self.weighting):
            return
        self.cache = None
        if cacheable(self.model, gradual_unfreezing=self.unfreezer is not None):
            self.cache = FeatureCache(self.model, self.encoded, cfg.evaluation.batch_size,
                                      show_progress=self.main and sys.stderr.isatty())
        self.anchor = self._build_anchor()  # before _load_checkpoint: the teacher is the starting encoder
        self.batch_losses = BatchLosses(self.model, self.encoded, self.cache, self.anchor,
                                        bf16=cfg.run.mixed_precision == "bf16", device=self.accelerator.device)
        groups = param_groups(self.model, cfg, self.weighting, include_frozen=self.unfreezer is not None)
        self.optimizer = build_optimizer(groups, cfg)
        self.scheduler = build_scheduler(self.optimizer, cfg, self.total_steps)
        if self.resume:
            self._load_checkpoint()

    def _check_run_dir(self) -> None:
        if self.resume is None and (self.run_dir / "metrics.jsonl").exists():
            raise MtstError(f"{self.run_dir} already holds a run; resume it with --resume {self.run_dir} "
                            "or choose another --output-dir")

    def _build_anchor(self) -> EmbeddingAnchor | None:
        section = self.config.embedding_anchor
        if section is None or section.weight == 0:
            return None
        if self.cache is not None:
            logger.info("embedding_anchor skipped: the embedding path does not train (a frozen encoder or a "
                        "task branch), so the embeddings cannot move")
            return None
        sentences = {task: data for task, data in self.encoded.items() if task not in self.model.pair_tasks}
        return EmbeddingAnchor(self.model, sentences, section.loss, self.config.evaluation.batch_size,
                               show_progress=self.main and sys.stderr.isatty())

    def _encoder_may_change(self) -> bool:
        """Whether the backbone itself may train (a task branch's unfreezing touches only the branch)."""
        trainable = any(p.requires_grad for p in self.model.encoder.parameters())
        return trainable or (self.unfreezer is not None and self.model.branch is None)

    def _load_checkpoint(self) -> None:
        state = load_checkpoint(self.run_dir, self.model, self.weighting, self.optimizer, self.scheduler)
        self.sampler.load_state_dict(state["sampler"])
        self.step = state["step"]
        self.tracker.load_state_dict(state)
        if self.unfreezer:
            self.unfreezer.step(self.step, self._epoch())
        self.files.keep_until(self.step)

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
        window = LossWindow(self.examples_per_step)
        with TrainingProgress(self.total_steps, self.step, enabled=self.main and sys.stderr.isatty()) as bar:
            while self.step < self.total_steps:
                tick = time.perf_counter()
                self._optimizer_step(trainable, window)
                window.add_time(time.perf_counter() - tick)
                bar.update(self.step, window.recent(), window.examples_per_s)
                if self.step % self.config.run.log_every_steps == 0 or self.step == self.total_steps:
                    self.files.log({"step": self.step, "epoch": round(self._epoch(), 4),
                                    "lr": self.optimizer.param_groups[0]["lr"], **window.flush(),
                                    "loss_weights": self.weighting.current_weights()})
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
                                self.step, self.metric, self.tracker.bad_evals)
                    break
        return self._finish(result, start)

    def _optimizer_step(self, trainable: list[torch.nn.Parameter], window: LossWindow) -> None:
        """``grad_accumulation`` single-task batches, averaged gradients, one clipped AdamW step."""
        self._set_modes()
        accumulation = self.config.optimizer.grad_accumulation
        total = torch.zeros((), device=self.accelerator.device)
        for _ in range(accumulation):
            task, indices = self.sampler.next_batch()
            task_losses, anchor = self.batch_losses(task, indices)
            loss = self.weighting(task_losses)
            if anchor is not None:  # outside the task weighting: uncertainty weights cannot shrink it
                loss = loss + self.config.embedding_anchor.weight * anchor
            loss = loss / accumulation
            loss.backward()  # even when NaN: every rank must hold the same grads; we stop before step()
            total = total + loss.detach()
            window.add(task, task_losses[task].item(), None if anchor is None else anchor.item())
            self.files.debug_indices(self.step, task, indices)
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

    def _set_modes(self) -> None:
        """Heads (and trainable encoder parts) in train mode; a fully frozen encoder (or branch) runs in eval
        mode, so it is a fixed feature extractor without dropout noise."""
        self.model.train()
        for part in (self.model.encoder, self.model.branch):
            if part is not None and not any(p.requires_grad for p in part.parameters()):
                part.eval()

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
        stop = 0.0
        if self.main:
            device = self.accelerator.device
            self.model.to("cpu")  # evaluation and predict run on CPU tensors
            metrics = evaluate_all(self.model, self.config, split="dev", splits=self.splits)
            self.model.to(device)
            if self.metric not in metrics:
                raise MtstError(f"evaluation.metric '{self.metric}' is not computed; choose one of "
                                f"{', '.join(metrics)}")
            self.files.log({"step": self.step, "epoch": round(self._epoch(), 4), "eval": metrics})
            if self.tracker.update(self.step, metrics[self.metric], metrics):
                self._save_model("best")
            stop = float(self.tracker.should_stop)
        stop, bad = broadcast_floats([stop, float(self.tracker.bad_evals)], self.world, self.accelerator.device)
        self.tracker.bad_evals = int(bad)
        return bool(stop)

    def _save_model(self, name: str) -> None:
        self.model.config.trained = True
        self.model.save(self.run_dir / name, include_encoder=self.config.run.keep_encoder_in_saved_model)

    def _save_checkpoint(self) -> None:
        if self.main:
            state = {"step": self.step, **self.tracker.state_dict(), "sampler": self.sampler.state_dict()}
            save_checkpoint(self.run_dir, self.model, self.weighting, self.optimizer, self.scheduler, state)
        self.accelerator.wait_for_everyone()

    # ---- cleanup ------------------------------------------------------------------------
    def _finish(self, result: TrainResult, start: float) -> TrainResult:
        result.steps = self.step
        tracker = self.tracker
        result.best_metric, result.best_step = tracker.best, tracker.best_step
        result.best_metrics = tracker.best_metrics
        result.wall_seconds = round(time.perf_counter() - start, 1)
        if self.main and not result.interrupted:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self._save_model("final")
            if tracker.best is None:  # nothing evaluated: the final weights are the best we know
                self._save_model("best")
            write_training_plot(self.run_dir / "metrics.jsonl", self.run_dir / "training.png")
            self.files.write_summary(asdict(result))
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
