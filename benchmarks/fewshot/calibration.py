"""How well the few-shot heads' scores are calibrated on the scored split (issue 30): expected calibration error
(15 bins, mtst.training.calibration) of ``fit_few_shot`` with method ``contrastive`` (with and without
``cross_fit_temperature``) and ``logistic`` on a fresh model with a free branch, the same draws as the accuracy
benchmark. The fit's temperature comes from leave-one-out cosines of its own examples; after contrastive training
the branch has seen every one of them, so that estimate is sharper than new texts warrant. This run measures by how
much, and what a temperature cross-fitted on held-out halves gives back.

    MTST_DATA_DIR=../shared/data python -m benchmarks.fewshot.calibration [--shots 8] [--draws 5]
    # -> benchmarks/fewshot/calibration_results.json and a markdown table on stdout
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from benchmarks.common import REPO, run_metadata, write_result
from benchmarks.fewshot.data import DATASETS, draw

RESULTS = REPO / "benchmarks" / "fewshot" / "calibration_results.json"
METHODS = ("contrastive", "contrastive-cross-fit", "logistic")  # the middle one: cross_fit_temperature=True


def scored(dataset, method: str, shots: int, seed: int) -> dict:
    """Accuracy, ECE, mean top probability and the fitted temperature of one fit, on the dataset's scored split."""
    from mtst import MultiTaskModel
    from mtst.training import few_shot_branch
    from mtst.training.calibration import expected_calibration_error
    from mtst.training.few_shot import fit_few_shot

    rows = draw(dataset.train.labels, shots, seed)
    model = MultiTaskModel.from_backbone(None, branch_at=few_shot_branch.FRESH_BRANCH_AT, precision="fp32")
    fit = fit_few_shot(model, "fewshot", [dataset.train.texts[i] for i in rows],
                       [dataset.train.labels[i] for i in rows], method=method.split("-")[0], seed=seed,
                       cross_fit_temperature=method.endswith("cross-fit"))
    names = model.config.heads["fewshot"].labels
    answers = model.predict(list(dataset.test.texts), tasks=["fewshot"], batch_size=64)
    probs = torch.tensor([[answer["fewshot"]["distribution"][name] for name in names] for answer in answers])
    gold = torch.tensor([names.index(label) for label in dataset.test.labels])
    return {"accuracy": 100 * float((probs.argmax(-1) == gold).double().mean()),
            "ece": expected_calibration_error(probs, gold), "mean_top_probability": float(probs.max(-1).values.mean()),
            "temperature": model.config.heads["fewshot"].temperature, "seconds": fit.seconds}


def table(results: dict) -> str:
    lines = ["| dataset | examples / class | method | accuracy % | ECE (0-1) | mean top probability | fit s | draws |",
             "|---|---:|---|---:|---:|---:|---:|---:|"]
    for key, runs in results.items():
        name, shots, method = key.split("/")
        mean = {field: statistics.fmean(run[field] for run in runs) for field in runs[0]}
        lines.append(f"| {name} | {shots} | {method} | {mean['accuracy']:.1f} | {mean['ece']:.3f} | "
                     f"{mean['mean_top_probability']:.3f} | {mean['seconds']:.2f} | {len(runs)} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shots", type=int, default=8)
    parser.add_argument("--draws", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    started, load = time.time(), os.getloadavg()
    results = {}
    for name, load_dataset in DATASETS.items():
        dataset = load_dataset()
        for method in METHODS:
            results[f"{name}/{args.shots}/{method}"] = [scored(dataset, method, args.shots, seed)
                                                       for seed in range(args.draws)]
    command = f"python -m benchmarks.fewshot.calibration --shots {args.shots} --draws {args.draws}"
    write_result(RESULTS, {"results": results, "run": run_metadata(command, started, load, args.threads)})
    print(table(results))


if __name__ == "__main__":
    main()
