"""The task branch: exact embeddings and fine-tuned task heads from one forward pass.

With ``branch_at: k`` the backbone's embedding layer and its first k transformer layers are shared and run
once. From there two stacks run: the backbone's own, untouched layers k+1..L give the sentence embedding
(so ``encode`` and the embedding of ``predict`` are exactly the backbone's), and the *task branch*, a
trainable copy of layers k+1..L made when the branch is created, gives the token states every head reads.
Training only ever changes the branch and the heads; the backbone stays frozen.

    k = L      the branch is empty: heads read the backbone's top layer (a frozen-encoder model)
    0 < k < L  predict costs about (L + (L - k)) / L of encode; the branch holds L - k layers
    k = 0      only the embedding layer is shared: two full encoders (predict ~2x encode)

A slimmer branch (issue 31) holds fewer layers (``branch_layers`` n: copies of layers k+1..k+n) or narrower
feed-forward blocks (``branch_intermediate_size`` m: each copy keeps the m FFN units that ``ffn_importance`` ranks
highest): it costs less beside the embedding path, and distilling a deeper trained branch into it
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


class TaskBranch(nn.Module):
    """Trainable copies of the backbone's layers ``at``..``at + n - 1`` (n: ``layers``, default all the rest), FFN
    width ``intermediate_size`` (default the backbone's): shared states (B, T, H) -> task states (B, T, H)."""

    def __init__(self, encoder: Encoder, at: int, layers: int | None = None, intermediate_size: int | None = None):
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
        if intermediate_size is not None:
            for layer in self.layers:
                prune_ffn(layer, intermediate_size)

    def forward(self, shared: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        return run_layers(self.layers, shared, mask)

    def layer_groups(self) -> list[tuple[str, nn.Module]]:
        """Branch layers bottom to top, named after the backbone layer each one copies."""
        return [(f"branch.layer.{self.at + i}", layer) for i, layer in enumerate(self.layers)]


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
    slim_up, slim_down = nn.Linear(up.in_features, width), nn.Linear(width, down.out_features)
    with torch.no_grad():
        slim_up.weight.copy_(up.weight[keep])
        slim_up.bias.copy_(up.bias[keep])
        slim_down.weight.copy_(down.weight[:, keep])
        slim_down.bias.copy_(down.bias)
    layer.intermediate.dense = slim_up.to(up.weight.dtype)
    layer.output.dense = slim_down.to(down.weight.dtype)


def check_layerwise(encoder: Encoder) -> None:
    """Raise unless the encoder run layer by layer gives exactly its own forward (padding included)."""
    vocab = int(encoder.transformer.get_input_embeddings().num_embeddings)
    ids = torch.randint(1, vocab, (2, 7), generator=torch.Generator().manual_seed(0))
    mask = torch.tensor([[1] * 7, [1] * 4 + [0] * 3])  # (2, 7): one padded row
    was_training = encoder.training
    encoder.eval()
    try:
        with torch.no_grad():
            expected = encoder(ids, mask)
            got = encoder(ids, mask, layers=slice(0, None))
    except (AttributeError, TypeError) as exc:
        raise MtstError(f"model.branch_at needs a BERT-style encoder (embeddings + encoder.layer); "
                        f"{type(encoder.transformer).__name__} is not one ({exc})") from exc
    finally:
        encoder.train(was_training)
    if not torch.equal(got, expected):
        raise MtstError(f"model.branch_at is not supported for {type(encoder.transformer).__name__}: running its "
                        "layers one by one does not reproduce its forward pass")
