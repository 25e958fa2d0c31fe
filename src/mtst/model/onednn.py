"""fp32 inference through oneDNN's matmul instead of MKL's sgemm (the encoder's linear layers).

Why: on CPU, ``nn.Linear`` calls MKL's sgemm. On the project's AMD Zen5 CPU that ran at ~100 GFLOP/s on one
core, while oneDNN (bundled with torch; the library OpenVINO builds on) runs the same fp32 product at
~230 GFLOP/s: (960 x 384) @ (384 x 1536) took 10.9 ms vs 4.8 ms, one thread. The linear layers are ~80 % of
MiniLM's encode time, so this alone nearly halves the CPU time of ``encode``/``predict``.

Only inference takes that path (``torch.inference_mode``, as ``MultiTaskModel.encode``/``predict`` and
evaluation run): training, autograd, ONNX tracing and torch.compile keep ``nn.Linear``'s own code, so
gradients and exported graphs are untouched. Results differ from MKL's by float rounding only (max
|diff| ~2e-7 on MiniLM embeddings). The GELU after each intermediate layer is fused into its matmul.
Set ``MTST_ONEDNN=0`` to keep torch's default path (e.g. to measure the difference).
"""

from __future__ import annotations

import logging
import os
import platform

import torch
from torch import nn

logger = logging.getLogger("mtst")

_X86 = ("x86_64", "amd64", "i386", "i686")  # measured on x86 only; other CPUs keep torch's default


class OneDNNLinear(nn.Linear):
    """``nn.Linear`` (same parameters, same state_dict keys) that runs through oneDNN at inference time.

    ``activation`` "gelu" applies the exact (erf) GELU after the product on both paths, fused into the
    oneDNN call; the module that used to apply it then holds ``nn.Identity``.
    """

    activation: str = "none"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if _fast_path(x, self.weight):
            algorithm = "none" if self.activation == "gelu" else ""  # "none": erf GELU, not the tanh variant
            return torch.ops.mkldnn._linear_pointwise(x, self.weight, self.bias, self.activation, [], algorithm)
        out = nn.functional.linear(x, self.weight, self.bias)
        return nn.functional.gelu(out) if self.activation == "gelu" else out


def _fast_path(x: torch.Tensor, weight: torch.Tensor) -> bool:
    if not torch.is_inference_mode_enabled() or torch.jit.is_tracing() or torch.compiler.is_compiling():
        return False
    if torch.is_autocast_enabled("cpu"):  # the user asked for bf16/fp16 matmuls: autocast's nn.Linear does that
        return False
    return x.is_cpu and weight.is_cpu and x.dtype == torch.float32 and weight.dtype == torch.float32


def onednn_usable() -> bool:
    """oneDNN's linear op exists, gives the same numbers as ``F.linear``, and the user has not turned it off."""
    if os.environ.get("MTST_ONEDNN", "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    if platform.machine().lower() not in _X86 or not torch.backends.mkldnn.is_available():
        return False
    try:
        generator = torch.Generator().manual_seed(0)
        x, weight, bias = (torch.randn(shape, generator=generator) for shape in ((3, 5, 8), (4, 8), (4,)))
        with torch.inference_mode():
            fused = torch.ops.mkldnn._linear_pointwise(x, weight, bias, "gelu", [], "none")
        expected = nn.functional.gelu(nn.functional.linear(x, weight, bias))
        return bool(torch.allclose(fused, expected, atol=1e-5))
    except (AttributeError, RuntimeError) as exc:  # a torch build without the op
        logger.debug("oneDNN linear unavailable: %s", exc)
        return False


def use_onednn(module: nn.Module) -> int:
    """Turn every plain ``nn.Linear`` inside ``module`` into a OneDNNLinear in place (the same Parameter
    objects stay, so optimizers, names and saved files do not change) and fuse exact GELUs that directly
    follow one. Returns how many layers were switched (0 when oneDNN is not usable here)."""
    if not onednn_usable():
        return 0
    switched = 0
    for child in module.modules():
        if type(child) is nn.Linear:
            child.__class__ = OneDNNLinear  # a subclass without new state: a class swap is all it takes
            switched += 1
    for child in module.modules():
        dense, act = getattr(child, "dense", None), getattr(child, "intermediate_act_fn", None)
        if isinstance(dense, OneDNNLinear) and _is_exact_gelu(act):
            _fuse_gelu(child, dense, act)
    return switched


def _is_exact_gelu(act: object) -> bool:
    from transformers.activations import GELUActivation

    return isinstance(act, GELUActivation) and act.act is nn.functional.gelu


def _fuse_gelu(block: nn.Module, dense: OneDNNLinear, act: nn.Module) -> None:
    """Move the GELU into ``dense`` when ``block`` computes exactly ``act(dense(x))`` (BERT's *Intermediate);
    checked on a random input, so a block whose forward does anything else keeps its own activation."""
    x = torch.randn(2, 3, dense.in_features, generator=torch.Generator().manual_seed(0))
    x = x.to(dense.weight)  # (2, 3, in_features)
    with torch.no_grad():
        before = block(x)
        dense.activation, block.intermediate_act_fn = "gelu", nn.Identity()
        if not (isinstance(before, torch.Tensor) and torch.equal(block(x), before)):
            dense.activation, block.intermediate_act_fn = "none", act
