"""CPU inference through oneDNN's matmul instead of torch's own linear path (the encoder's linear layers): an opt-in.

Why: on CPU, ``nn.Linear`` calls MKL's sgemm. On the project's AMD Zen5 CPU that ran at ~100 GFLOP/s on one
core, while oneDNN (bundled with torch; the library OpenVINO builds on) runs the same fp32 product at
~230 GFLOP/s: (960 x 384) @ (384 x 1536) took 10.9 ms vs 4.8 ms, one thread. Whether it wins depends on the
CPU, so torch's own path is the default: ``MultiTaskModel.set_cpu_kernels("onednn")`` (or ``MTST_ONEDNN=1``
when a model is built) switches a model over, ``set_cpu_kernels("torch")`` switches it back, and the CPU-path
probe (mtst.model.cpu_paths) picks it where it measures fastest.

``use_onednn`` puts a OneDNNLinear in each ``nn.Linear``'s place, holding the same Parameter objects (names,
optimizers and saved files do not change), and back. Only inference takes the oneDNN op
(``torch.inference_mode``, as ``MultiTaskModel.encode``/``predict`` and evaluation run): training, autograd,
ONNX tracing and torch.compile run ``nn.Linear``'s own code, so gradients and exported graphs are untouched.
Results differ from MKL's by float rounding only (max |diff| ~2e-7 on MiniLM embeddings). The exact GELU
after each intermediate layer is fused into its matmul.

Under bf16 autocast (the "onednn-bf16" CPU path) a layer runs a bf16 copy of its weight, packed once for oneDNN's
bf16 kernels (AMX where the CPU has it) and kept until the weight changes. Why: autocast's ``nn.Linear`` casts every
fp32 weight to bf16 again on each call (the whole model, ~90 MB read per batch for MiniLM), which on an AMX Xeon
cost a fixed ~7 ms per forward pass, and its GELU runs unfused; measured there, 2026-12-06: 1,400 -> 1,490
sentences/s at batch 64 (mtst bench's calibration sentences).
"""

from __future__ import annotations

import functools
import logging
import os
import platform

import torch
from torch import nn

logger = logging.getLogger("mtst")

_X86 = ("x86_64", "amd64", "i386", "i686")  # measured on x86 only; other CPUs keep torch's default
CPU_KERNELS = ("torch", "onednn")  # how linear layers run at CPU inference: torch's nn.Linear (MKL), or oneDNN
_ON, _OFF = ("1", "true", "yes", "on"), ("", "0", "false", "no", "off")
BF16_INPUTS = (torch.float32, torch.bfloat16)
PACKED_ROWS = 1024  # the rows (tokens) per call oneDNN packs bf16 weights for: a hint; any row count runs


