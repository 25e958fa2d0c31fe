"""A module in eval mode for a block, then back in the mode it was in.

Inference, evaluation, calibration and the frozen passes of training all need dropout off for a while without
changing what the caller's model does next; each picks its own grad mode (inference_mode, no_grad) inside.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn


@contextmanager
def eval_mode(module: nn.Module) -> Iterator[nn.Module]:
    """``module`` in eval mode for the block; its training mode is restored after, also on an error."""
    was_training = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was_training)
