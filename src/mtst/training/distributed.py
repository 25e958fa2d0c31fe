"""Data parallelism: gradient averaging and broadcasts across ranks.

Every rank draws the same task sequence (same sampler seed) and keeps its own slice of each batch,
so after ``backward`` the same parameters hold gradients on every rank; one flat all-reduce
averages them (and the loss, so a NaN on any rank stops all of them at the same step). This avoids
DDP's "unused parameters" problem with single-task batches and keeps gradual unfreezing working.
The process group itself comes from Hugging Face Accelerate (``accelerate launch`` on GPUs, or
``mtst.training.launch.launch_local``, which spawns gloo CPU workers the way ``accelerate launch --cpu`` would).
"""

from __future__ import annotations

import torch
import torch.distributed as dist


def average_gradients(params: list[torch.nn.Parameter], loss: torch.Tensor, world_size: int) -> torch.Tensor:
    """Average grads (in place) and the loss over ranks; returns the averaged loss (a 0-d tensor)."""
    if world_size == 1:
        return loss
    with_grad = [p for p in params if p.grad is not None]
    flat = torch.cat([p.grad.reshape(-1) for p in with_grad] + [loss.detach().reshape(1)])  # (N + 1,)
    dist.all_reduce(flat)
    flat /= world_size
    offset = 0
    for param in with_grad:
        count = param.grad.numel()
        param.grad.copy_(flat[offset : offset + count].view_as(param.grad))
        offset += count
    return flat[-1]


def broadcast_floats(values: list[float], world_size: int, device: torch.device) -> list[float]:
    """Rank 0's values on every rank (e.g. the evaluation score and the stop flag)."""
    if world_size == 1:
        return values
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.broadcast(tensor, src=0)
    return tensor.tolist()
