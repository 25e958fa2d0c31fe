"""Tables (markdown) and plots (PNG) from whatever quality results exist; runs nothing.

    .venv/bin/python -m benchmarks.quality report [--out DIR]    # -> DIR/report.md, DIR/plots/<experiment>.png

Each variant is one row: mean ± std over its seeds (n = number of seeds that ran).
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from benchmarks.common import REPO  # noqa: E402
from benchmarks.quality.experiments import RESULTS  # noqa: E402

EXPERIMENT_ORDER = ("features", "joint", "freezing", "llrd", "scarce", "long", "footprint", "branch", "ner", "pairs",
                    "side", "distil")
COLUMNS = {"topic/accuracy": "topic acc", "sentiment/accuracy": "SST-2 dev acc", "ner/f1": "CoNLL test F1",
           "sts/spearman": "STS-B Spearman"}
UNTOUCHED_STS = 82.03  # all-MiniLM-L6-v2 on STS-B test; also measured by the "features" experiment
UNTOUCHED_STS_DEV = 86.72  # STS-B dev, the untouched model at max_seq_length 128 (docs/training-guide.md)
ONE_PASS_RESULTS = REPO / "benchmarks" / "speed" / "results"  # one_pass-<stamp>.json: the frontier's cost axis
TASK_KEYS = ("topic/accuracy", "sentiment/accuracy", "ner/f1")


def read_results(experiment: str) -> list[dict]:
    """Every finished run of an experiment (quick plumbing checks left out)."""
    runs = [json.loads(path.read_text(encoding="utf-8")) for path in sorted((RESULTS / experiment).glob("*.json"))]
    return [run for run in runs if not run.get("quick")]


def group(runs: list[dict]) -> dict[str, list[dict]]:
    return {name: [run for run in runs if run["variant"] == name] for name in dict.fromkeys(r["variant"] for r in runs)}


def stat(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def cell(values: list[float]) -> str:
    if not values:
        return "–"
    mean, std = stat(values)
    return f"{mean:.2f}" if len(values) == 1 else f"{mean:.2f} ± {std:.2f}"


def wall_cell(runs: list[dict]) -> str:
    """Training wall time; a resumed run only timed the part after its last checkpoint, so it is marked."""
    text = cell([r["wall_s"] for r in runs if r.get("wall_s") is not None])
    return f"{text} (resumed: part only)" if any(r.get("resumed") for r in runs) else text


def experiment_table(experiment: str) -> tuple[str, dict[str, dict[str, list[float]]]]:
    """Markdown table + {variant: {metric: values}} for plotting."""
    groups = group(read_results(experiment))
    found = {key for runs in groups.values() for r in runs for key in r["metrics"]}
    columns = [c for c in COLUMNS if c in found] + sorted(key for key in found - set(COLUMNS) if not key.endswith("_C"))
    header = ["variant", "n", *[COLUMNS.get(c, c) for c in columns], "steps", "train wall s"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    data: dict[str, dict[str, list[float]]] = {}
    for variant, runs in groups.items():
        data[variant] = {c: [r["metrics"][c] for r in runs if c in r["metrics"]] for c in columns}
        row = [variant, str(len(runs)), *[cell(data[variant][c]) for c in columns], str(runs[0].get("steps", "–")),
               wall_cell(runs)]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines), data


def plot_bars(experiment: str, data: dict[str, dict[str, list[float]]]):
    """One panel per metric, one bar per variant (error bar = std over seeds)."""
    metrics = [c for c in COLUMNS if any(values.get(c) for values in data.values())]
    if not metrics:
        return None
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 0.45 * len(data) + 2.2), squeeze=False)
    names = list(data)  # one row per variant in every panel, so rows line up across panels
    for ax, metric in zip(axes[0], metrics, strict=True):
        rows = [i for i, v in enumerate(names) if data[v].get(metric)]
        means, stds = zip(*(stat(data[names[i]][metric]) for i in rows), strict=True)
        ax.barh(rows, means, xerr=stds, color="tab:blue", alpha=0.8)
        ax.set_yticks(range(len(names)), names if ax is axes[0][0] else [""] * len(names), fontsize=8)
        ax.set_ylim(len(names) - 0.5, -0.5)
        ax.set_title(COLUMNS[metric], fontsize=10)
        span = [*means] + ([UNTOUCHED_STS] if metric == "sts/spearman" else [])
        ax.set_xlim(max(0, min(span) - 5), min(100, max(span) + 3))
        for i, m in zip(rows, means, strict=True):
            ax.text(m, i, f" {m:.1f}", va="center", fontsize=7)
        if metric == "sts/spearman":
            ax.axvline(UNTOUCHED_STS, color="tab:red", linestyle="--", linewidth=1, label="untouched 82.03")
            ax.legend(fontsize=7, loc="lower right")
    return fig, f"quality benchmark: {experiment}", experiment


def plot_scarce(data: dict[str, dict[str, list[float]]]):
    """Scarce NER: one line per recipe, x = % of CoNLL train kept (1/5/25), one panel per metric."""
    recipes: dict[str, dict[int, dict[str, list[float]]]] = {}
    for variant, values in data.items():
        percent, _, recipe = variant.partition("pct-")
        recipes.setdefault(recipe, {})[int(percent.removeprefix("ner"))] = values
    metrics = [m for m in ("ner/f1", "sentiment/accuracy", "sts/spearman")
               if any(v.get(m) for by_pct in recipes.values() for v in by_pct.values())]
    if not metrics:
        return None
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.6 * len(metrics), 4.0), squeeze=False)
    for ax, metric in zip(axes[0], metrics, strict=True):
        for recipe, by_pct in sorted(recipes.items()):
            points = sorted((pct, stat(v[metric])) for pct, v in by_pct.items() if v.get(metric))
            if points:
                ax.errorbar([p for p, _ in points], [m for _, (m, _) in points], yerr=[s for _, (_, s) in points],
                            marker="o", capsize=3, label=recipe)
        ax.set_xscale("log")
        ax.set_xticks([1, 5, 25], ["1 %", "5 %", "25 %"])
        ax.set_xlabel("CoNLL-2003 train kept")
        ax.set_title(COLUMNS[metric], fontsize=10)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    return fig, "scarce: abundant sentiment (8,000), scarce NER", "scarce"


def plot_curve(experiment: str):
    """Dev learning curves (SST-2 dev acc, CoNLL valid F1, STS-B dev Spearman) of runs that logged them."""
    runs = [r for r in read_results(experiment) if r.get("dev_curve")]
    if not runs:
        return None
    keys = {"topic/accuracy": "AG News dev acc", "sentiment/accuracy": "SST-2 dev acc", "ner/f1": "CoNLL valid F1",
            "sts/spearman": "STS-B dev Spearman"}
    keys = {k: v for k, v in keys.items() if any(k in rec["eval"] for run in runs for rec in run["dev_curve"])}
    fig, axes = plt.subplots(1, len(keys), figsize=(4.6 * len(keys), 3.8), squeeze=False)
    batch = runs[0].get("batch_size", "?")
    for ax, (key, title) in zip(axes[0], keys.items(), strict=True):
        task = key.split("/")[0]
        for run in [run for run in runs if any(key in rec["eval"] for rec in run["dev_curve"])]:
            share = 1.0 if task == "sts" else task_share(run, task)  # joint and alone compared per task update
            points = [(rec["step"] * share, rec["eval"][key]) for rec in run["dev_curve"] if key in rec["eval"]]
            ax.plot(*zip(*points, strict=True), marker="o", label=f"{run['variant']} seed {run['seed']}")
        if key == "sts/spearman":
            ax.axhline(UNTOUCHED_STS_DEV, color="tab:red", linestyle="--", linewidth=1,
                       label=f"untouched {UNTOUCHED_STS_DEV}")
            ax.legend(fontsize=7)
        ax.set_xlabel(f"optimizer steps (batch {batch})" if task == "sts" else
                      f"updates of this task (expected; batch {batch})")
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    return fig, f"{experiment}: dev learning curves", f"{experiment}-curve"


def task_share(run: dict, task: str) -> float:
    """The expected fraction of a run's optimizer steps that trained ``task`` (its sampler's probability)."""
    from mtst.data.sampling import task_probabilities

    sampling = run["config"].get("sampling", {})
    weights = {t["name"]: t.get("sampling_weight") for t in run["config"]["tasks"]}
    return task_probabilities(run["train_sizes"], sampling.get("strategy", "proportional"),
                              sampling.get("temperature", 2.0), weights)[task]


def one_pass_costs() -> dict[str, float]:
    """Task path (one-pass variant name: frozen-encoder, branch-k4, side-r8, ...) -> predict with every head and the
    embedding / encode, torch, from ``python -m benchmarks.speed --variants one-pass`` results (a path measured again
    takes its newest figure; a run of a few variants keeps the others')."""
    costs = {}
    for file in sorted(ONE_PASS_RESULTS.glob("one_pass-*.json")):  # stamped names: oldest first
        costs.update({name: r["predict_vs_encode_same_process"]["ratio"]
                      for name, r in json.loads(file.read_text()).get("results", {}).items()
                      if "predict_vs_encode_same_process" in r})
    return costs


def frontier_points() -> list[dict]:
    """One point per model of the one-pass frontier: mean task score (over seeds), STS-B, and the cost of ``predict``
    with every head and the embedding over ``encode`` (models without a branch or side network: the frozen encoder's
    path, one pass)."""
    cost = one_pass_costs()
    crf = "windowed-shape-crf"
    named = [("branch", f"joint-all-8000steps-fp32-branch{k}", f"branch_at {k}", f"branch-k{k}") for k in (5, 4)]
    named += [("ner", f"joint-all-8000steps-fp32-branch{k}-{crf}", f"branch_at {k} + shape + CRF{note}", f"branch-k{k}")
              for k, note in ((4, " (old default)"), (3, ""), (2, " (shipped)"))]
    named += [("side", f"joint-all-8000steps-fp32-side{r}-{crf}", f"side network r = {r}", f"side-r{r}")
              for r in (8, 4, 2)]
    named += [("distil", f"joint-all-8000steps-bf16-distil-k{shape}", f"distilled: {label}", path)
              for shape, label, path in (("4-ffn384", "2 layers above 4, FFN 384", "branch-k4-ffn384"),
                                         ("4-ffn768", "2 layers above 4, FFN 768", "branch-k4-ffn768"),
                                         ("5-ffn1536", "1 layer above 5", "branch-k5"),
                                         ("2-2layers-ffn384", "2 layers above 2, FFN 384", "branch-k2-2layers-ffn384"),
                                         ("3-heads4-ffn384", "3 layers above 3, 4 heads, FFN 384",
                                          "branch-k3-heads4-ffn384"),
                                         ("4-ffn384-augment1", "2 layers above 4, FFN 384, masked copies",
                                          "branch-k4-ffn384"))]
    named += [("branch", "frozen-shipped", "frozen encoder (older default)", "frozen-encoder"),
              ("long", "joint-all-8000steps-bf16-anchor10", "full fine-tune + anchor 10", "frozen-encoder"),
              ("long", "joint-all-8000steps-bf16", "full fine-tune", "frozen-encoder")]
    points = []
    for experiment, variant, label, path in named:
        runs = group(read_results(experiment)).get(variant)
        if not runs or path not in cost:
            continue
        mean = {key: statistics.fmean(run["metrics"][key] for run in runs) for key in (*TASK_KEYS, "sts/spearman")}
        points.append({"label": label, "cost": cost[path], "sts": mean["sts/spearman"],
                       "tasks": statistics.fmean(mean[key] for key in TASK_KEYS)})
    return points


def plot_frontier():
    points = frontier_points()
    if not points:
        return None
    fig, ax = plt.subplots(figsize=(8.4, 4.4))
    colors = plt.get_cmap("tab20").colors
    for index, point in enumerate(sorted(points, key=lambda p: (p["cost"], p["tasks"]))):
        exact = point["sts"] >= 82.0  # the legend carries the names: labels beside points overlapped
        ax.scatter(point["cost"], point["tasks"], s=60, marker="o" if exact else "x", color=colors[index % 20],
                   label=f"{point['label']}: {point['tasks']:.2f}, STS-B {point['sts']:.2f}")
    ax.axvline(1.3, color="grey", linestyle="--", linewidth=0.8)
    ax.set_xlabel("predict (every head + the embedding) / encode alone, torch")
    ax.set_ylabel("mean of AG News acc, SST-2 dev acc, CoNLL F1")
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    ax.grid(alpha=0.3)
    return fig, "Task score vs one-pass cost (o: embeddings kept, x: embeddings moved)", "frontier"


def save(figure, folder: Path) -> Path:
    fig, title, name = figure
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(out: Path = RESULTS) -> None:
    from mtst.files import write_text

    sections = ["# Quality benchmark results (generated by benchmarks/quality/report.py)\n",
                "Mean ± std over n seeds; one seed where n = 1. Commands: see docs/training-guide.md.\n"]
    for experiment in EXPERIMENT_ORDER:
        if not (RESULTS / experiment).exists():
            continue
        table, data = experiment_table(experiment)
        sections.append(f"## {experiment}\n\n{table}\n")
        extra = {"scarce": lambda: plot_scarce(data), "long": lambda: plot_curve("long"),
                 "branch": plot_frontier}.get(experiment)
        for figure in (plot_bars(experiment, data), extra() if extra else None):
            if figure is not None:
                png = save(figure, out / "plots")
                sections.append(f"![{png.stem}](plots/{png.name})\n")
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "report.md", "\n".join(sections))
    print(f"wrote {out / 'report.md'}")
