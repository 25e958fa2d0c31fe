"""oneDNN inference linears: an opt-in, switched both ways; same parameters and saved files, same numbers, training
path untouched."""

from __future__ import annotations

import copy
import logging

import numpy as np
import pytest
import torch
from torch import nn
from transformers.activations import GELUActivation

from mtst import MultiTaskModel
from mtst.errors import MtstError
from mtst.model.cpu_paths import CpuPath
from mtst.model.onednn import (
    FusedGELU,
    OneDNNLinear,
    kernels_from_environment,
    onednn_bf16_usable,
    onednn_usable,
    use_onednn,
)

needs_onednn = pytest.mark.skipif(not onednn_usable(), reason="torch build without oneDNN's linear op")
needs_onednn_bf16 = pytest.mark.skipif(not onednn_bf16_usable(), reason="no oneDNN bf16 linear op here")
SENTENCES = ["the cat sat on the mat", "john visited paris today", "stock fell", "a great film !", ""]


@pytest.fixture(autouse=True)
def _no_environment(monkeypatch):
    monkeypatch.delenv("MTST_ONEDNN", raising=False)


def _parameters(model: nn.Module) -> list[tuple[str, int]]:
    return [(name, id(parameter)) for name, parameter in model.named_parameters()]


def test_default_model_runs_torchs_own_linears(tiny_st_dir):
    model = MultiTaskModel.from_backbone(tiny_st_dir, branch_at=1)
    assert not any(isinstance(m, OneDNNLinear | FusedGELU) for m in model.modules())
    assert model.set_cpu_kernels("torch") == "torch"


@needs_onednn
@pytest.mark.parametrize("branch_at", [None, 1])
def test_switching_on_keeps_parameters_and_numbers(tiny_st_dir, branch_at):
    model = MultiTaskModel.from_backbone(tiny_st_dir, branch_at=branch_at)
    model.add_head("ner", "token_classification", ["O", "B-X", "I-X"])
    before, parameters, keys = model.encode(SENTENCES), _parameters(model), list(model.state_dict())
    plain_rows = model.predict(SENTENCES)
    assert model.set_cpu_kernels("onednn") == "onednn"
    parts = [model.encoder] + ([model.branch] if branch_at is not None else [])
    for part in parts:
        linears = [m for m in part.modules() if isinstance(m, nn.Linear)]
        assert linears and all(type(m) is OneDNNLinear for m in linears)
    for layer in [*model.encoder.layers, *(model.branch.layers if branch_at is not None else [])]:
        assert layer.intermediate.dense.activation == "gelu"
        assert isinstance(layer.intermediate.intermediate_act_fn, FusedGELU)
    assert type(model.heads["ner"].classifier) is nn.Linear  # heads keep torch's kernels
    assert _parameters(model) == parameters and list(model.state_dict()) == keys  # the same Parameter objects
    assert np.abs(model.encode(SENTENCES) - before).max() <= 1e-5
    assert [row["ner"] for row in model.predict(SENTENCES)] == [row["ner"] for row in plain_rows]


@needs_onednn
def test_switching_off_restores_plain_linears_and_activations(tiny_st_dir):
    model = MultiTaskModel.from_backbone(tiny_st_dir, branch_at=1)
    before, parameters = model.encode(SENTENCES), _parameters(model)
    modules = [(name, type(m)) for name, m in model.named_modules()]
    model.set_cpu_kernels("onednn")
    assert model.set_cpu_kernels("torch") == "torch"
    assert [(name, type(m)) for name, m in model.named_modules()] == modules
    assert all(isinstance(layer.intermediate.intermediate_act_fn, GELUActivation) for layer in model.encoder.layers)
    assert _parameters(model) == parameters
    assert np.array_equal(model.encode(SENTENCES), before)  # torch's own path again, bit for bit


@needs_onednn
def test_training_forward_is_bitwise_torchs_and_has_gradients(tiny_st_dir):
    plain, fast = MultiTaskModel.from_backbone(tiny_st_dir), MultiTaskModel.from_backbone(tiny_st_dir)
    fast.set_cpu_kernels("onednn")
    features = fast.tokenizer.collate(fast.tokenizer(SENTENCES[:4]))
    fast.train(), plain.train()
    torch.manual_seed(1)
    out = fast(features, tasks=[])["sentence_embedding"]
    torch.manual_seed(1)
    assert torch.equal(out, plain(features, tasks=[])["sentence_embedding"]), "grad path must be torch's own"
    out.sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0
               for p in fast.encoder.transformer.encoder.layer[0].intermediate.parameters())


@needs_onednn
@pytest.mark.parametrize(("value", "kernels"), [("1", "onednn"), ("on", "onednn"), ("0", "torch"), ("", "torch")])
def test_environment_chooses_the_kernels_a_model_starts_with(tiny_st_dir, monkeypatch, value, kernels):
    monkeypatch.setenv("MTST_ONEDNN", value)
    assert kernels_from_environment() == kernels
    model = MultiTaskModel.from_backbone(tiny_st_dir, branch_at=1)
    assert {type(m) for m in model.modules() if isinstance(m, nn.Linear)} == (
        {OneDNNLinear} if kernels == "onednn" else {nn.Linear})


def test_unknown_environment_value_keeps_torch_and_warns(monkeypatch, caplog):
    monkeypatch.setenv("MTST_ONEDNN", "fast")
    with caplog.at_level(logging.WARNING, logger="mtst"):
        assert kernels_from_environment() == "torch"
    assert "MTST_ONEDNN" in caplog.text


