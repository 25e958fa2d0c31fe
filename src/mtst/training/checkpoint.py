"""Training checkpoints without pickle: tensors in safetensors, everything else in JSON.

    <run>/checkpoint/weights.safetensors    "model.<name>" (encoder + heads), "loss_weighting.<name>"
    <run>/checkpoint/optimizer.safetensors  "<param index>.<key>" (AdamW's exp_avg, exp_avg_sq, step)
    <run>/checkpoint/rng.safetensors        "torch" (uint8 CPU generator state) [+ "cuda.<i>"]
    <run>/checkpoint/state.json             step, best metric, optimizer param groups, scheduler,
                                            sampler, python and numpy RNG states
The directory is written beside its final place and swapped in with os.replace, so a crash while
saving leaves the previous checkpoint intact.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from mtst.errors import MtstError, first_line
from mtst.files import staged_dir

CHECKPOINT_DIR = "checkpoint"
WEIGHTS_FILE = "weights.safetensors"
FORMAT_VERSION = 1


def _tensors(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {f"{prefix}{key}": value.detach().cpu().contiguous().clone() for key, value in state.items()}


def _untensors(weights: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The state dict ``_tensors`` stored under ``prefix``."""
    return {key.removeprefix(prefix): value for key, value in weights.items() if key.startswith(prefix)}


def optimizer_to_flat(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """Split ``optimizer.state_dict()`` into tensors (safetensors) and plain values (JSON)."""
    state = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    plain: dict[str, dict] = {}
    for index, values in state["state"].items():
        for key, value in values.items():
            if torch.is_tensor(value):
                tensors[f"{index}.{key}"] = value.detach().cpu().contiguous()
            else:
                plain.setdefault(str(index), {})[key] = value
    return tensors, {"param_groups": state["param_groups"], "plain_state": plain}


def optimizer_from_flat(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    state: dict[int, dict] = {}
    for name, value in tensors.items():
        index, key = name.split(".", 1)
        state.setdefault(int(index), {})[key] = value
    for index, values in meta["plain_state"].items():
        state.setdefault(int(index), {}).update(values)
    groups = [{**g, "betas": tuple(g["betas"])} if "betas" in g else g for g in meta["param_groups"]]
    return {"state": state, "param_groups": groups}


def rng_state() -> tuple[dict[str, torch.Tensor], dict]:
    """Every random generator training touches (dropout draws from torch's global one)."""
    tensors = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        tensors.update({f"cuda.{i}": s for i, s in enumerate(torch.cuda.get_rng_state_all())})
    version, internal, gauss = random.getstate()
    numpy_state = np.random.get_state(legacy=False)
    numpy_state["state"] = {k: (v.tolist() if isinstance(v, np.ndarray) else v)
                            for k, v in numpy_state["state"].items()}
    return tensors, {"python": [version, list(internal), gauss], "numpy": numpy_state}


def restore_rng(tensors: dict[str, torch.Tensor], meta: dict) -> None:
    torch.set_rng_state(tensors["torch"])
    cuda = [tensors[f"cuda.{i}"] for i in range(len(tensors) - 1) if f"cuda.{i}" in tensors]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)
    version, internal, gauss = meta["python"]
    random.setstate((version, tuple(internal), gauss))
    numpy_state = dict(meta["numpy"])
    numpy_state["state"] = {k: (np.array(v, dtype=np.uint32) if k == "key" else v)
                            for k, v in numpy_state["state"].items()}
    np.random.set_state(numpy_state)


def save_checkpoint(run_dir: Path, model: nn.Module, loss_weighting: nn.Module, optimizer: torch.optim.Optimizer,
                    scheduler: torch.optim.lr_scheduler.LRScheduler, trainer_state: dict) -> Path:
    """Write ``<run_dir>/checkpoint`` atomically. ``trainer_state`` must be JSON-safe (step, sampler, ...)."""
    target = run_dir / CHECKPOINT_DIR
    with staged_dir(target) as staging:
        weights = {**_tensors(model.state_dict(), "model."), **_tensors(loss_weighting.state_dict(), "loss_weighting.")}
        save_file(weights, str(staging / WEIGHTS_FILE))
        opt_tensors, opt_meta = optimizer_to_flat(optimizer)
        save_file(opt_tensors, str(staging / "optimizer.safetensors"))
        rng_tensors, rng_meta = rng_state()
        save_file(rng_tensors, str(staging / "rng.safetensors"))
        state = {"format_version": FORMAT_VERSION, "trainer": trainer_state, "optimizer": opt_meta,
                 "scheduler": scheduler.state_dict(), "rng": rng_meta}
        (staging / "state.json").write_text(json.dumps(state), encoding="utf-8")
    return target


def load_model_weights(checkpoint_dir: Path) -> dict[str, torch.Tensor]:
    """The model's state dict in a checkpoint: score or export a step the run did not keep."""
    return _untensors(load_file(str(checkpoint_dir / WEIGHTS_FILE)), "model.")


def load_checkpoint(run_dir: Path, model: nn.Module, loss_weighting: nn.Module, optimizer: torch.optim.Optimizer,
                    scheduler: torch.optim.lr_scheduler.LRScheduler) -> dict:
    """Restore everything ``save_checkpoint`` wrote (RNG states included); returns the trainer state."""
    source = run_dir / CHECKPOINT_DIR
    if not (source / "state.json").exists():
        raise MtstError(f"no checkpoint in {run_dir}; resume needs a run directory with {CHECKPOINT_DIR}/ "
                        "(set run.checkpoint_every_steps)")
    try:
        state = json.loads((source / "state.json").read_text(encoding="utf-8"))
        weights = load_file(str(source / WEIGHTS_FILE))
        model.load_state_dict(_untensors(weights, "model."), strict=True)
        loss_weighting.load_state_dict(_untensors(weights, "loss_weighting."), strict=True)
        optimizer.load_state_dict(optimizer_from_flat(load_file(str(source / "optimizer.safetensors")),
                                                      state["optimizer"]))
        scheduler.load_state_dict(state["scheduler"])
        restore_rng(load_file(str(source / "rng.safetensors")), state["rng"])
    except (OSError, ValueError, KeyError, RuntimeError, SafetensorError) as exc:
        raise MtstError(f"cannot resume from {source}: {first_line(exc)}; does it match this config?") from exc
    return state["trainer"]


def nan_message(run_dir: Path, value: float, step: int) -> str:
    """What to say when the training loss at ``step`` is ``value`` (NaN or infinite)."""
    kept = run_dir / CHECKPOINT_DIR
    where = f"the last good checkpoint is {kept}" if kept.exists() else "no checkpoint was written yet"
    return (f"training loss became {value} at step {step}; stopped ({where}); "
            "lower optimizer.lr / head_lr or check the data")
