"""A linear-chain CRF over a token head's word-level scores, constrained to valid BIO.

pytorch-crf's ``CRF`` does the work (log-likelihood by the forward algorithm, Viterbi decoding); this subclass
only adds BIO constraints: moves that no valid tag sequence makes (``O -> I-X``, ``B-X -> I-Y``, a sentence
starting with ``I-X``) score ``PENALTY`` in training and decoding alike, so the model never spends probability on
them and decoding never returns them. The learned scores stay in pytorch-crf's parameters (state_dict keys
``start_transitions``, ``end_transitions``, ``transitions``); the constraints are fixed buffers, not saved.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torchcrf import CRF

PENALTY = -10000.0  # not -inf: a log-sum-exp over only forbidden moves stays finite


def bio_constraints(labels: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """(start (C,), transitions (C, C)) penalties: 0 where allowed, PENALTY where BIO forbids the move."""
    def inside_of(label: str) -> str | None:
        prefix, _, kind = label.partition("-")
        return kind if prefix == "I" and kind else None

    start = torch.tensor([PENALTY if inside_of(label) else 0.0 for label in labels])
    moves = torch.zeros(len(labels), len(labels))
    for j, target in enumerate(labels):
        kind = inside_of(target)
        if kind is None:
            continue
        for i, source in enumerate(labels):  # I-X may only follow B-X or I-X
            if source not in (f"B-{kind}", f"I-{kind}"):
                moves[i, j] = PENALTY
    return start, moves


class BioCRF(CRF):
    """pytorch-crf's CRF (batch first) whose start and transition scores carry the BIO penalties."""

    def __init__(self, labels: Sequence[str]):
        nn.Module.__init__(self)  # CRF.__init__ would read the properties below before the buffers exist
        self.num_tags, self.batch_first = len(labels), True
        start, moves = bio_constraints(labels)
        self.register_buffer("start_penalty", start, persistent=False)
        self.register_buffer("transition_penalty", moves, persistent=False)
        # straight into _parameters: register_parameter's hasattr() would call the properties below
        self._parameters["start_transitions"] = nn.Parameter(torch.empty(self.num_tags))
        self.end_transitions = nn.Parameter(torch.empty(self.num_tags))
        self._parameters["transitions"] = nn.Parameter(torch.empty(self.num_tags, self.num_tags))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for name in ("start_transitions", "end_transitions", "transitions"):
            nn.init.uniform_(self._parameters[name], -0.1, 0.1)

    @property
    def start_transitions(self) -> torch.Tensor:  # what pytorch-crf's algorithms read
        return self._parameters["start_transitions"] + self.start_penalty

    @property
    def transitions(self) -> torch.Tensor:
        return self._parameters["transitions"] + self.transition_penalty

    def marginals(self, emissions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, W, C) P(word w has tag c | sentence): the gradient of log Z with respect to the emissions, through
        pytorch-crf's own forward algorithm. These, not a softmax of the emissions (which ignores the transition
        scores the CRF learned), are the confidence of a decoded tag."""
        with torch.inference_mode(False), torch.enable_grad():
            emissions = emissions.detach().clone().requires_grad_(True)  # clones: normal tensors, even when
            mask = mask.clone()  # the inputs were made under inference mode (as predict makes them)
            log_z = self._compute_normalizer(emissions.transpose(0, 1), mask.transpose(0, 1)).sum()
            (marginals,) = torch.autograd.grad(log_z, emissions)
        return marginals.clamp(0.0, 1.0)  # float rounding put some a few ulps above 1
