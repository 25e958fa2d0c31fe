"""A speed run as markdown between markers in docs/speed-tables.md (the rest of the file is kept): one round gives a
table block ("main", or a named one: each has its own markers), several rounds give the rounds block. Re-render a
saved run with ``python -m benchmarks.speed --render benchmarks/speed/results/speed-STAMP.json [--block NAME]``."""

from __future__ import annotations

from pathlib import Path

from benchmarks.common import REPO, replace_block

DOCS = REPO / "docs" / "speed-tables.md"  # generated; docs/performance.md quotes and explains it
HEADING, ROUNDS_HEADING = "## Offline inference speed", "## Speed ratios over alternating rounds"
ROUNDS_MARKERS = ("<!-- speed-rounds:begin -->", "<!-- speed-rounds:end -->")
SETS = {"stsb": "STS-B", "short": "short", "long": "long"}  # older runs also timed short and long sentences
TARGETS = {"openvino-fp32": 5.0, "onnx-fp32": 5.0, "torch-fp32": 1.4, "openvino-int8": 7.0, "onnx-int8": 7.0}


def markers(block: str) -> tuple[str, str]:
    return tuple(f"<!-- speed-table{'' if block == 'main' else f'-{block}'}:{end} -->" for end in ("begin", "end"))


def speed(result: dict, name: str) -> str:
    row = result.get("sets", {}).get(name)
    return f"{row['sentences_per_s']:,.0f} ({row['ratio_to_reference']:.2f}x)" if row else "-"


def agreement(result: dict) -> str:
    """"topic 99.3%, ner 99.9% of words (98.0% of sentences)": token tasks per word, whole sentences after."""
    found = result.get("task_agreement_with_torch") or {}
    return ", ".join(f"{task} {100 * value:.1f}%" + ("" if (whole := found.get(f"{task}/sentences")) is None else
                                                     f" of words ({100 * whole:.1f}% of sentences)")
                     for task, value in found.items() if not task.endswith("/sentences")) or "-"


def table(report: dict) -> list[str]:
    sets = [name for name in SETS if any(name in r.get("sets", {}) for r in report["results"].values())]
    lines = ["| variant | " + " | ".join(f"{SETS[name]} sent/s (x ref)" for name in sets) + " | batch-1 p50 / p95 ms "
             "| peak RSS MB | STS-B Spearman | cos to ref mean / min | tasks = torch |", "|---" * (6 + len(sets)) + "|"]
    for name, result in report["results"].items():
        if "error" in result:
            lines.append(f"| {name} | failed: {result['error'].replace('|', '/')} |" + " |" * (4 + len(sets)))
            continue
        cos, runtime = result.get("cosine_to_reference"), result.get("openvino_runtime_precision")
        lines.append(" | ".join([
            f"| {name} ({runtime})" if runtime else f"| {name}", *(speed(result, set_name) for set_name in sets),
            f"{result['latency_ms']['p50']:.1f} / {result['latency_ms']['p95']:.1f}", f"{result['peak_rss_mb']:,.0f}",
            f"{result['stsb_spearman']:.2f}" if "stsb_spearman" in result else "-",
            f"{cos['mean']:.5f} / {cos['min']:.5f}" if cos else "-", agreement(result)]) + " |")
    return lines


def targets(report: dict) -> list[str]:
    """The project's speed targets, each with the quality condition it comes with, and a verdict."""
    results = {name: r for name, r in report["results"].items() if "sets" in r}
    ratio = {name: r["sets"]["stsb"]["ratio_to_reference"] for name, r in results.items()}
    spearman = {name: r["stsb_spearman"] for name, r in results.items() if "stsb_spearman" in r}
    verdict = {True: "met", False: "MISSED"}
    lines = [f"- mtst torch fp32 >= 1.4x, cos >= 0.9999: {ratio['torch-fp32']:.2f}x, min cos {cos:.6f} -> "
             f"{verdict[ratio['torch-fp32'] >= 1.4 and cos >= 0.9999]}"
             for cos in [results.get("torch-fp32", {}).get("cosine_to_reference", {}).get("min")] if cos is not None]
    for names, target, floor, text, keep in (
            (("onnx-fp32", "openvino-fp32"), 5, 0.0, "best lossless export >= 5x with STS-B unchanged (within 0.05)",
             lambda n: abs(spearman[n] - spearman.get("st-fp32", float("nan"))) <= 0.05),
            (("onnx-int8", "openvino-int8"), 7, 82.0, "best int8 >= 7x with STS-B >= 82.0", lambda n: True)):
        if found := [n for n in names if n in spearman and keep(n)]:
            best = max(found, key=ratio.get)
            ok = ratio[best] >= target and spearman[best] >= floor
            lines.append(f"- {text}: {best} {ratio[best]:.2f}x, Spearman {spearman[best]:.2f} -> {verdict[ok]}")
    for name, result in results.items():
        shown = {task: value for task, value in (result.get("task_agreement_with_torch") or {}).items()
                 if not task.endswith("/sentences")}
        if shown and "int8" in name:
            worst = min(shown, key=shown.get)
            lines.append(f"- int8 same label as torch >= 98% (token tasks per word): {name} lowest {worst} "
                         f"{100 * shown[worst]:.1f}% -> {verdict[shown[worst] >= 0.98]}")
        same = result.get("predict_vs_encode_same_process")
        if (cost := same["ratio"] if same else result.get("cost_vs_embeddings_only")) is not None:
            lines.append(f"- all heads <= 1.15x embeddings alone ({name}, "
                         f"{'alternating in one process' if same else 'across processes'}): {cost:.2f}x -> "
                         f"{verdict[cost <= 1.15]}")
        if "cost_vs_mtst_predict" in result:
            lines.append(f"- separate models (embedding model + one per task) cost "
                         f"{result['cost_vs_mtst_predict']:.2f}x mtst predict")
    return lines


