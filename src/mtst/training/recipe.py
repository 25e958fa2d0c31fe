"""The multi-task training recipe: setup -> train (evaluate, checkpoint) -> cleanup.

One optimizer step = ``grad_accumulation`` single-task batches drawn by the TaskSampler; the combined loss
comes from LossWeighting. The run directory holds config.yaml, metrics.jsonl and summary.json
(mtst.training.run_files), best/ and final/ (MultiTaskModel.save + a README.md card, mtst.training.card),
checkpoint/ (mtst.training.checkpoint) and training.png. Only the main process writes files.
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch
from accelerate import Accelerator

from mtst.data.readers import Examples
from mtst.data.sampling import TaskSampler
from mtst.data.splits import read_task_splits
from mtst.errors import MtstError
from mtst.progress import TrainingProgress
from mtst.training.anchor import EmbeddingAnchor, build_anchor
from mtst.training.augment import with_masked_copies
from mtst.training.batch_losses import BatchLosses
from mtst.training.build import (
    build_model,
    check_mixed_precision,
    encode_training_data,
    resolved_config,
    seed_everything,
)
from mtst.training.card import write_model_cards
from mtst.training.checkpoint import load_checkpoint, nan_message, save_checkpoint
from mtst.training.config import TrainConfig
from mtst.training.distillation import build_teacher_targets
from mtst.training.distributed import average_gradients, broadcast_floats
from mtst.training.evaluation import MEAN_KEY, evaluate_all
from mtst.training.feature_cache import FeatureCache, cacheable
from mtst.training.freezing import (
    NOTHING_TO_TRAIN,
    GradualUnfreezer,
    check_saved_encoder,
    nothing_to_train,
    set_train_modes,
)
from mtst.training.loss_weighting import LossWeighting
from mtst.training.optim import build_optimizer, build_scheduler, param_groups, training_schedule
from mtst.training.plan import checkpoint_every, training_length, with_run_dir
from mtst.training.plots import write_training_plot
from mtst.training.run_files import LossWindow, RunFiles, TrainResult
from mtst.training.selection import BestTracker

logger = logging.getLogger("mtst")


class Recipe:
    """Holds the live training objects; each phase is a method, read top to bottom."""

    def __init__(self, config: TrainConfig, resume: Path | None = None, command: str | None = None):
        self.config, self.resume, self.command = with_run_dir(config), resume, command
        if config.run.device == "cuda" and not torch.cuda.is_available():
            raise MtstError("run.device is cuda but no CUDA device is available here; use auto or cpu")
        self.accelerator = Accelerator(cpu=config.run.on_cpu())  # "cuda" without CUDA was refused just above
        self.rank, self.world = self.accelerator.process_index, self.accelerator.num_processes
        self.main = self.accelerator.is_main_process
        self.run_dir = Path(resume) if resume else Path(self.config.run.output_dir)
        self.step, self.metric = 0, config.evaluation.metric or MEAN_KEY
        self.tracker = BestTracker(config.evaluation.greater_is_better, config.evaluation.patience)
        self.files = RunFiles(self.run_dir, self.main, self.rank)

    # ---- setup --------------------------------------------------------------------------
    def setup(self) -> None:
        """Build what the run needs, one step at a time; each step returns what it builds, in this order
        because each reads what the steps before it built."""
        cfg = self.config
        self.files.check_new_run(self.resume is not None)
        check_mixed_precision(cfg.run.mixed_precision, self.accelerator.device)
        seed_everything(cfg.run.seed)  # before the model: new heads draw their first weights from it
        self.splits = self._setup_splits()
        self.model = build_model(cfg, self.splits, self.accelerator.device)  # on the device, frozen per cfg.freezing
        self.encoded = encode_training_data(self.model, cfg, self.splits)
        self.weighting = self._setup_weighting()
        self.unfreezer = self._setup_unfreezer()
        check_saved_encoder(self.model, self.unfreezer, cfg.run.keep_encoder_in_saved_model)
        trains = not nothing_to_train(self.model, self.weighting)
        if not trains:
            logger.warning("%s; skipping training", NOTHING_TO_TRAIN)
        sizes = {name: len(encoded) for name, encoded in self.encoded.items()}
        cfg = self.config = training_length(cfg, sum(sizes.values()))  # max_steps when neither length is set
        self.examples_per_step = cfg.optimizer.batch_size * cfg.optimizer.grad_accumulation
        self.steps_per_epoch, self.total_steps, self.eval_every = training_schedule(
            cfg, sum(sizes.values()), self.examples_per_step, trains)
        # after sizes: masked copies for the teacher join the batches, not the number of steps or the task mix
        self.encoded = with_masked_copies(self.model, self.encoded, cfg.distillation if trains else None, cfg.run.seed)
        self.sampler = self._setup_sampler(sizes)
        self._setup_run_dir()
        # what only training steps use; cache, anchor, optimizer and scheduler are None when nothing trains
        self.cache = self._setup_cache(trains)
        self.anchor = self._setup_anchor(trains, self.cache)  # before the checkpoint: the teacher is the start model
        self.batch_losses = self._setup_batch_losses(trains)  # may start from a teacher: before the checkpoint
        self.optimizer = self._setup_optimizer(trains)
        self.scheduler = None if self.optimizer is None else build_scheduler(self.optimizer, cfg, self.total_steps)
        if self.resume and trains:
            self._load_checkpoint()

    def _setup_splits(self) -> dict[str, dict[str, Examples]]:
        """Task -> its configured splits ("train", and "dev" / "test" where given)."""
        return {task.name: read_task_splits(task.name, task.type, task.data) for task in self.config.tasks}

    def _setup_weighting(self) -> LossWeighting:
        return LossWeighting({t.name: t.loss_weight for t in self.config.tasks},
                             learned=self.config.loss_weighting.mode == "uncertainty").to(self.accelerator.device)

    def _setup_unfreezer(self) -> GradualUnfreezer | None:
        """None without gradual unfreezing; else it freezes the encoder (or branch) now, to unfreeze it later."""
        every = self.config.freezing.gradual_unfreeze_every
        return GradualUnfreezer(self.model, every, self.config.freezing.gradual_unfreeze_unit) if every else None

    def _setup_sampler(self, sizes: dict[str, int]) -> TaskSampler:
        cfg, items = self.config, {name: len(encoded) for name, encoded in self.encoded.items()}
        return TaskSampler(items, cfg.optimizer.batch_size, cfg.sampling.strategy, cfg.sampling.temperature,
                           {t.name: t.sampling_weight for t in cfg.tasks}, cfg.run.seed, self.rank, self.world, sizes)

    def _setup_run_dir(self) -> None:
        """A new run's directory with its config.yaml (labels written in); a resumed run keeps its own."""
        if self.main and not self.resume:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self.files.write_config(resolved_config(self.config, self.model))
        self.accelerator.wait_for_everyone()  # the run directory exists before any rank writes to it

    def _setup_cache(self, trains: bool) -> FeatureCache | None:
        """The frozen outputs of every training example, when training can start from them."""
        if not trains or not cacheable(self.model, gradual_unfreezing=self.unfreezer is not None):
            return None
        return FeatureCache(self.model, self.encoded, self.config.evaluation.batch_size,
                            show_progress=self.main and sys.stderr.isatty())

    def _setup_anchor(self, trains: bool, cache: FeatureCache | None) -> EmbeddingAnchor | None:
        """The teacher embeddings of the starting model; None when the anchor is off or cannot matter."""
        return build_anchor(self.model, self.encoded, self.config.embedding_anchor if trains else None,
                            cache is not None, self.config.evaluation.batch_size, self.main and sys.stderr.isatty())

    def _setup_batch_losses(self, trains: bool) -> BatchLosses:
        """Each batch's loss, with the cache, the anchor and the distillation teacher's outputs (None without it)."""
        cfg, device = self.config, self.accelerator.device
        teacher = build_teacher_targets(self.model, self.encoded, cfg.distillation if trains else None,
                                        cfg.model.init_from is None, device, cfg.evaluation.batch_size,
                                        show_progress=self.main and sys.stderr.isatty())
        return BatchLosses(self.model, self.encoded, self.cache, self.anchor, cfg.run.mixed_precision == "bf16",
                           device, teacher)

    def _setup_optimizer(self, trains: bool) -> torch.optim.AdamW | None:
        if not trains:
            return None
        groups = param_groups(self.model, self.config, self.weighting, include_frozen=self.unfreezer is not None)
        return build_optimizer(groups, self.config)

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
        if not self.total_steps:  # nothing trains (setup): score the model as it is
            self._evaluate()
            return self._finish(result, start)
        trainable = [p for group in self.optimizer.param_groups for p in group["params"]]
        window = LossWindow(self.examples_per_step)
        with TrainingProgress(self.total_steps, self.step, enabled=self.main) as bar:
            self.files.listener = bar.record  # no terminal: one plain line per log record and per evaluation
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
                every = checkpoint_every(self.config, self.eval_every)
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
        set_train_modes(self.model)
        accumulation = self.config.optimizer.grad_accumulation
        total = torch.zeros((), device=self.accelerator.device)
        for _ in range(accumulation):
            task, indices = self.sampler.next_batch()
            task_losses, anchor, distilled = self.batch_losses(task, indices)
            loss = self.weighting(task_losses)  # anchor and distillation outside it: uncertainty cannot shrink them
            loss = loss if anchor is None else loss + self.config.embedding_anchor.weight * anchor
            loss = loss if distilled is None else loss + distilled  # weighted already
            loss = loss / accumulation
            loss.backward()  # even when NaN: every rank must hold the same grads; we stop before step()
            total = total + loss.detach()
            window.add(task, task_losses[task], anchor=anchor, distillation=distilled)
            self.files.debug_indices(self.step, task, indices)
        total = average_gradients(trainable, total, self.world)
        if not torch.isfinite(total):
            raise MtstError(nan_message(self.run_dir, float(total), self.step + 1))
        if self.config.optimizer.max_grad_norm:
            torch.nn.utils.clip_grad_norm_([p for p in trainable if p.grad is not None],
                                           self.config.optimizer.max_grad_norm)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        if self.unfreezer and self.unfreezer.step(self.step, self._epoch()):
            set_train_modes(self.model)

    def _epoch(self) -> float:
        return self.step / self.steps_per_epoch

    # ---- evaluate / checkpoint ------------------------------------------------------------
    def _evaluate(self) -> bool:
        """Evaluate on dev (main process), keep the best model; returns whether to stop early."""
        has_dev = any("dev" in s for s in self.splits.values()) or self.config.evaluation.sts is not None
        if not has_dev:
            return False
        stop = 0.0
        if self.main:
            metrics = evaluate_all(self.model, self.config, split="dev", splits=self.splits)  # on the model's device
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
        tracker = self.tracker
        result.steps, result.best_metric, result.best_step = self.step, tracker.best, tracker.best_step
        result.best_metrics, result.wall_seconds = tracker.best_metrics, round(time.perf_counter() - start, 1)
        if self.main and not result.interrupted:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self._save_model("final")
            if tracker.best is None:  # nothing evaluated: the final weights are the best we know
                self._save_model("best")
            write_training_plot(self.run_dir / "metrics.jsonl", self.run_dir / "training.png")
            self.files.write_summary(asdict(result))
            write_model_cards(self.run_dir, self.model, self.config, self.splits, result, self.command)
        self.accelerator.wait_for_everyone()
        return result

    def cleanup(self) -> None:
        if self.world > 1 and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def train(config: TrainConfig, resume: Path | None = None, stop_after_steps: int | None = None,
          command: str | None = None) -> TrainResult:
    """Train per ``config`` (or continue the run in ``resume``); returns what happened.

    ``stop_after_steps`` simulates an interruption (tests): the loop ends there without final/. ``command``: the
    model card's reproduce line (default: this process's command line)."""
    recipe = Recipe(config, resume, command)
    try:
        recipe.setup()
        return recipe.train(stop_after_steps)
    finally:
        recipe.cleanup()
