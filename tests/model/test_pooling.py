from __future__ import annotations

import pytest
import torch

from mtst.errors import MtstError
from mtst.model.pooling import POOLINGS, Pooling

# Two sentences, the second padded after 2 tokens: (B=2, T=3, H=2).
TOKENS = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [5.0, -6.0]], [[2.0, 0.0], [4.0, 8.0], [100.0, 100.0]]])
MASK = torch.tensor([[1, 1, 1], [1, 1, 0]])


def test_mean_ignores_padding():
    # By hand: [(1+3+5)/3, (2+4-6)/3] and [(2+4)/2, (0+8)/2]; the padded 100s must not count.
    expected = torch.tensor([[3.0, 0.0], [3.0, 4.0]])
    assert torch.allclose(Pooling("mean")(TOKENS, MASK), expected)


def test_cls_takes_first_token():
    assert torch.equal(Pooling("cls")(TOKENS, MASK), TOKENS[:, 0])


def test_max_never_picks_padding():
    # Without the mask the padded 100s would win in the second sentence.
    assert torch.equal(Pooling("max")(TOKENS, MASK), torch.tensor([[5.0, 4.0], [4.0, 8.0]]))


def test_all_padding_row_does_not_divide_by_zero():
    pooled = Pooling("mean")(TOKENS[:1], torch.zeros(1, 3, dtype=torch.long))
    assert torch.isfinite(pooled).all()


def test_unknown_pooling_is_a_clear_error():
    with pytest.raises(MtstError, match="unknown pooling 'avg'"):
        Pooling("avg")


@pytest.mark.parametrize("mode", sorted(POOLINGS))
def test_every_pooling_gives_one_vector_per_sentence(mode):
    assert Pooling(mode)(TOKENS, MASK).shape == (2, 2)
