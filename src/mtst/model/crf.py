"""A linear-chain CRF over a token head's word-level scores, constrained to valid BIO.

Our own small module (it used to subclass pytorch-crf and call its private helpers): learned start, end and
transition scores, the forward algorithm for the log partition, the gold path's score, Viterbi decoding and
marginals. Its arithmetic follows pytorch-crf 0.7.2 step by step, so losses and paths are the ones models were
trained and shipped with (tests/model/test_crf.py compares the two when pytorch-crf is installed).

BIO constraints: moves that no valid tag sequence makes (``O -> I-X``, ``B-X -> I-Y``, a sentence starting
with ``I-X``) score ``PENALTY`` in training and decoding alike, so the model never spends probability on them
and decoding never returns them. The learned scores are the state_dict (``start_transitions``,
``end_transitions``, ``transitions``); the constraints are fixed buffers, not saved.

Shapes: B sentences, W words (left-packed: a sentence's words first, ``mask`` (B, W) True on them; every
sentence has at least one word), C tags.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

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


class BioCRF(nn.Module):
    """A linear-chain CRF (batch first) whose start and transition scores carry the BIO penalties."""

    def __init__(self, labels: Sequence[str]):
        super().__init__()
        self.num_tags = len(labels)
        self.start_transitions = nn.Parameter(torch.empty(self.num_tags))  # (C,) score of a sentence's first tag
        self.end_transitions = nn.Parameter(torch.empty(self.num_tags))  # (C,) of its last tag
        self.transitions = nn.Parameter(torch.empty(self.num_tags, self.num_tags))  # (C, C) [from, to]
        start, moves = bio_constraints(labels)
        self.register_buffer("start_penalty", start, persistent=False)
        self.register_buffer("transition_penalty", moves, persistent=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for parameter in (self.start_transitions, self.end_transitions, self.transitions):  # pytorch-crf's order
            nn.init.uniform_(parameter, -0.1, 0.1)

    def scores(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The scores every algorithm reads: start (C,), transitions (C, C), end (C,), penalties included."""
        return (self.start_transitions + self.start_penalty, self.transitions + self.transition_penalty,
                self.end_transitions)

    def log_likelihood(self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B,) log P(tags | emissions) of each sentence: emissions (B, W, C), tags (B, W) (any valid tag id
        where masked), mask (B, W) bool."""
        _check(emissions, mask, self.num_tags)
        return self._path_score(emissions, tags, mask) - self.log_partition(emissions, mask)

    def loss(self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The negative log-likelihood summed over sentences, divided by the number of words (pytorch-crf's
        ``reduction="token_mean"``): a scalar."""
        return -(self.log_likelihood(emissions, tags, mask).sum() / mask.float().sum())

    def log_partition(self, emissions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B,) log Z: the log-sum-exp of every tag sequence's score (the forward algorithm)."""
        start, moves, end = (t.to(emissions.device) for t in self.scores())  # decoding may run on CPU logits
        score = start + emissions[:, 0]  # (B, C): every sequence so far that ends in tag c
        for i in range(1, emissions.shape[1]):
            # (B, C, 1) + (C, C) + (B, 1, C) -> (B, C, C) [from, to], then sum out the previous tag
            step = torch.logsumexp(score.unsqueeze(2) + moves + emissions[:, i].unsqueeze(1), dim=1)
            score = torch.where(mask[:, i].unsqueeze(1), step, score)  # past a sentence's end: keep its score
        return torch.logsumexp(score + end, dim=1)

    def decode(self, emissions: torch.Tensor, mask: torch.Tensor) -> list[list[int]]:
        """Each sentence's best tag sequence (Viterbi), as many tags as it has words."""
        _check(emissions, mask, self.num_tags)
        start, moves, end = (t.to(emissions.device) for t in self.scores())  # decoding may run on CPU logits
        score, history = start + emissions[:, 0], []  # score (B, C): the best sequence so far ending in tag c
        for i in range(1, emissions.shape[1]):
            step, previous = (score.unsqueeze(2) + moves + emissions[:, i].unsqueeze(1)).max(dim=1)  # (B, C)
            score = torch.where(mask[:, i].unsqueeze(1), step, score)
            history.append(previous)  # (B, C): the best previous tag of each tag at word i
        score = score + end
        lengths = mask.long().sum(dim=1)  # (B,)
        best = score.max(dim=1).indices  # (B,) each sentence's last tag
        paths = torch.zeros(mask.shape, dtype=torch.long, device=mask.device)  # (B, W)
        tag = best
        for i in range(mask.shape[1] - 1, -1, -1):  # back from the last word; a sentence starts at its own end
            tag = torch.where(lengths - 1 == i, best, tag)
            paths[:, i] = tag
            if i:
                tag = history[i - 1].gather(1, tag.unsqueeze(1)).squeeze(1)
        return [row[:length] for row, length in zip(paths.tolist(), lengths.tolist(), strict=True)]

    def marginals(self, emissions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, W, C) P(word w has tag c | sentence): the gradient of log Z with respect to the emissions. These,
        not a softmax of the emissions (which ignores the transition scores the CRF learned), are the confidence
        of a decoded tag."""
        _check(emissions, mask, self.num_tags)
        with torch.inference_mode(False), torch.enable_grad():
            emissions = emissions.detach().clone().requires_grad_(True)  # clones: normal tensors, even when
            mask = mask.clone()  # the inputs were made under inference mode (as predict makes them)
            (marginals,) = torch.autograd.grad(self.log_partition(emissions, mask).sum(), emissions)
        return marginals.clamp(0.0, 1.0)  # float rounding put some a few ulps above 1

    def _path_score(self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B,) the score of each sentence's given tag sequence."""
        start, moves, end = (t.to(emissions.device) for t in self.scores())  # decoding may run on CPU logits
        rows = torch.arange(emissions.shape[0], device=tags.device)
        weight = mask.float()  # (B, W): 0 past a sentence's end
        score = start[tags[:, 0]]
        score += emissions[rows, 0, tags[:, 0]]
        for i in range(1, emissions.shape[1]):
            score += moves[tags[:, i - 1], tags[:, i]] * weight[:, i]
            score += emissions[rows, i, tags[:, i]] * weight[:, i]
        last = tags[rows, mask.long().sum(dim=1) - 1]  # (B,) each sentence's last tag
        return score + end[last]


def _check(emissions: torch.Tensor, mask: torch.Tensor, num_tags: int) -> None:
    if emissions.dim() != 3 or emissions.shape[2] != num_tags or emissions.shape[:2] != mask.shape:
        raise ValueError(f"expected emissions (B, W, {num_tags}) and mask (B, W), got {tuple(emissions.shape)} "
                         f"and {tuple(mask.shape)}")
    if not bool(mask[:, 0].all()):
        raise ValueError("every sentence needs a first word: mask[:, 0] must be all True")
