"""The result files as docs/few-shot.md (mean +/- std accuracy, mean training seconds, SetFit's seconds over each
mtst method's) and docs/few-shot.png (accuracy vs examples per class, a panel per dataset): only what was run."""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from benchmarks.common import REPO  # noqa: E402
from benchmarks.fewshot.data import DATASETS  # noqa: E402
from benchmarks.fewshot.methods import METHODS, MTST, THREADS  # noqa: E402
from mtst.files import write_text  # noqa: E402

DOCS = REPO / "docs" / "few-shot.md"
NAMES = {"ag_news": "AG News", "sst2": "SST-2", "sst5": "SST-5"}
ABOUT = {
    "majority": "the scored split's most frequent class: the floor",
    "zero-shot": "mtst's zero-shot head on the shipped model, label names only",
    "zero-shot-descriptions": "the same with a generic one-line description per label (benchmarks/fewshot/data.py)",
    "logistic-probe": "scikit-learn LogisticRegression (default C) on the shipped model's frozen unit embeddings",
    "mtst-prototype": "`mtst.training.few_shot.fit_few_shot(..., method=\"prototype\")` on the shipped model",
    "mtst-logistic": "`fit_few_shot(..., method=\"logistic\")` on the shipped model",
    "mtst-logistic-descriptions": "the same, starting from the label descriptions the zero-shot row uses (AG News)",
    "mtst-contrastive": "SetFit's pair recipe training only a fresh model's task branch (layers 3-6), then "
                        "LogisticRegression on its task embeddings (benchmarks/fewshot/contrastive.py)",
    "mtst-contrastive-bf16": "the same with the branch trained under bf16 autocast (CPUs with native bf16 only)",
    "mtst-few-shot-contrastive": "`fit_few_shot(..., method=\"contrastive\")` on a fresh model with a branch at 2: "
                                 "mtst.training.few_shot_branch (SetFit's loss on every pair inside batches of 16 "
                                 "texts plus the label names, 10 epochs, bf16 here; settings picked on GoEmotions, "
                                 "not on these datasets), then mtst's logistic head on the branch's states: what "
                                 "`auto` picks where the branch is free",
    "setfit": "SetFit 1.2.0, default TrainingArguments (seed = draw), the same all-MiniLM-L6-v2 directory, own venv",
}


def summarise(results: list[dict]) -> dict[tuple[str, int, str], dict]:
    """(dataset, shots, method) -> accuracies and seconds over its draws, in dataset, shots, method order."""
    groups: dict = defaultdict(lambda: {"accuracy": [], "seconds": [], "threads": set()})
    for r in results:
        group = groups[r["dataset"], r["shots"], r["method"]]
        group["accuracy"].append(r["accuracy"])
        group["seconds"].append(r["train_seconds"])
        group["threads"].add(r["hardware"].get("threads", THREADS))
    order = lambda key: (list(DATASETS).index(key[0]), key[1], list(METHODS).index(key[2]))  # noqa: E731
    return {key: groups[key] for key in sorted(groups, key=order)}


def _mean_std(values: list[float]) -> str:
    return f"{statistics.mean(values):.1f} ± {statistics.stdev(values) if len(values) > 1 else 0.0:.1f}"


def table(summary: dict) -> list[str]:
    lines = ["| dataset | examples / class | method | accuracy % (mean ± std) | draws | training s (mean) "
             "| SetFit s / this |", "|---|---:|---|---:|---:|---:|---:|"]
    for (dataset, shots, method), row in summary.items():
        seconds, setfit = statistics.mean(row["seconds"]), summary.get((dataset, shots, "setfit"))
        ratio = f"{statistics.mean(setfit['seconds']) / seconds:.1f}x" if setfit and method in MTST and seconds else ""
        threads = "" if row["threads"] == {THREADS} else f" ({'/'.join(map(str, sorted(row['threads'])))} thread)"
        lines.append(f"| {NAMES[dataset]} | {shots or '0 (none)'} | {method} | {_mean_std(row['accuracy'])} "
                     f"| {len(row['accuracy'])} | {seconds:.2f}{threads} | {ratio} |")
    return lines


def idle_section(idle: list[dict]) -> list[str]:
    """The re-timing on an idle machine (``--idle``): the same table, its own load range and commands."""
    loads = [r["load_average_before"][0] for r in idle]
    return ["## Re-timed on an idle machine", "",
            "The timings above were taken while other jobs shared the 2 cores at times (see the load range): SetFit's "
            "most of all. These fits ran again with nothing else running, one after another in one process, on the "
            "same draws: compare speed here.", "", *table(summarise(idle)), "",
            f"- Runs: {min(r['started_utc'] for r in idle)} to {max(r['started_utc'] for r in idle)} UTC; 1-minute "
            f"load average before a fit: {min(loads):.1f} to {max(loads):.1f} (a fit's own 2 threads keep it near 2)",
            *[f"- Command: `{command}`" for command in sorted({r["command"] for r in idle})], ""]