def test_unknown_kernels_name_is_rejected(tiny_st_dir):
    model = MultiTaskModel.from_backbone(tiny_st_dir)
    with pytest.raises(MtstError, match="unknown CPU kernels 'mkl'"):
        model.set_cpu_kernels("mkl")


@needs_onednn
def test_inference_mode_takes_the_onednn_op(monkeypatch):
    layer = OneDNNLinear(nn.Linear(8, 4))
    calls: list[str] = []
    real = torch.ops.mkldnn._linear_pointwise

    class Spy:
        def __call__(self, *args):
            calls.append(args[3])
            return real(*args)

    monkeypatch.setattr(torch.ops.mkldnn, "_linear_pointwise", Spy())
    x = torch.randn(2, 3, 8)
    with torch.no_grad():
        expected = nn.functional.linear(x, layer.weight, layer.bias)
        assert torch.equal(layer(x), expected) and calls == []
    with torch.inference_mode():
        assert torch.allclose(layer(x), expected, atol=1e-6) and calls == ["none"]
        with torch.autocast("cpu", dtype=torch.float16):
            assert layer(x).dtype == torch.float16 and calls == ["none"], "fp16 autocast keeps torch's own path"


@needs_onednn_bf16
def test_bf16_autocast_runs_a_packed_bf16_weight_made_once_and_again_after_a_change(monkeypatch):
    layer = OneDNNLinear(nn.Linear(32, 16))
    packs: list[torch.Tensor] = []
    real = torch.ops.mkldnn._reorder_linear_weight

    def pack(weight, rows):
        packs.append(weight)
        return real(weight, rows)

    monkeypatch.setattr(torch.ops.mkldnn, "_reorder_linear_weight", pack)
    x = torch.randn(4, 5, 32)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        expected = nn.functional.linear(x, layer.weight, layer.bias)  # autocast's own bf16 product
        first = layer(x)
        assert first.dtype == torch.bfloat16 and len(packs) == 1 and packs[0].dtype == torch.bfloat16
        assert torch.allclose(first.float(), expected.float(), atol=0.05, rtol=0.02)
        assert torch.equal(layer(x), first) and len(packs) == 1, "the packed weight is kept between calls"
    with torch.no_grad():
        layer.weight.mul_(2)  # training or load_state_dict changes the weight in place
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        assert len(packs) == 1 and not torch.allclose(layer(x).float(), first.float()) and len(packs) == 2
    copied = copy.deepcopy(layer)  # the packed weight stays behind; the copy makes its own
    assert "_bf16" not in vars(copied) and torch.equal(copied.weight, layer.weight)


@needs_onednn_bf16
def test_the_checks_hold_when_first_made_inside_a_bf16_forward_pass():
    onednn_bf16_usable.cache_clear()  # a process that loads a cached onednn-bf16 choice checks inside autocast
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        assert onednn_usable() and onednn_bf16_usable()


@needs_onednn_bf16
def test_a_model_with_the_onednn_bf16_path_runs_packed_weights_from_its_first_call(tiny_st_dir, monkeypatch):
    onednn_bf16_usable.cache_clear()
    model = MultiTaskModel.from_backbone(tiny_st_dir, branch_at=1, precision="fp32")
    model.use_cpu_path(CpuPath("onednn", "bf16"))
    model.predict(SENTENCES, include_embedding=True)
    blocks = [*model.encoder.layers, *model.branch.modules()]  # what predict runs (not BERT's unused pooler)
    layers = [m for block in blocks for m in block.modules() if isinstance(m, OneDNNLinear)]
    assert layers and all("_bf16" in vars(layer) for layer in layers), "every layer ran its packed bf16 weight"


@needs_onednn_bf16
def test_the_onednn_bf16_path_passes_the_gate_on_the_tiny_model(tiny_st_dir):
    model = MultiTaskModel.from_backbone(tiny_st_dir, branch_at=1, precision="fp32")
    reference = model.encode(SENTENCES)
    model.use_cpu_path(CpuPath("onednn", "bf16"))
    assert any(isinstance(m, OneDNNLinear) for m in model.modules())
    vectors = model.encode(SENTENCES)
    cosine = (reference * vectors).sum(-1) / np.linalg.norm(reference, axis=-1) / np.linalg.norm(vectors, axis=-1)
    assert not np.array_equal(vectors, reference) and cosine.min() > 0.999


@needs_onednn
def test_a_layer_without_bias_and_a_training_flag_are_carried_both_ways():
    block = nn.Sequential(nn.Linear(4, 4, bias=False)).eval()
    weight = block[0].weight
    assert use_onednn(block) == 1
    assert block[0].bias is None and block[0].weight is weight and not block[0].training
    assert use_onednn(block, enabled=False) == 1
    assert type(block[0]) is nn.Linear and block[0].weight is weight and not block[0].training


@needs_onednn
def test_a_block_that_is_not_act_of_dense_keeps_its_activation():
    class Parallel(nn.Module):  # act(x) + dense(x): fusing the GELU into dense would be wrong
        def __init__(self):
            super().__init__()
            self.dense = nn.Linear(6, 6)
            self.intermediate_act_fn = GELUActivation()

        def forward(self, x):
            return self.intermediate_act_fn(x) + self.dense(x)

    block = Parallel()
    use_onednn(block)
    assert isinstance(block.intermediate_act_fn, GELUActivation) and block.dense.activation == "none"
