"""The arithmetic of a few-shot head's fit on unit embeddings (mtst.training.few_shot has the methods and the API):
prototypes, the leave-one-out prior weight and temperature, and the cosine logistic regression."""

from __future__ import annotations

import math

import torch
from torch import nn

PRIOR_WEIGHT = 1.0  # prototypes() default: the prior vector counts as one example
PRIOR_WEIGHTS = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0)  # what held_out_prior_weight chooses from
LBFGS_STEPS = 100  # iterations of one full-batch L-BFGS run: converges on a few hundred examples
TEMPERATURE_RANGE = (0.005, 1.0)  # where a fitted T may lie (cosines are in [-1, 1])


def head_vectors(prior: torch.Tensor, x: torch.Tensor, gold: torch.Tensor, method: str, temperature: float,
                 warm: bool = False, seed: int = 0) -> tuple[torch.Tensor, float, float]:
    """(C, H) label vectors, temperature and prior weight fitted on (N, H) unit rows ``x``: a fit's arithmetic."""
    weight = held_out_prior_weight(prior, x, gold, temperature)
    start = prototypes(prior, x, gold, weight)
    temperature = held_out_temperature(prior, x, gold, temperature, weight)
    with torch.random.fork_rng(devices=[]):  # seeded, and the caller's random state is left as it was
        torch.manual_seed(seed)
        vectors = logistic(prior if warm else start, x, gold, temperature) if method == "logistic" else start
    return vectors, temperature, weight


def prototypes(prior: torch.Tensor, x: torch.Tensor, gold: torch.Tensor, weight: float = PRIOR_WEIGHT
               ) -> torch.Tensor:
    """(C, H) unit rows: normalise(prior * weight + the sum of each label's (N, H) unit embeddings); a label
    without examples keeps its prior row exactly."""
    sums = torch.zeros_like(prior).index_add_(0, gold, x)  # (C, H)
    counts = torch.bincount(gold, minlength=len(prior))
    mixed = nn.functional.normalize(prior * weight + sums, p=2, dim=-1)
    return torch.where((counts > 0)[:, None], mixed, prior)


def held_out_cosines(prior: torch.Tensor, x: torch.Tensor, gold: torch.Tensor, weight: float) -> torch.Tensor:
    """(N, C) cosines of each example with prototypes built without it (leave-one-out: its own label's prototype
    is recomputed without it)."""
    cosines = x @ prototypes(prior, x, gold, weight).T  # (N, C)
    own = prior[gold] * weight + torch.zeros_like(prior).index_add_(0, gold, x)[gold] - x  # (N, H)
    cosines[torch.arange(len(gold)), gold] = (x * own).sum(dim=-1) / own.norm(dim=-1).clamp_min(1e-12)
    return cosines


def held_out_prior_weight(prior: torch.Tensor, x: torch.Tensor, gold: torch.Tensor, temperature: float) -> float:
    """How many examples the prior vector (the label text's, or what the head knew) is worth: the PRIOR_WEIGHTS
    entry whose leave-one-out prototypes classify the examples best (accuracy, then NLL at ``temperature``; ties
    go to the larger weight). Chosen on the user's own examples, so it carries to data nobody tuned on: a label
    text that describes its examples well earns a large weight, a bare or misleading name a small one."""
    def score(weight: float) -> tuple[float, float, float]:
        cosines = held_out_cosines(prior, x, gold, weight)
        accuracy = float((cosines.argmax(dim=-1) == gold).double().mean())
        return accuracy, -float(nn.functional.cross_entropy(cosines / temperature, gold)), weight

    return max(score(weight) for weight in PRIOR_WEIGHTS)[2]


def held_out_temperature(prior: torch.Tensor, x: torch.Tensor, gold: torch.Tensor, start: float,
                         weight: float = PRIOR_WEIGHT) -> float:
    """T minimising the NLL of each example against prototypes built without it (``held_out_cosines``), plus a unit
    Gaussian prior on log T around ``start``; inside TEMPERATURE_RANGE. Fitting T on the training examples
    themselves drove it to the lower bound (they are separable in H dimensions) and up to doubled the held-out NLL
    on synthetic data; this stayed near the best T."""
    from scipy.optimize import minimize_scalar

    logits = held_out_cosines(prior, x, gold, weight)
    low, high = (math.log(bound) for bound in TEMPERATURE_RANGE)
    log_start = min(max(math.log(start), low), high)

    def objective(log_t: float) -> float:
        nll = nn.functional.cross_entropy(logits / math.exp(log_t), gold, reduction="sum")
        return float(nll) + 0.5 * (log_t - log_start) ** 2

    return math.exp(float(minimize_scalar(objective, bounds=(low, high), method="bounded").x))


def logistic(start: torch.Tensor, x: torch.Tensor, gold: torch.Tensor, temperature: float) -> torch.Tensor:
    """Cosine logistic regression at ``temperature`` from ``start`` (C, H) on (N, H) embeddings, anchored to
    ``start``: (C, H) unit rows. Rows of labels without examples stay as they start."""
    l2 = 0.5 / (len(gold) * temperature**2)  # scikit-learn's C = 1 in logit units (see the module docstring)
    free = (torch.bincount(gold, minlength=len(start)) > 0)[:, None]  # (C, 1)
    weights = start.clone().requires_grad_(True)
    optimizer = torch.optim.LBFGS([weights], lr=1.0, max_iter=LBFGS_STEPS, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        rows = torch.where(free, weights, start)  # (C, H)
        logits = x @ nn.functional.normalize(rows, p=2, dim=-1).T / temperature  # (N, C)
        loss = nn.functional.cross_entropy(logits, gold) + l2 * (rows - start).pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    with torch.no_grad():
        return torch.where(free, nn.functional.normalize(weights, p=2, dim=-1), start)
