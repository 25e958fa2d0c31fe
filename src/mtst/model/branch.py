"""The task branch: exact embeddings and fine-tuned task heads from one forward pass.

With ``branch_at: k`` the backbone's embedding layer and its first k transformer layers are shared and run
once. From there two stacks run: the backbone's own, untouched layers k+1..L give the sentence embedding
(so ``encode`` and the embedding of ``predict`` are exactly the backbone's), and the *task branch*, a
trainable copy of layers k+1..L made when the branch is created, gives the token states every head reads.
Training only ever changes the branch and the heads; the backbone stays frozen.

    k = L      the branch is empty: heads read the backbone's top layer (a frozen-encoder model)
    0 < k < L  predict costs about (L + (L - k)) / L of encode; the branch holds L - k layers
    k = 0      only the embedding layer is shared: two full encoders (predict ~2x encode)

A slimmer branch (issue 31) holds fewer layers (``branch_layers`` n: copies of layers k+1..k+n), narrower
feed-forward blocks (``branch_intermediate_size`` m: each copy keeps the m FFN units that ``ffn_importance`` ranks
highest) or fewer attention heads (``branch_attention_heads`` a: the a heads ``head_importance`` ranks highest):
it costs less beside the embedding path, and distilling a deeper trained branch into it
(mtst.training.distillation) gives back what the cut loses.

Only BERT-style encoders can branch (their layers are called one by one); ``check_layerwise`` proves on a
probe batch that the layer-by-layer pass is the encoder's own forward before a branch is built.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from mtst.errors import MtstError
from mtst.model.encoder import Encoder, run_layers
from mtst.model.modes import eval_mode


class TaskBranch(nn.Module):
    """Trainable copies of the backbone's layers ``at``..``at + n - 1`` (n: ``layers``, default all the rest), FFN
    width ``intermediate_size`` and ``attention_heads`` heads (default the backbone's): shared states (B, T, H) ->
    task states (B, T, H)."""

    def __init__(self, encoder: Encoder, at: int, layers: int | None = None, intermediate_size: int | None = None,
                 attention_heads: int | None = None):
        super().__init__()
        backbone = encoder.layers
        if not 0 <= at <= len(backbone):
            raise MtstError(f"model.branch_at must be between 0 and {len(backbone)} (the encoder's layers), got {at}")
        count = len(backbone) - at if layers is None else layers
        if layers is not None and not 1 <= layers <= len(backbone) - at:
            raise MtstError(f"model.branch_layers must be between 1 and {len(backbone) - at} (the layers above "
                            f"branch_at {at}), got {layers}")
        self.at = at
        # deepcopy with the HF config shared, not copied: attention reads config._attn_implementation at
        # forward time, and export switches it to "eager" on the backbone's config for the branch too
        memo = {id(encoder.transformer.config): encoder.transformer.config}
        self.layers = nn.ModuleList(copy.deepcopy(layer, memo) for layer in backbone[at:at + count])
        for layer in self.layers:
            slim(layer, intermediate_size, attention_heads)

    def forward(self, shared: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        return run_layers(self.layers, shared, mask)

    def layer_groups(self) -> list[tuple[str, nn.Module]]:
        """Branch layers bottom to top, named after the backbone layer each one copies."""
        return [(f"branch.layer.{self.at + i}", layer) for i, layer in enumerate(self.layers)]


def slim(layer: nn.Module, intermediate_size: int | None, attention_heads: int | None) -> None:
    """Cut ``layer`` in place to ``intermediate_size`` FFN units and ``attention_heads`` heads (None: keep all)."""
    if intermediate_size is not None:
        prune_ffn(layer, intermediate_size)
    if attention_heads is not None:
        prune_heads(layer, attention_heads)


def _ffn(layer: nn.Module) -> tuple[nn.Linear, nn.Linear]:
    """A BERT layer's feed-forward pair: (H -> I, I -> H)."""
    try:
        return layer.intermediate.dense, layer.output.dense
    except AttributeError as exc:
        raise MtstError(f"model.branch_intermediate_size needs BERT-style layers (intermediate.dense, output.dense); "
                        f"{type(layer).__name__} has none") from exc


def ffn_importance(layer: nn.Module) -> torch.Tensor:
    """(I,) a score per FFN unit: the norm of the weights into it times the norm of the weights out of it (a unit
    with a small input row or output column changes the layer's output little when removed)."""
    up, down = _ffn(layer)
    return up.weight.detach().float().norm(dim=1) * down.weight.detach().float().norm(dim=0)


def prune_ffn(layer: nn.Module, width: int) -> None:
    """Keep the ``width`` FFN units ``ffn_importance`` ranks highest (in their original order), in place."""
    up, down = _ffn(layer)
    if not 1 <= width <= up.out_features:
        raise MtstError(f"model.branch_intermediate_size must be between 1 and {up.out_features} (the layer's FFN "
                        f"width), got {width}")
    if width == up.out_features:
        return
    keep = ffn_importance(layer).topk(width).indices.sort().values  # (width,)
    layer.intermediate.dense, layer.output.dense = _rows(up, keep), _columns(down, keep)


def _attention(layer: nn.Module) -> tuple[nn.Module, nn.Linear]:
    """A BERT layer's self-attention (query, key, value: H -> heads x d) and its output projection (heads x d -> H)."""
    try:
        return layer.attention.self, layer.attention.output.dense
    except AttributeError as exc:
        raise MtstError(f"model.branch_attention_heads needs BERT-style layers (attention.self, "
                        f"attention.output.dense); {type(layer).__name__} has none") from exc


def head_importance(layer: nn.Module) -> torch.Tensor:
    """(heads,) a score per attention head: the norm of its value rows times the norm of its output columns (what it
    can add to the residual stream), the FFN rule applied per head."""
    attention, out = _attention(layer)
    width = attention.attention_head_size
    value = attention.value.weight.detach().float().unflatten(0, (-1, width))  # (heads, d, H)
    output = out.weight.detach().float().unflatten(1, (-1, width))  # (H, heads, d)
    return value.flatten(1).norm(dim=1) * output.transpose(0, 1).flatten(1).norm(dim=1)


def prune_heads(layer: nn.Module, count: int) -> None:
    """Keep the ``count`` attention heads ``head_importance`` ranks highest (in their original order), in place:
    query, key and value keep those heads' rows, the output projection their columns; the head width is unchanged,
    so the attention scores are the same per kept head."""
    attention, out = _attention(layer)
    width, heads = attention.attention_head_size, attention.query.out_features // attention.attention_head_size
    if not 1 <= count <= heads:
        raise MtstError(f"model.branch_attention_heads must be between 1 and {heads} (the layer's heads), got {count}")
    if count == heads:
        return
    kept = head_importance(layer).topk(count).indices.sort().values  # (count,)
    rows = (kept[:, None] * width + torch.arange(width)).flatten()  # (count * d,)
    for name in ("query", "key", "value"):
        setattr(attention, name, _rows(getattr(attention, name), rows))
    layer.attention.output.dense = _columns(out, rows)
    attention.num_attention_heads, attention.all_head_size = count, len(rows)


def _rows(linear: nn.Linear, rows: torch.Tensor) -> nn.Linear:
    """A copy of ``linear`` with only output ``rows``."""
    cut = nn.Linear(linear.in_features, len(rows))
    with torch.no_grad():
        cut.weight.copy_(linear.weight[rows])
        cut.bias.copy_(linear.bias[rows])
    return cut.to(linear.weight.dtype)


def _columns(linear: nn.Linear, columns: torch.Tensor) -> nn.Linear:
    """A copy of ``linear`` reading only input ``columns`` (the bias unchanged)."""
    cut = nn.Linear(len(columns), linear.out_features)
    with torch.no_grad():
        cut.weight.copy_(linear.weight[:, columns])
        cut.bias.copy_(linear.bias)
    return cut.to(linear.weight.dtype)


def check_layerwise(encoder: Encoder) -> None:
    """Raise unless the encoder run layer by layer gives exactly its own forward (padding included)."""
    vocab = int(encoder.transformer.get_input_embeddings().num_embeddings)
    ids = torch.randint(1, vocab, (2, 7), generator=torch.Generator().manual_seed(0))
    mask = torch.tensor([[1] * 7, [1] * 4 + [0] * 3])  # (2, 7): one padded row
    try:
        with eval_mode(encoder), torch.no_grad():
            expected = encoder(ids, mask)
            got = encoder(ids, mask, layers=slice(0, None))
    except (AttributeError, TypeError) as exc:
        raise MtstError(f"model.branch_at needs a BERT-style encoder (embeddings + encoder.layer); "
                        f"{type(encoder.transformer).__name__} is not one ({exc})") from exc
    if not torch.equal(got, expected):
        raise MtstError(f"model.branch_at is not supported for {type(encoder.transformer).__name__}: running its "
                        "layers one by one does not reproduce its forward pass")