class OneDNNLinear(nn.Linear):
    """Takes an ``nn.Linear``'s place with the same Parameter objects and runs them through oneDNN at inference.

    ``activation`` "gelu" applies the exact (erf) GELU after the product on both paths, fused into the
    oneDNN call; the module that used to apply it then holds a FusedGELU.
    """

    def __init__(self, linear: nn.Linear):
        # "meta": nn.Linear's own init without allocating weights that the next line replaces
        super().__init__(linear.in_features, linear.out_features, linear.bias is not None, device="meta")
        self.weight, self.bias = linear.weight, linear.bias
        self.activation = "none"
        self.train(linear.training)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        path = _fast_path(x, self.weight)
        if path:
            weight, bias = self._bf16_weights() if path == "bf16" else (self.weight, self.bias)
            algorithm = "none" if self.activation == "gelu" else ""  # "none": erf GELU, not the tanh variant
            return torch.ops.mkldnn._linear_pointwise(x.to(weight.dtype), weight, bias, self.activation, [],
                                                      algorithm)
        out = nn.functional.linear(x, self.weight, self.bias)
        return nn.functional.gelu(out) if self.activation == "gelu" else out

    def _bf16_weights(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The weight as bf16, packed for oneDNN (and the bias as bf16): made on first use and again whenever the
        weight changed (training, ``load_state_dict``: a new version or storage); never saved."""
        key = (self.weight._version, self.weight.data_ptr(), self.bias is None or self.bias._version)
        if getattr(self, "_bf16_key", None) != key:
            packed = torch.ops.mkldnn._reorder_linear_weight(self.weight.detach().to(torch.bfloat16), PACKED_ROWS)
            bias = None if self.bias is None else self.bias.detach().to(torch.bfloat16)
            self._bf16_key, self._bf16 = key, (packed, bias)
        return self._bf16

    def __getstate__(self) -> dict:  # copies and pickles leave the packed bf16 weight behind (made again on use)
        state = super().__getstate__()
        return {key: value for key, value in state.items() if key not in ("_bf16", "_bf16_key")}

    def plain(self) -> nn.Linear:
        """An ``nn.Linear`` holding this layer's Parameter objects (what it replaced)."""
        linear = nn.Linear(self.in_features, self.out_features, self.bias is not None, device="meta")
        linear.weight, linear.bias = self.weight, self.bias
        return linear.train(self.training)


class FusedGELU(nn.Identity):
    """Stands where a block's GELU was while the OneDNNLinear before it applies it; keeps it to put back."""

    def __init__(self, activation: nn.Module):
        super().__init__()
        self.fused = activation


def _fast_path(x: torch.Tensor, weight: torch.Tensor) -> str | None:
    """"fp32", "bf16" (under bf16 autocast) or None: ``nn.Linear``'s own code (training, tracing, other dtypes)."""
    if not torch.is_inference_mode_enabled() or torch.jit.is_tracing() or torch.compiler.is_compiling():
        return None
    if not (x.is_cpu and weight.is_cpu and weight.dtype == torch.float32):
        return None
    if torch.is_autocast_enabled("cpu"):  # bf16 matmuls asked for; fp16 and others: autocast's nn.Linear does them
        bf16 = torch.get_autocast_dtype("cpu") == torch.bfloat16 and x.dtype in BF16_INPUTS
        return "bf16" if bf16 and onednn_bf16_usable() else None
    return "fp32" if x.dtype == torch.float32 else None


def kernels_from_environment() -> str:
    """The CPU kernels a new model starts with: "onednn" where ``MTST_ONEDNN`` is 1 (true, yes, on), else "torch"."""
    value = os.environ.get("MTST_ONEDNN", "").strip().lower()
    if value not in _ON + _OFF:
        logger.warning("MTST_ONEDNN=%r is neither 1 nor 0; keeping torch's kernels", value)
    return "onednn" if value in _ON else "torch"


def onednn_usable() -> bool:
    """oneDNN's linear op exists here and gives the same numbers as ``F.linear`` (checked with autocast off: the
    check may run inside a caller's autocast)."""
    if platform.machine().lower() not in _X86 or not torch.backends.mkldnn.is_available():
        return False
    try:
        generator = torch.Generator().manual_seed(0)
        x, weight, bias = (torch.randn(shape, generator=generator) for shape in ((3, 5, 8), (4, 8), (4,)))
        with torch.inference_mode(), torch.autocast("cpu", enabled=False):
            fused = torch.ops.mkldnn._linear_pointwise(x, weight, bias, "gelu", [], "none")
            expected = nn.functional.gelu(nn.functional.linear(x, weight, bias))
        return bool(torch.allclose(fused, expected, atol=1e-5))
    except (AttributeError, RuntimeError) as exc:  # a torch build without the op
        logger.debug("oneDNN linear unavailable: %s", exc)
        return False


@functools.cache
def onednn_bf16_usable() -> bool:
    """oneDNN's linear op runs a packed bf16 weight here and agrees with ``F.linear`` in bf16 (bf16 rounding);
    checked once per process."""
    if not onednn_usable():
        return False
    try:
        generator = torch.Generator().manual_seed(0)
        x, weight, bias = (torch.randn(shape, generator=generator).to(torch.bfloat16)
                           for shape in ((3, 5, 32), (16, 32), (16,)))
        with torch.inference_mode(), torch.autocast("cpu", enabled=False):  # first called inside a forward pass
            packed = torch.ops.mkldnn._reorder_linear_weight(weight, PACKED_ROWS)
            fused = torch.ops.mkldnn._linear_pointwise(x, packed, bias, "none", [], "")
            expected = nn.functional.linear(x, weight, bias)
        return bool(torch.allclose(fused.float(), expected.float(), atol=0.1, rtol=0.02))
    except (AttributeError, RuntimeError) as exc:  # a torch build without the op or without bf16 support
        logger.debug("oneDNN bf16 linear unavailable: %s", exc)
        return False


def use_onednn(module: nn.Module, enabled: bool = True) -> int:
    """Put a OneDNNLinear in the place of every plain ``nn.Linear`` inside ``module`` and fuse the exact GELUs
    that directly follow one (``enabled``), or put the plain layers and GELUs back (not ``enabled``). The same
    Parameter objects stay throughout. Returns how many layers changed (0 when oneDNN is not usable here)."""
    if enabled and not onednn_usable():
        return 0
    if not enabled:  # the GELUs first, while their blocks' dense layers still say "gelu"
        for block in module.modules():
            if isinstance(getattr(block, "intermediate_act_fn", None), FusedGELU):
                block.dense.activation, block.intermediate_act_fn = "none", block.intermediate_act_fn.fused
    changed = 0
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if enabled and type(child) is nn.Linear:
                setattr(parent, name, OneDNNLinear(child))
            elif not enabled and isinstance(child, OneDNNLinear):
                setattr(parent, name, child.plain())
            else:
                continue
            changed += 1
    if enabled:
        for block in module.modules():
            dense, act = getattr(block, "dense", None), getattr(block, "intermediate_act_fn", None)
            if isinstance(dense, OneDNNLinear) and _is_exact_gelu(act):
                _fuse_gelu(block, dense, act)
    return changed


def cpu_kernels(module: nn.Module) -> str:
    """The kernels ``module``'s linear layers run at CPU inference: "onednn" when any is a OneDNNLinear."""
    return "onednn" if any(isinstance(child, OneDNNLinear) for child in module.modules()) else "torch"


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
        dense.activation, block.intermediate_act_fn = "gelu", FusedGELU(act)
        if not (isinstance(before, torch.Tensor) and torch.equal(block(x), before)):
            dense.activation, block.intermediate_act_fn = "none", act