def section(report: dict, results_file: Path, block: str = "main") -> str:
    hw, (begin, end) = report["hardware"], markers(block)
    versions = ", ".join(f"{name} {v}" for name, v in hw["versions"].items())
    stsb = report["results"].get("st-fp32", {}).get("sets", {}).get("stsb", {}).get("sentences", "?")
    return "\n".join([
        begin,
        f"Run {report['started_utc']} UTC, {report['duration_s']:.0f} s, command: "
        f"`.venv/bin/python {report['command'].strip()}` (raw numbers: `{results_file}`).", "",
        f"Hardware: {hw['cpu']}, {hw['cores_available']} cores available, {hw['threads']} thread(s) for every "
        f"variant; Python {hw['python']}; {versions}. Throughput: the median of {report.get('repeats', 1)} pass(es) "
        "over the sentences, each variant in its own process.",
        f"Load average before / after: {report['load_average_before']} / {report['load_average_after']}"
        " (other jobs shared the machine whenever it is above the thread count).",
        f"Model: {report['model_kind']}. Sentences: {stsb} unique STS-B test sentences (Spearman over all STS-B test "
        "pairs). x ref = speed / sentence-transformers in the same round (median over rounds).", "",
        *table(report), "", "Targets:", *targets(report), end])


def rounds_block(report: dict) -> str:
    hw = report["hardware"]
    lines = [ROUNDS_MARKERS[0],
             f"Run {report['started_utc']} UTC, `{report['command']}`: {hw['cpu']}, {hw['threads']} threads, "
             f"{report['rounds']} rounds, load average before {report['load_average_before'][0]}, "
             f"after {report['load_average_after'][0]}. Ratio = variant / `st-fp32` in the same round "
             f"(sentences/s over the STS-B test sentences, {report['repeats']} passes each).", "",
             "| variant | median ratio | min – max | per round | target | verdict (median) |",
             "|---|---|---|---|---|---|"]
    for name, row in report["summary"].items():
        verdict = "-" if (target := TARGETS.get(name)) is None else ("met" if row["median"] >= target else "MISSED")
        lines.append(f"| {name} | {row['median']:.2f}x | {row['min']:.2f} – {row['max']:.2f} | "
                     f"{', '.join(f'{x:.2f}' for x in row['ratios'])} | {f'{target:g}x' if target else '-'} "
                     f"| {verdict} |")
    speeds = ", ".join(f"{s:,.0f}" for s in report["reference_speeds"])
    return "\n".join([*lines, "", f"`st-fp32` per round: {speeds} sentences/s.", ROUNDS_MARKERS[1]])


def one_pass_table(report: dict) -> str:
    """``--variants one-pass``: per task path, predict with the embedding over encode (alternating in its process)."""
    lines = ["| task path | predict + embedding / encode: wall | CPU time | layer work | predict alone / encode "
             "| predict + embedding (sent/s) | encode (sent/s) | trainable parameters | saved, bf16 (MB) |",
             "|---" * 9 + "|"]
    for name, r in report["results"].items():
        if same := r.get("predict_vs_encode_same_process"):
            n = r["sets"]["stsb"]["sentences"]
            alone = f"{same['labels_ratio']:.2f}x" if "labels_ratio" in same else "-"  # runs before it lacked it
            lines.append(f"| {name} | {same['ratio']:.2f}x | {same['cpu_ratio']:.2f}x | {r['layer_work_ratio']:.2f}x | "
                         f"{alone} | {n / same['predict_s']:.0f} | {n / same['encode_s']:.0f} | "
                         f"{r['trainable_parameters']:,} | {r['saved_bytes_bfloat16'] / 1e6:.1f} |")
    return "\n".join(lines) + "\n"


def write_docs(report: dict, results_file: Path, block: str = "main", docs: Path = DOCS) -> None:
    """Several rounds: the rounds block; one round: the table block ``block``."""
    if report.get("rounds", 1) > 1:
        replace_block(docs, rounds_block(report), *ROUNDS_MARKERS, ROUNDS_HEADING)
    else:
        replace_block(docs, section(report, results_file, block), *markers(block), HEADING)
