"""The ladder side network: fine-tuned task states beside a frozen backbone, at a fraction of a layer's cost.

With ``side_reduction: r`` the backbone runs once, layer by layer, and stays frozen: its top states give the
sentence embedding (so ``encode`` and the embedding of ``predict`` are exactly the backbone's). A narrow network of
width d = H / r (ladder side-tuning, Sung et al. 2022) reads every backbone state h_0 (the embedding layer's output)
.. h_L through its own down-projections and gives the heads a learned correction of the top states:

    s_0 = down_0(h_0)
    s_i = f_i(g_i * down_i(h_i) + (1 - g_i) * s_{i-1})      g_i = sigmoid(a learned scalar), i = 1..L
    task states = h_L + up(s_L)                                up: d -> H, initialised to zero

f_i is a post-LN transformer layer of width d, so a side layer costs about 1/r^2 of a backbone layer (plus the
L + 1 down-projections, H x d each). The zero up-projection makes a fresh side network a frozen-encoder model: the
heads first see exactly the backbone's top states. Only BERT-style encoders (run layer by layer: mtst.model.branch's
``check_layerwise``).
"""

from __future__ import annotations

import torch
from torch import nn

from mtst.errors import MtstError
from mtst.model.branch import check_layerwise
from mtst.model.encoder import Encoder, run_layers


class SideLayer(nn.Module):
    """A post-LN transformer layer of width d (BERT's order): attention, add & norm, FFN (4d), add & norm."""

    def __init__(self, width: int, heads: int, dropout: float, attention_dropout: float, eps: float):
        super().__init__()
        self.heads, self.attention_dropout = heads, attention_dropout
        self.qkv = nn.Linear(width, 3 * width)
        self.attention_out = nn.Linear(width, width)
        self.attention_norm = nn.LayerNorm(width, eps=eps)
        self.ffn = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width))
        self.ffn_norm = nn.LayerNorm(width, eps=eps)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``x`` (B, T, d), ``mask`` (B, 1, 1, T) bool (True: a real token to attend to) -> (B, T, d)."""
        batch, length, width = x.shape
        q, k, v = self.qkv(x).reshape(batch, length, 3, self.heads, width // self.heads).permute(2, 0, 3, 1, 4)
        attended = nn.functional.scaled_dot_product_attention(  # (B, nh, T, hs)
            q, k, v, attn_mask=mask, dropout_p=self.attention_dropout if self.training else 0.0)
        attended = attended.transpose(1, 2).reshape(batch, length, width)  # (B, T, d)
        x = self.attention_norm(x + self.dropout(self.attention_out(attended)))
        return self.ffn_norm(x + self.dropout(self.ffn(x)))


class SideRung(nn.Module):
    """One rung of the ladder: s_i = f_i(g_i * down_i(h_i) + (1 - g_i) * s_{i-1})."""

    def __init__(self, hidden: int, layer: SideLayer, width: int):
        super().__init__()
        self.down = nn.Linear(hidden, width)
        self.gate = nn.Parameter(torch.zeros(()))  # sigmoid(0) = 0.5: both inputs weigh alike at the start
        self.layer = layer

    def forward(self, backbone_state: torch.Tensor, side: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        gate = torch.sigmoid(self.gate)
        return self.layer(gate * self.down(backbone_state) + (1 - gate) * side, mask)


class SideNetwork(nn.Module):
    """Backbone states h_0..h_L, each (B, T, H) -> task token states (B, T, H) = h_L + a learned correction."""

    def __init__(self, encoder: Encoder, reduction: int):
        super().__init__()
        check_layerwise(encoder)  # the backbone's states come from its layers run one by one
        config = encoder.transformer.config
        hidden, n_layers = encoder.hidden_size, len(encoder.layers)
        if reduction < 1 or hidden % reduction:
            raise MtstError(f"model.side_reduction must divide the encoder's hidden size {hidden}, got {reduction}")
        self.reduction = reduction
        width = hidden // reduction
        # the backbone's head width (MiniLM: 32), not its head count: 12 heads 4 wide at r = 8 made each SDPA call
        # cost as much as a backbone layer's attention on CPU (docs/training-guide.md, one-pass cost)
        head_width = hidden // int(config.num_attention_heads)
        heads = max(1, width // head_width)
        while width % heads:  # the nearest head count below that divides the width
            heads -= 1
        dropout = float(getattr(config, "hidden_dropout_prob", 0.1))
        attention_dropout = float(getattr(config, "attention_probs_dropout_prob", 0.1))
        eps = float(getattr(config, "layer_norm_eps", 1e-12))
        self.down = nn.Linear(hidden, width)  # s_0 = down_0(h_0)
        self.rungs = nn.ModuleList(
            SideRung(hidden, SideLayer(width, heads, dropout, attention_dropout, eps), width) for _ in range(n_layers))
        self.up = nn.Linear(width, hidden)
        nn.init.zeros_(self.up.weight)  # zero correction at the start: the heads see the frozen backbone's top
        nn.init.zeros_(self.up.bias)

    def forward(self, states: list[torch.Tensor], attention_mask: torch.Tensor) -> torch.Tensor:
        """``states``: the backbone's h_0..h_L (L + 1 tensors (B, T, H)); ``attention_mask`` (B, T)."""
        mask = attention_mask[:, None, None, :].bool()  # (B, 1, 1, T)
        side = self.down(states[0])  # (B, T, d)
        for rung, state in zip(self.rungs, states[1:], strict=True):
            side = rung(state, side, mask)
        return states[-1] + self.up(side)  # (B, T, H)

    def layer_groups(self) -> list[tuple[str, nn.Module]]:
        """The input projection, then the rungs bottom to top (the up-projection counts as the top)."""
        return [("side.input", self.down)] + [(f"side.layer.{i}", rung) for i, rung in enumerate(self.rungs)]


def backbone_states(encoder: Encoder, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> list[torch.Tensor]:
    """The frozen backbone run once, layer by layer, keeping every state: h_0 (embedding layer) .. h_L, (B, T, H)
    each. No autograd graph: the backbone never trains beside a side network."""
    with torch.no_grad():
        hidden = encoder(input_ids, attention_mask, layers=slice(0, 0))  # the embedding layer's output
        mask = encoder.layer_mask(attention_mask, hidden)
        states = [hidden]
        for layer in encoder.layers:
            states.append(run_layers([layer], states[-1], mask))
    return states
