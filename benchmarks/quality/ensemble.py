"""How good a teacher can this backbone give a sentence task: each kept model's accuracy on the task's harness test
split, and that of the mean of their label distributions (issue 31: a slim student ends 0.7-1.8 under its teacher
on SST-2, so clearing the bar needs a teacher at 89.3 or more; would an ensemble of the kept teachers be one?).

    MTST_DATA_DIR=../shared/data python -m benchmarks.quality.ensemble sentiment MODEL_DIR MODEL_DIR ...
      -> results/ensemble-<task>.json (not in an experiment folder: the report reads those) and a table on stdout

The split is the harness's (experiments.task_specs: SST-2 dev.tsv for sentiment), read as the training reads it;
every model must have the task, with the same labels.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch

from benchmarks.common import run_metadata, write_result
from benchmarks.quality.experiments import RESULTS, task_specs
from mtst.errors import MtstError


def scored_split(task: str) -> tuple[list[str], list[str]]:
    """(texts, gold label names) of ``task``'s harness test split."""
    from mtst.data.splits import read_task_splits
    from mtst.training.config import TaskSpec

    spec = TaskSpec.model_validate(task_specs()[task])
    test = read_task_splits(spec.name, spec.type, spec.data)["test"]
    return list(test.texts), list(test.labels)


def distributions(model_dir: Path, task: str, texts: list[str], labels: list[str] | None) -> tuple[torch.Tensor,
                                                                                                     list[str]]:
    """(N, C) probabilities of ``task``'s head in ``model_dir`` (its decoding, calibration included), and its labels;
    ``labels``: those the other models use, which this one must share."""
    from mtst import MultiTaskModel

    model = MultiTaskModel.load(model_dir, precision="fp32")  # as the harness scores: the same on every CPU
    own = list(model.heads[task].labels)
    if labels is not None and own != labels:
        raise SystemExit(f"{model_dir}: task '{task}' has labels {own}, the first model {labels}; "
                         "give models whose heads share the labels")
    rows = model.predict(texts, tasks=[task], batch_size=64)
    return torch.tensor([[row[task]["distribution"][label] for label in own] for row in rows]), own


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("task")
    parser.add_argument("models", nargs="+", type=Path)
    args = parser.parse_args()
    started, load = time.time(), os.getloadavg()
    texts, gold_names = scored_split(args.task)
    probs, labels = {}, None
    for model_dir in args.models:
        try:
            probs[str(model_dir)], labels = distributions(model_dir, args.task, texts, labels)
        except MtstError as exc:  # a wrong directory: one line, not a traceback
            raise SystemExit(f"error: {exc}") from None
    gold = torch.tensor([labels.index(name) for name in gold_names])

    def accuracy(p: torch.Tensor) -> float:
        return round(100 * float((p.argmax(dim=-1) == gold).double().mean()), 2)

    scores = {name: accuracy(p) for name, p in probs.items()}
    scores["mean of the distributions"] = accuracy(torch.stack(list(probs.values())).mean(dim=0))
    payload = {"task": args.task, "examples": len(gold), "accuracy": scores,
               "run": run_metadata("python -m benchmarks.quality.ensemble " + " ".join(
                   [args.task, *map(str, args.models)]), started, load, None)}
    write_result(RESULTS / f"ensemble-{args.task}.json", payload)
    rows = [f"| {name} | {value:.2f} |" for name, value in scores.items()]
    print("\n".join(["| model | accuracy |", "|---|---|", *rows]))


if __name__ == "__main__":
    main()
