"""Few-shot heads: a zero-shot head (mtst.model.heads.ZeroShotHead) that improves as labelled examples arrive.

A zero-shot head knows its labels by their names only; a few examples per label tell it more. Fitting moves the
head's (C, H) ``label_vectors`` buffer and its ``config.temperature``, nothing else (method contrastive also trains a
task branch that no other head reads): the encoder, ``encode`` and every other head stay bit-identical, and the head
is still one matrix product in the same forward pass, so save, load, export and every runtime work unchanged.

Methods (``choose_method`` picks one from the number of examples per label and the model):
    prototype  each label's vector = normalise(its prior vector * w + the sum of its examples' unit embeddings):
               a class mean that starts from the zero-shot vector, worth w examples; w is chosen per fit by
               leave-one-out on the examples themselves (``held_out_prior_weight``), so a label text that describes
               its examples well keeps a large say and a bare or misleading name a small one.
    logistic   from the prototypes, minimise the mean cross-entropy of softmax(cos(x, W) / T) plus an anchor
               l2 * ||W - W_init||^2, full-batch L-BFGS on the cached embeddings (float64, deterministic on the
               CPU); W's rows are normalised at the end.
    contrastive  trains the model's task branch first (mtst.training.few_shot_branch: SetFit's loss on every pair
               in a batch, the label texts as anchors), then fits "logistic" on the branch's pooled states, which
               the head reads from then on (``config.task_path``). Only for a model whose branch no other head reads:
               ``encode`` and the other heads still never move, but the branch is this head's.
All store T (``config.temperature``) fitted on leave-one-out prototype cosines (``held_out_temperature``): the
honest estimate a handful of examples allows. The logistic fit runs at that T; its anchor's strength is
scikit-learn's default LogisticRegression (C = 1: 0.5 ||w||^2 against the summed loss) counted in logit units,
w = W / T: l2 = 0.5 / (N * T^2), weaker as examples arrive. A label without examples keeps its vector exactly.

``update_few_shot`` is the same fit on new examples only, warm-started from and anchored to the head's current
vectors and temperature (the label texts are not embedded again, the branch does not train again).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import torch
from torch import nn

from mtst.errors import MtstError
from mtst.model.heads import ZeroShotHead
from mtst.model.multitask import MultiTaskModel
from mtst.model.tasks import ZeroShotClassification, task_type
from mtst.training.few_shot_branch import (
    branch_is_free,
    check_branch_is_free,
    task_path_embeddings,
    train_branch,
    trained_embeddings,
)

ZERO_SHOT = ZeroShotClassification.name
METHODS = ("auto", "prototype", "logistic", "contrastive")
PRIOR_WEIGHT = 1.0  # prototypes() default: the prior vector counts as one example
PRIOR_WEIGHTS = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0)  # what held_out_prior_weight chooses from
LBFGS_STEPS = 100  # iterations of one full-batch L-BFGS run: converges on a few hundred examples
TEMPERATURE_RANGE = (0.005, 1.0)  # where a fitted T may lie (cosines are in [-1, 1])


@dataclass(frozen=True)
class FewShotFit:
    """What a fit did: its method, how many examples, its wall time (embedding included) and how many of its own
    examples the fitted head gets right (percent: an optimistic figure, not a test score)."""

    task: str
    method: str
    examples: int
    seconds: float
    train_accuracy: float
    prior_weight: float = PRIOR_WEIGHT  # how many examples the prior vector counted as (held_out_prior_weight)


def choose_method(examples_per_class: float, free_branch: bool = False) -> str:
    """The method "auto" fits with, from the mean number of examples per label that has any and whether the model
    has a task branch no other head reads (the one rule to change when the benchmark in benchmarks/fewshot says a
    size needs another method). Contrastive training led the frozen logistic head on 5 of 6 cells at 8 and 16 per
    class and on all 3 at 64 (docs/few-shot.md); where the branch is taken, only the frozen methods keep the other
    heads as they are."""
    return "contrastive" if free_branch else "logistic"


def fit_few_shot(model: MultiTaskModel, task: str, texts: Sequence[str], labels: Sequence[str], *,
                 descriptions: Sequence[str] | Mapping[str, str] | None = None, method: str = "auto",
                 seed: int = 0) -> FewShotFit:
    """Fit ``task``'s label vectors from labelled examples, from scratch: from the embeddings of its label texts.

    A task the model lacks is added as a zero-shot head whose labels are the sorted names in ``labels`` (and in
    ``descriptions`` when it maps label -> description). ``descriptions`` (one per label in the head's label order,
    or a mapping) replace the head's. ``method``: "auto" (``choose_method``), "prototype", "logistic" or
    "contrastive" (trains the model's task branch for this head; its weights go on from where they are).
    """
    started = time.perf_counter()
    _check_examples(texts, labels)
    if method not in METHODS:
        raise MtstError(f"unknown few-shot method '{method}'; choose one of {', '.join(METHODS)}")
    if method == "contrastive":
        check_branch_is_free(model, task)  # before anything is added or changed
    if task not in model.config.heads:
        names = sorted(set(labels) | (set(descriptions) if isinstance(descriptions, Mapping) else set()))
        if len(names) < 2:
            raise MtstError(f"task '{task}': a zero-shot head needs at least 2 labels, the examples have {names}")
        model.add_head(task, ZERO_SHOT, names, descriptions=_in_order(descriptions, names, task))
    head = _zero_shot_head(model, task)
    _check_labels(head, labels, task)
    if descriptions is not None:
        config = head.config.model_copy(update={"descriptions": _in_order(descriptions, head.labels, task)})
        task_type(config.type).check(config)  # one description per label
        head.config.descriptions = config.descriptions
    if method == "auto":
        method = choose_method(_per_label(head, labels), branch_is_free(model, task))
    label_texts = ZeroShotClassification.label_texts(head.config)
    head.config.task_path = method == "contrastive"  # the same object as model.config.heads[task]
    if method == "contrastive":  # the branch's new states of the examples, then of the label texts
        vectors = trained_embeddings(model, train_branch(model, texts, labels, label_texts, head.labels, seed))
        prior, x = vectors[len(texts):], vectors[:len(texts)]
    else:
        prior, x = _embed(model, label_texts), None  # the zero-shot vectors (C, H)
    fit_as = "logistic" if method == "contrastive" else method
    fit = _fit(model, task, prior, texts, labels, fit_as, seed, head.DEFAULT_TEMPERATURE, False, started, x)
    return replace(fit, method=method)


def update_few_shot(model: MultiTaskModel, task: str, texts: Sequence[str], labels: Sequence[str], *,
                    seed: int = 0) -> FewShotFit:
    """Fit ``task``'s label vectors on new examples only, warm-started from and anchored to its current vectors and
    temperature: what the head learned before is the prior."""
    started = time.perf_counter()
    _check_examples(texts, labels)
    if task not in model.config.heads:
        raise MtstError(f"task '{task}' is not in the model; fit_few_shot adds it (its tasks are: "
                        f"{', '.join(model.tasks) or 'none'})")
    head = _zero_shot_head(model, task)
    _check_labels(head, labels, task)
    prior = head.label_vectors.detach().cpu().double().clone()
    return _fit(model, task, prior, texts, labels, "auto", seed, head.temperature, True, started)


update = update_few_shot  # mtst.update(model, task, texts, labels)


# ---- the fit ---------------------------------------------------------------------------------
def _fit(model: MultiTaskModel, task: str, prior: torch.Tensor, texts: Sequence[str], labels: Sequence[str],
         method: str, seed: int, temperature: float, warm: bool, started: float,
         x: torch.Tensor | None = None) -> FewShotFit:
    head = model.heads[task]
    gold = torch.tensor([head.labels.index(label) for label in labels])  # (N,)
    if method == "auto":
        method = choose_method(_per_label(head, labels))  # an update: the frozen methods only
    if x is None:
        x = _embed(model, texts, head.config.task_path)  # (N, H) unit rows
    weight = held_out_prior_weight(prior, x, gold, temperature)
    start = prototypes(prior, x, gold, weight)
    temperature = held_out_temperature(prior, x, gold, temperature, weight)
    with torch.random.fork_rng(devices=[]):  # seeded, and the caller's random state is left as it was
        torch.manual_seed(seed)
        vectors = logistic(prior if warm else start, x, gold, temperature) if method == "logistic" else start
    with torch.no_grad():
        head.label_vectors.copy_(vectors.to(head.label_vectors.device, head.label_vectors.dtype))
    model.config.heads[task].temperature = temperature  # the same object as head.config: save() keeps it
    model.config.heads[task].confidence_curve = None  # a curve fitted at another temperature no longer holds
    accuracy = 100 * float(((x @ vectors.T).argmax(dim=-1) == gold).double().mean())
    return FewShotFit(task=task, method=method, examples=len(gold), seconds=time.perf_counter() - started,
                      train_accuracy=accuracy, prior_weight=weight)


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


# ---- helpers ---------------------------------------------------------------------------------
def _per_label(head: ZeroShotHead, labels: Sequence[str]) -> float:
    """The mean number of examples per label that has any."""
    return len(labels) / len(set(labels) & set(head.labels))


def _check_examples(texts: Sequence[str], labels: Sequence[str]) -> None:
    if isinstance(texts, str) or isinstance(labels, str):
        raise MtstError("few-shot fitting takes lists of texts and labels, not one string")
    if len(texts) != len(labels):
        raise MtstError(f"few-shot fitting needs one label per text: got {len(texts)} texts and {len(labels)} labels")
    if not texts:
        raise MtstError("few-shot fitting needs at least one labelled example")


def _zero_shot_head(model: MultiTaskModel, task: str) -> ZeroShotHead:
    head = model.heads[task] if task in model.heads else None
    if not isinstance(head, ZeroShotHead):
        raise MtstError(f"task '{task}' is a {model.config.heads[task].type} task; few-shot fitting is for "
                        f"{ZERO_SHOT} heads")
    return head


def _check_labels(head: ZeroShotHead, labels: Sequence[str], task: str) -> None:
    unknown = sorted(set(labels) - set(head.labels))
    if unknown:
        raise MtstError(f"task '{task}': labels {unknown} are not among the head's labels {head.labels}; fit from "
                        "scratch on a new task with them (fit_few_shot, or mtst few-shot --from-scratch)")


def _in_order(descriptions: Sequence[str] | Mapping[str, str] | None, names: list[str], task: str
              ) -> list[str] | None:
    """Descriptions as a list in the head's label order (a mapping must name exactly the head's labels)."""
    if descriptions is None or not isinstance(descriptions, Mapping):
        return None if descriptions is None else list(descriptions)
    if set(descriptions) != set(names):
        raise MtstError(f"task '{task}': descriptions name {sorted(descriptions)} but the head's labels are "
                        f"{names}; give one description per label")
    return [descriptions[name] for name in names]


def _embed(model: MultiTaskModel, texts: Sequence[str], task_path: bool = False) -> torch.Tensor:
    """(N, H) float64 unit embeddings on the exact fp32 path (bf16 is switched off for the call), on the CPU: from
    ``model.encode``, or (``task_path``) the task branch's pooled states, what a contrastive head reads."""
    previous = model.cpu_path
    if previous.precision != "fp32":
        model.use_cpu_path(replace(previous, precision="fp32"))
    try:
        if task_path:
            vectors = task_path_embeddings(model, texts)
        else:
            vectors = model.encode(list(texts), normalize_embeddings=True, convert_to_tensor=True,
                                   show_progress_bar=False)
    finally:
        if previous.precision != "fp32":
            model.use_cpu_path(previous)
    return vectors.detach().cpu().double().clone()  # a normal tensor: encode's comes from inference mode
