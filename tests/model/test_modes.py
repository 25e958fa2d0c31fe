"""eval_mode: dropout off for the block, the caller's mode back after, also when the block raises."""

from __future__ import annotations

import pytest
from torch import nn

from mtst.model.modes import eval_mode


@pytest.mark.parametrize("training", [True, False])
def test_eval_mode_restores_the_mode_the_module_was_in(training):
    module = nn.Sequential(nn.Dropout(0.5)).train(training)
    with eval_mode(module) as inside:
        assert inside is module and not module.training and not module[0].training
    assert module.training is training and module[0].training is training


def test_eval_mode_restores_the_mode_after_an_error():
    module = nn.Dropout(0.5).train()
    with pytest.raises(RuntimeError), eval_mode(module):
        raise RuntimeError("boom")
    assert module.training
