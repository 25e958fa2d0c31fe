"""A local multi-process CPU launcher for data-parallel training: N spawned gloo workers, each running the
recipe on its slice of every batch (the way ``accelerate launch --cpu`` would start them)."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import torch

from mtst.errors import MtstError
from mtst.training.config import TrainConfig
from mtst.training.recipe import train


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _worker(rank: int, world_size: int, port: int, raw_config: dict, resume: str | None) -> None:
    os.environ.update({
        "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(world_size),
        "LOCAL_WORLD_SIZE": str(world_size), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port),
        "ACCELERATE_USE_CPU": "true",
    })
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")  # hostname-based interface lookup is flaky offline
    threads = max(1, (os.cpu_count() or 1) // world_size)  # share the cores instead of oversubscribing
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    torch.set_num_threads(threads)
    train(TrainConfig.model_validate(raw_config), Path(resume) if resume else None)


def launch_local(raw_config: dict, resume: Path | None, num_processes: int) -> dict:
    """Run ``train`` in ``num_processes`` spawned CPU processes (gloo); returns rank 0's summary.json.

    The config travels as its JSON form (validated again in each worker), never pickled.
    """
    if num_processes < 1:
        raise MtstError(f"--num-processes must be at least 1, got {num_processes}")
    from torch.multiprocessing import start_processes
    from torch.multiprocessing.spawn import ProcessRaisedException

    try:
        start_processes(_worker, args=(num_processes, _free_port(), raw_config, str(resume) if resume else None),
                        nprocs=num_processes, start_method="spawn")
    except ProcessRaisedException as exc:
        last = [line for line in str(exc).strip().splitlines() if line.strip()][-1].strip()
        prefix = f"{MtstError.__module__}.{MtstError.__name__}: "
        if last.startswith(prefix):  # a user error inside a worker: pass its one line on unchanged
            raise MtstError(last[len(prefix):]) from exc
        raise MtstError(f"a training process failed: {last}") from exc
    run_dir = Path(resume) if resume else Path(raw_config.get("run", {}).get("output_dir", "runs/default"))
    return json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
