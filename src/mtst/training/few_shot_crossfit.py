"""A contrastive few-shot head's temperature, fitted on examples its branch never saw (issue 30).

After contrastive training the branch has seen every example, so the leave-one-out temperature of mtst.training.
few_shot (honest for the frozen methods) reads cosines sharper than new texts get: at 8 per class the head's
expected calibration error was 0.17-0.54 against the frozen logistic head's 0.03-0.08
(benchmarks/fewshot/calibration.py). Cross-fitting asks the question on held-out texts instead: the examples are cut
into two halves with every label split evenly; the branch, from where it started, trains on one half and the head is
fitted there, the other half's cosines are scored, and the other way round; T minimises the NLL of all held-out
cosines (mtst.training.calibration.fit_temperature). The branch is put back as it was, so the fit that follows is
the one without cross-fitting: only T differs. Two more trainings on half the examples each: 2-3x the fit's time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from mtst.model.multitask import MultiTaskModel
from mtst.training.calibration import fit_temperature
from mtst.training.few_shot_branch import frozen_inputs, train_branch, trained_embeddings

# (prior (C, H), x (N, H), gold (N,)) -> (C, H) label vectors: the head fit the final head gets
HeadFit = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def halves(gold: Sequence[int], seed: int) -> tuple[list[int], list[int]]:
    """Two halves of the positions of ``gold``, each label's examples shuffled (seeded) and dealt alternately, the
    next label starting where the last one stopped: sizes and labels as even as they can be."""
    generator = torch.Generator().manual_seed(seed)
    dealt: tuple[list[int], list[int]] = ([], [])
    turn = 0
    for label in sorted(set(gold)):
        positions = [i for i, g in enumerate(gold) if g == label]
        for k in torch.randperm(len(positions), generator=generator).tolist():
            dealt[turn].append(positions[k])
            turn = 1 - turn
    return sorted(dealt[0]), sorted(dealt[1])


def cross_fitted_temperature(model: MultiTaskModel, texts: Sequence[str], labels: Sequence[str],
                             label_texts: Sequence[str], names: Sequence[str], seed: int, head_fit: HeadFit) -> float:
    """T for the head that ``train_branch`` then ``head_fit`` give, from cosines of examples held out of both
    (at least 2 ``texts``: one per half)."""
    gold = [list(names).index(label) for label in labels]
    start = {key: value.clone() for key, value in model.branch.state_dict().items()}
    cosines, truth = [], []
    first, second = halves(gold, seed)
    try:
        for kept, held in ((first, second), (second, first)):
            model.branch.load_state_dict(start)
            inputs = train_branch(model, [texts[i] for i in kept], [labels[i] for i in kept], label_texts, names,
                                  seed)
            vectors = trained_embeddings(model, inputs)  # the kept half, then the label texts
            head = head_fit(vectors[len(kept):], vectors[:len(kept)], torch.tensor([gold[i] for i in kept]))
            cosines.append(trained_embeddings(model, frozen_inputs(model, [texts[i] for i in held])) @ head.T)
            truth += [gold[i] for i in held]
    finally:
        model.branch.load_state_dict(start)
    return fit_temperature(torch.cat(cosines), torch.tensor(truth))
