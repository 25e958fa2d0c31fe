"""oneDNN inference linears: same parameters and saved files, same numbers, training path untouched."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from mtst import MultiTaskModel
from mtst.model.onednn import OneDNNLinear, onednn_usable, use_onednn

needs_onednn = pytest.mark.skipif(not onednn_usable(), reason="torch build without oneDNN's linear op")
SENTENCES = ["the cat sat on the mat", "john visited paris today", "stock fell", "a great film !", ""]


def _plain(tiny_st_dir, monkeypatch) -> MultiTaskModel:
    monkeypatch.setenv("MTST_ONEDNN", "0")
    model = MultiTaskModel.from_backbone(tiny_st_dir)
    monkeypatch.delenv("MTST_ONEDNN")
    return model


@needs_onednn
def test_every_encoder_linear_is_switched_and_gelu_fused(tiny_st_dir):
    model = MultiTaskModel.from_backbone(tiny_st_dir)
    linears = [m for m in model.encoder.modules() if isinstance(m, nn.Linear)]
    assert linears and all(type(m) is OneDNNLinear for m in linears)
    for layer in model.encoder.transformer.encoder.layer:
        assert layer.intermediate.dense.activation == "gelu"
        assert isinstance(layer.intermediate.intermediate_act_fn, nn.Identity)


@needs_onednn
def test_same_state_dict_and_embeddings_as_torch_default(tiny_st_dir, monkeypatch):
    plain, fast = _plain(tiny_st_dir, monkeypatch), MultiTaskModel.from_backbone(tiny_st_dir)
    assert not any(isinstance(m, OneDNNLinear) for m in plain.modules())
    assert list(plain.state_dict()) == list(fast.state_dict())
    assert np.abs(fast.encode(SENTENCES) - plain.encode(SENTENCES)).max() <= 1e-5


@needs_onednn
def test_training_forward_is_bitwise_torchs_and_has_gradients(tiny_st_dir, monkeypatch):
    plain, fast = _plain(tiny_st_dir, monkeypatch), MultiTaskModel.from_backbone(tiny_st_dir)
    features = fast.tokenizer.collate(fast.tokenizer(SENTENCES[:4]))
    fast.train(), plain.train()
    torch.manual_seed(1)
    out = fast(features, tasks=[])["sentence_embedding"]
    torch.manual_seed(1)
    assert torch.equal(out, plain(features, tasks=[])["sentence_embedding"]), "grad path must be torch's own"
    out.sum().backward()
    assert all(p.grad is not None for p in fast.encoder.transformer.encoder.layer[0].intermediate.parameters())


@needs_onednn
def test_inference_mode_takes_the_onednn_op(monkeypatch):
    layer = OneDNNLinear(8, 4)
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
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert layer(x).dtype == torch.bfloat16 and calls == ["none"], "autocast keeps torch's own path"


def test_switch_off_by_environment(tiny_st_dir, monkeypatch):
    monkeypatch.setenv("MTST_ONEDNN", "0")
    assert not onednn_usable()
    block = nn.Sequential(nn.Linear(4, 4))
    assert use_onednn(block) == 0 and type(block[0]) is nn.Linear


@needs_onednn
def test_a_block_that_is_not_act_of_dense_keeps_its_activation():
    from transformers.activations import GELUActivation

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