def render(results: list[dict], quick: bool, image: str, idle: list[dict] | None = None) -> str:
    """The whole markdown page for these results (and an idle re-timing's, when there is one)."""
    versions = {k: v for r in results for k, v in r["hardware"]["versions"].items()}
    setfit = {k: v for r in results if r["method"] == "setfit" for k, v in r["extra"]["versions"].items()}
    cpus = sorted({f"{r['hardware']['cpu']} ({', '.join(r.get('cpu_flags', []))})" for r in results})
    commands = sorted({r["command"] for r in results})
    started = sorted(r["started_utc"] for r in results)
    loads = [r["load_average_before"][0] for r in results]
    lines = ["# Few-shot text classification: mtst side by side with SetFit", "",
             "Generated by `python -m benchmarks.fewshot report" + (" --quick" if quick else "") + "` from "
             f"benchmarks/fewshot/results{'/quick' if quick else ''}/ (one JSON per dataset, method, shots and draw).",
             ""]
    if quick:
        lines += ["**A `--quick` run: 1 draw, the first 300 scored rows: it checks the plumbing, it is not the "
                  "benchmark.**", ""]
    lines += ["Data: AG News = the description column of test.csv cut 80/10/10 (seed 13, as benchmarks/quality): "
              "draws from its train part, scored on its test part; SST-2: draws from GLUE train, scored on dev; "
              "SST-5: draws from stsa.fine.train, scored on stsa.fine.test. Draw k (seed k) picks the same rows for "
              "every method. Training seconds include embedding the examples, not loading the model; zero-shot "
              f"and the majority class use no examples. One process, {THREADS} threads (SetFit's subprocess too) "
              "unless the seconds say otherwise.", "",
              *[f"- `{m}`: {ABOUT[m]}" for m in METHODS if any(r["method"] == m for r in results)], "",
              *table(summarise(results)), "", f"![accuracy vs examples per class]({image})", "",
              f"- CPU: {'; '.join(cpus)}", f"- Runs: {started[0]} to {started[-1]} UTC; 1-minute load average "
              f"before a fit: {min(loads):.1f} to {max(loads):.1f} (compare timings only at similar load)",
              f"- Versions: {', '.join(f'{k} {v}' for k, v in versions.items())}"
              + (f"; SetFit's environment: {', '.join(f'{k} {v}' for k, v in setfit.items())}" if setfit else ""),
              *[f"- Command: `{command}`" for command in commands], "", *(idle_section(idle) if idle else [])]
    return "\n".join(lines)


def plot(results: list[dict], path: Path) -> None:
    summary = summarise(results)
    datasets = list(dict.fromkeys(dataset for dataset, _, _ in summary))
    fig, axes = plt.subplots(1, len(datasets), figsize=(5.5 * len(datasets), 4.2), squeeze=False)
    for ax, dataset in zip(axes[0], datasets, strict=True):
        for method in METHODS:
            points = sorted((shots, row) for (d, shots, m), row in summary.items() if d == dataset and m == method)
            if not points:
                continue
            means = [statistics.mean(row["accuracy"]) for _, row in points]
            if points[0][0] == 0:  # no examples: a level line
                ax.axhline(means[0], linestyle="--", linewidth=1, label=method, color=f"C{list(METHODS).index(method)}")
                continue
            stds = [statistics.stdev(row["accuracy"]) if len(row["accuracy"]) > 1 else 0.0 for _, row in points]
            ax.errorbar([shots for shots, _ in points], means, yerr=stds, marker="o", capsize=3, label=method,
                        color=f"C{list(METHODS).index(method)}")
        shots = sorted({s for d, s, _ in summary if d == dataset and s}) or [8]
        ax.set(xscale="log", xlim=(shots[0] / 1.5, shots[-1] * 1.5), title=NAMES[dataset],
               xlabel="examples per class", ylabel="accuracy %")
        ax.set_xticks(shots, [str(s) for s in shots])
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _read(results_dir: Path) -> list[dict]:
    return [json.loads(path.read_text(encoding="utf-8")) for path in sorted(results_dir.glob("*/*/*.json"))]


def main(results_dir: Path, quick: bool = False, docs: Path = DOCS, idle_dir: Path | None = None) -> None:
    results = _read(results_dir)
    if not results:
        raise SystemExit(f"no results in {results_dir}: run python -m benchmarks.fewshot first")
    image = docs.with_suffix(".png")
    plot(results, image)
    write_text(docs, render(results, quick, image.name, None if quick or idle_dir is None else _read(idle_dir)))
    print(f"wrote {docs} and {image} ({len(results)} results)")
