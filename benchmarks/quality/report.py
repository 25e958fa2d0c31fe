"""Tables (markdown) and plots (PNG) from whatever results exist; runs nothing.

    .venv/bin/python benchmarks/quality/report.py      # -> results/report.md, results/plots/<experiment>.png

Each variant is one row: mean ± std over its seeds (n = number of seeds that ran).
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import RESULTS, load_results  # noqa: E402

EXPERIMENT_ORDER = ("features", "joint", "freezing", "llrd", "scarce", "long", "footprint", "branch", "ner", "pairs")
COLUMNS = {"topic/accuracy": "topic acc", "sentiment/accuracy": "SST-2 dev acc", "ner/f1": "CoNLL test F1",
           "sts/spearman": "STS-B Spearman"}
UNTOUCHED_STS = 82.03  # FACTS.md; also measured by the "features" experiment
UNTOUCHED_STS_DEV = 86.72  # STS-B dev, the untouched model at max_seq_length 128 (docs/training-guide.md)
PLOTS = RESULTS / "plots"


def _group(results: list[dict]) -> dict[str, list[dict]]:
    groups: dict[str, list[dict]] = {}
    for result in results:
        if result.get("quick"):
            continue
        groups.setdefault(result["variant"], []).append(result)
    return groups


def _stat(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def _cell(values: list[float]) -> str:
    if not values:
        return "–"
    mean, std = _stat(values)
    return f"{mean:.2f}" if len(values) == 1 else f"{mean:.2f} ± {std:.2f}"


def _wall_cell(runs: list[dict]) -> str:
    """Training wall time; a resumed run only timed the part after its last checkpoint, so it is marked."""
    cell = _cell([r["wall_s"] for r in runs if r.get("wall_s") is not None])
    return f"{cell} (resumed: part only)" if any(r.get("resumed") for r in runs) else cell


def experiment_table(experiment: str) -> tuple[str, dict[str, dict[str, list[float]]]]:
    """Markdown table + {variant: {metric: values}} for plotting."""
    groups = _group(load_results(experiment))
    data: dict[str, dict[str, list[float]]] = {}
    lines = []
    found = {key for runs in groups.values() for r in runs for key in r["metrics"]}
    extra = sorted(key for key in found - set(COLUMNS) if not key.endswith("_C"))
    columns = [c for c in COLUMNS if c in found] + extra
    header = ["variant", "n", *[COLUMNS.get(c, c) for c in columns], "steps", "train wall s"]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "---|" * len(header))
    for variant, runs in groups.items():
        data[variant] = {c: [r["metrics"][c] for r in runs if c in r["metrics"]] for c in columns}
        row = [variant, str(len(runs)), *[_cell(data[variant][c]) for c in columns],
               str(runs[0].get("steps", "–")), _wall_cell(runs)]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines), data


def plot(experiment: str, data: dict[str, dict[str, list[float]]]) -> Path | None:
    """One panel per metric, one bar per variant (error bar = std over seeds)."""
    metrics = [c for c in COLUMNS if any(values.get(c) for values in data.values())]
    if not metrics:
        return None
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 0.45 * len(data) + 2.2), squeeze=False)
    names = list(data)  # one row per variant in every panel, so rows line up across panels
    for ax, metric in zip(axes[0], metrics, strict=True):
        rows = [i for i, v in enumerate(names) if data[v].get(metric)]
        means = [_stat(data[names[i]][metric])[0] for i in rows]
        stds = [_stat(data[names[i]][metric])[1] for i in rows]
        ax.barh(rows, means, xerr=stds, color="tab:blue", alpha=0.8)
        ax.set_yticks(range(len(names)), names if ax is axes[0][0] else [""] * len(names), fontsize=8)
        ax.set_ylim(len(names) - 0.5, -0.5)
        ax.set_title(COLUMNS[metric], fontsize=10)
        span = means + ([UNTOUCHED_STS] if metric == "sts/spearman" else [])
        ax.set_xlim(max(0, min(span) - 5), min(100, max(span) + 3))
        for i, m in zip(rows, means, strict=True):
            ax.text(m, i, f" {m:.1f}", va="center", fontsize=7)
        if metric == "sts/spearman":
            ax.axvline(UNTOUCHED_STS, color="tab:red", linestyle="--", linewidth=1, label="untouched 82.03")
            ax.legend(fontsize=7, loc="lower right")
    return _save(fig, f"quality benchmark: {experiment}", experiment)


def plot_scarce(data: dict[str, dict[str, list[float]]]) -> Path | None:
    """Scarce NER: one line per recipe, x = % of CoNLL train kept (1/5/25), one panel per metric."""
    recipes: dict[str, dict[int, dict[str, list[float]]]] = {}
    for variant, values in data.items():
        percent, _, recipe = variant.partition("pct-")
        recipes.setdefault(recipe, {})[int(percent.removeprefix("ner"))] = values
    metrics = [m for m in ("ner/f1", "sentiment/accuracy", "sts/spearman") if any(
        v.get(m) for by_pct in recipes.values() for v in by_pct.values())]
    if not metrics:
        return None
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.6 * len(metrics), 4.0), squeeze=False)
    for ax, metric in zip(axes[0], metrics, strict=True):
        for recipe, by_pct in sorted(recipes.items()):
            points = sorted((pct, _stat(v[metric])) for pct, v in by_pct.items() if v.get(metric))
            if points:
                xs = [p for p, _ in points]
                ax.errorbar(xs, [m for _, (m, _) in points], yerr=[s for _, (_, s) in points], marker="o",
                            capsize=3, label=recipe)
        ax.set_xscale("log")
        ax.set_xticks([1, 5, 25], ["1 %", "5 %", "25 %"])
        ax.set_xlabel("CoNLL-2003 train kept")
        ax.set_title(COLUMNS[metric], fontsize=10)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    return _save(fig, "scarce: abundant sentiment (8,000), scarce NER", "scarce")


def plot_curve(experiment: str) -> Path | None:
    """Dev learning curves (SST-2 dev acc, CoNLL valid F1, STS-B dev Spearman) of runs that logged them."""
    runs = [r for r in load_results(experiment) if r.get("dev_curve") and not r.get("quick")]
    if not runs:
        return None
    keys = {"topic/accuracy": "AG News dev acc", "sentiment/accuracy": "SST-2 dev acc", "ner/f1": "CoNLL valid F1",
            "sts/spearman": "STS-B dev Spearman"}
    keys = {k: v for k, v in keys.items() if any(k in rec["eval"] for run in runs for rec in run["dev_curve"])}
    fig, axes = plt.subplots(1, len(keys), figsize=(4.6 * len(keys), 3.8), squeeze=False)
    for ax, (key, title) in zip(axes[0], keys.items(), strict=True):
        task = key.split("/")[0]
        for run in [run for run in runs if any(key in rec["eval"] for rec in run["dev_curve"])]:
            share = 1.0 if task == "sts" else _task_share(run, task)  # joint and alone compared per task update
            points = [(rec["step"] * share, rec["eval"][key]) for rec in run["dev_curve"] if key in rec["eval"]]
            ax.plot(*zip(*points, strict=True), marker="o", label=f"{run['variant']} seed {run['seed']}")
        if key == "sts/spearman":
            ax.axhline(UNTOUCHED_STS_DEV, color="tab:red", linestyle="--", linewidth=1,
                       label=f"untouched {UNTOUCHED_STS_DEV}")
            ax.legend(fontsize=7)
        ax.set_xlabel(f"optimizer steps (batch {runs[0].get('batch_size', '?')})" if task == "sts" else
                      f"updates of this task (expected; batch {runs[0].get('batch_size', '?')})")
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    return _save(fig, f"{experiment}: dev learning curves", f"{experiment}-curve")


def _task_share(run: dict, task: str) -> float:
    """The expected fraction of a run's optimizer steps that trained ``task`` (its sampler's probability)."""
    from mtst.data.sampling import task_probabilities

    sampling = run["config"].get("sampling", {})
    weights = {t["name"]: t.get("sampling_weight") for t in run["config"]["tasks"]}
    probabilities = task_probabilities(run["train_sizes"], sampling.get("strategy", "proportional"),
                                       sampling.get("temperature", 2.0), weights)
    return probabilities[task]


SPEED_COST = Path(__file__).resolve().parents[1] / "speed" / "results" / "branch_cost.json"
TASK_KEYS = ("topic/accuracy", "sentiment/accuracy", "ner/f1")


def frontier_points() -> list[dict]:
    """One point per model of the task-branch frontier: mean task score (over seeds), STS-B, and predict / encode
    cost (torch, from benchmarks/speed/branch_cost.py; models without a branch share the no-branch cost)."""
    if not SPEED_COST.exists():
        return []
    import json

    cost = {(row["branch_at"], row["ner_head"]): row["torch"]["ratio"]
            for row in json.loads(SPEED_COST.read_text())["rows"]}
    plain, crf = "windowed", "windowed+shape+crf"
    named = [("branch", f"joint-all-8000steps-fp32-branch{k}", f"branch_at {k}", k, plain) for k in (5, 4, 3, 2)]
    named += [("ner", "joint-all-8000steps-fp32-branch4-windowed-shape-crf", "branch_at 4 + shape + CRF (old default)",
               4, crf),
              ("ner", "joint-all-8000steps-fp32-branch3-windowed-shape-crf", "branch_at 3 + shape + CRF", 3, crf),
              ("ner", "joint-all-8000steps-fp32-branch2-windowed-shape-crf", "branch_at 2 + shape + CRF (shipped)",
               2, crf),
              ("branch", "frozen-shipped", "frozen encoder (older default)", 6, plain),
              ("long", "joint-all-8000steps-bf16-anchor10", "full fine-tune + anchor 10", 6, plain),
              ("long", "joint-all-8000steps-bf16", "full fine-tune", 6, plain)]
    points = []
    for experiment, variant, label, k, head in named:
        runs = _group(load_results(experiment)).get(variant)
        if not runs or (k, head) not in cost:
            continue
        mean = {key: statistics.fmean(run["metrics"][key] for run in runs) for key in (*TASK_KEYS, "sts/spearman")}
        points.append({"label": label, "cost": cost[k, head], "sts": mean["sts/spearman"],
                       "tasks": statistics.fmean(mean[key] for key in TASK_KEYS)})
    return points


def plot_frontier() -> Path | None:
    points = frontier_points()
    if not points:
        return None
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for point in points:
        exact = point["sts"] >= 82.0
        ax.scatter(point["cost"], point["tasks"], s=60, marker="o" if exact else "x",
                   color="tab:blue" if exact else "tab:red")
        # a label above would run into a point just to the right: put it below, or to the left when a point sits
        # right under this one (its own label goes below)
        crowded = any(0 < other["cost"] - point["cost"] < 0.08 and 0 <= other["tasks"] - point["tasks"] < 1.0
                      for other in points)
        stacked = any(abs(other["cost"] - point["cost"]) < 0.02 and 0 < point["tasks"] - other["tasks"] < 1.0
                      for other in points)
        offset, align = ((-5, -4), "right") if stacked else ((5, -22 if crowded else 4), "left")
        ax.annotate(f"{point['label']}\nSTS-B {point['sts']:.2f}", (point["cost"], point["tasks"]), fontsize=7,
                    xytext=offset, textcoords="offset points", ha=align)
    ax.axvline(1.35, color="grey", linestyle="--", linewidth=0.8)
    ax.set_xlabel("predict (every head) / encode alone, torch")
    ax.set_ylabel("mean of AG News acc, SST-2 dev acc, CoNLL F1 (test)")
    ax.grid(alpha=0.3)
    return _save(fig, "Task score vs inference cost (o: embeddings kept, x: embeddings moved)", "frontier")


def _save(fig, title: str, name: str) -> Path:
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    PLOTS.mkdir(parents=True, exist_ok=True)
    path = PLOTS / f"{name}.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main() -> None:
    sections = ["# Quality benchmark results (generated by benchmarks/quality/report.py)\n",
                "Mean ± std over n seeds; one seed where n = 1. Commands: see docs/training-guide.md.\n"]
    for experiment in EXPERIMENT_ORDER:
        if not (RESULTS / experiment).exists():
            continue
        table, data = experiment_table(experiment)
        sections.append(f"## {experiment}\n\n{table}\n")
        extra = {"scarce": lambda: plot_scarce(data), "long": lambda: plot_curve("long"),
                 "branch": plot_frontier}.get(experiment)
        for png in (plot(experiment, data), extra() if extra else None):
            if png is not None:
                sections.append(f"![{png.stem}](plots/{png.name})\n")
    out = RESULTS / "report.md"
    out.write_text("\n".join(sections), encoding="utf-8")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
