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
honest estimate a handful of examples allows, except after contrastive training, whose branch has seen every example
(``cross_fit_temperature`` fits T on held-out halves: mtst.training.few_shot_crossfit). The arithmetic on the
embeddings lives in mtst.training.few_shot_head. The logistic fit runs at that T; its anchor's strength is
scikit-learn's default LogisticRegression (C = 1: 0.5 ||w||^2 against the summed loss) counted in logit units,
w = W / T: l2 = 0.5 / (N * T^2), weaker as examples arrive. A label without examples keeps its vector exactly.

``update_few_shot`` is the same fit on new examples only, warm-started from and anchored to the head's current
vectors and temperature (the label texts are not embedded again, the branch does not train again).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import torch

from mtst.errors import MtstError
from mtst.model.heads import ZeroShotHead
from mtst.model.multitask import MultiTaskModel
from mtst.model.tasks import ZeroShotClassification, task_type
from mtst.training import few_shot_crossfit
from mtst.training.few_shot_branch import (
    branch_is_free,
    check_branch_is_free,
    task_path_embeddings,
    train_branch,
    trained_embeddings,
)
from mtst.training.few_shot_head import PRIOR_WEIGHT, head_vectors

ZERO_SHOT = ZeroShotClassification.name
METHODS = ("auto", "prototype", "logistic", "contrastive")
T0 = ZeroShotHead.DEFAULT_TEMPERATURE  # where a new head's temperature starts


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
                 seed: int = 0, cross_fit_temperature: bool = False) -> FewShotFit:
    """Fit ``task``'s label vectors from labelled examples, from scratch: from the embeddings of its label texts.

    A task the model lacks is added as a zero-shot head whose labels are the sorted names in ``labels`` (and in
    ``descriptions`` when it maps label -> description). ``descriptions`` (one per label in the head's label order,
    or a mapping) replace the head's. ``method``: "auto" (``choose_method``), "prototype", "logistic" or
    "contrastive" (trains the model's task branch for this head; its weights go on from where they are).
    ``cross_fit_temperature``: a contrastive fit's T from examples held out of two half-trainings (2-3x the time;
    mtst.training.few_shot_crossfit); the other methods' leave-one-out T already holds each example out.
    """
    started = time.perf_counter()
    _check_examples(texts, labels)
    if method not in METHODS:
        raise MtstError(f"unknown few-shot method '{method}'; choose one of {', '.join(METHODS)}")
    if method == "contrastive":
        check_branch_is_free(model, task)  # before anything is added or changed
    if cross_fit_temperature and len(texts) < 2:
        raise MtstError("a cross-fitted temperature needs at least 2 labelled examples (one per half); add examples "
                        "or leave cross_fit_temperature off")
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
    cross_fitted = None
    if method == "contrastive":  # the branch's new states of the examples, then of the label texts
        if cross_fit_temperature:  # from where the branch starts, before it trains on them all
            cross_fitted = few_shot_crossfit.cross_fitted_temperature(
                model, texts, labels, label_texts, head.labels, seed,
                lambda *fit: head_vectors(*fit, "logistic", T0, False, seed)[0])
        vectors = trained_embeddings(model, train_branch(model, texts, labels, label_texts, head.labels, seed))
        prior, x = vectors[len(texts):], vectors[:len(texts)]
    else:
        prior, x = _embed(model, label_texts), None  # the zero-shot vectors (C, H)
    fit_as = "logistic" if method == "contrastive" else method
    fit = _fit(model, task, prior, texts, labels, fit_as, seed, T0, False, started, x)
    if cross_fitted is not None:
        head.config.temperature = cross_fitted
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
    vectors, temperature, weight = head_vectors(prior, x, gold, method, temperature, warm, seed)
    with torch.no_grad():
        head.label_vectors.copy_(vectors.to(head.label_vectors.device, head.label_vectors.dtype))
    model.config.heads[task].temperature = temperature  # the same object as head.config: save() keeps it
    model.config.heads[task].confidence_curve = None  # a curve fitted at another temperature no longer holds
    accuracy = 100 * float(((x @ vectors.T).argmax(dim=-1) == gold).double().mean())
    return FewShotFit(task=task, method=method, examples=len(gold), seconds=time.perf_counter() - started,
                      train_accuracy=accuracy, prior_weight=weight)


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
