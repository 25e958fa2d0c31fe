"""A speed run as markdown between markers in docs/speed-tables.md (the rest of the file is kept): one round gives a
table block ("main", or a named one: each has its own markers), several rounds give the rounds block. Re-render a
saved run with ``python -m benchmarks.speed --render benchmarks/speed/results/speed-STAMP.json [--block NAME]``."""

from __future__ import annotations

import re
from pathlib import Path

from benchmarks.common import REPO, replace_block

WORK_FOLDER = re.compile(r"--work \S+")
DOCS = REPO / "docs" / "speed-tables.md"  # generated; docs/performance.md quotes and explains it
HEADING, ROUNDS_HEADING = "## Offline inference speed", "## Speed ratios over alternating rounds"
ROUNDS_MARKERS = ("<!-- speed-rounds:begin -->", "<!-- speed-rounds:end -->")
SETS = {"stsb": "STS-B", "short": "short", "long": "long"}  # older runs also timed short and long sentences


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


def findings(report: dict) -> list[str]:
    """What the table says, in words: the fastest lossless and int8 exports, int8's agreement with torch, what every
    head costs beside the embedding, and the separate-models baseline."""
    results = {name: r for name, r in report["results"].items() if "sets" in r}
    ratio = {name: r["sets"]["stsb"]["ratio_to_reference"] for name, r in results.items()}
    spearman = {name: r["stsb_spearman"] for name, r in results.items() if "stsb_spearman" in r}
    lines = []
    for names, text in ((("onnx-fp32", "openvino-fp32"), "fastest fp32 export"),
                        (("onnx-int8", "openvino-int8"), "fastest int8 export")):
        if found := [n for n in names if n in spearman]:
            best = max(found, key=ratio.get)
            lines.append(f"- {text}: {best}, {ratio[best]:.2f}x sentence-transformers, STS-B {spearman[best]:.2f}")
    for name, result in results.items():
        shown = {task: value for task, value in (result.get("task_agreement_with_torch") or {}).items()
                 if not task.endswith("/sentences")}
        if shown and "int8" in name:
            worst = min(shown, key=shown.get)
            lines.append(f"- {name}: lowest agreement with torch's labels {worst} {100 * shown[worst]:.1f}% "
                         "(token tasks per word)")
        if same := result.get("predict_vs_encode_same_process"):
            lines.append(f"- {name}: {same['ratio']:.2f}x the same runtime's encode, alternating in one process")
        if "cost_vs_mtst_predict" in result:
            lines.append(f"- separate models (an embedding model + one model per task): "
                         f"{result['cost_vs_mtst_predict']:.2f}x the time of mtst's torch predict")
    return lines


def section(report: dict, results_file: Path, block: str = "main") -> str:
    hw, (begin, end) = report["hardware"], markers(block)
    command = WORK_FOLDER.sub("--work WORK_DIR", report["command"].strip())  # a scratch path says nothing
    versions = ", ".join(f"{name} {v}" for name, v in hw["versions"].items())
    stsb = report["results"].get("st-fp32", {}).get("sets", {}).get("stsb", {}).get("sentences", "?")
    return "\n".join([
        begin,
        f"Run {report['started_utc']} UTC, {report['duration_s']:.0f} s, command: "
        f"`.venv/bin/python {command}` (raw numbers: `{results_file}`).", "",
        f"Hardware: {hw['cpu']}, {hw['cores_available']} cores available, {hw['threads']} thread(s) for every "
        f"variant; Python {hw['python']}; {versions}. Throughput: the median of {report.get('repeats', 1)} pass(es) "
        "over the sentences, each variant in its own process.",
        f"Load average before / after: {report['load_average_before']} / {report['load_average_after']}"
        " (other jobs shared the machine whenever it is above the thread count).",
        f"Model: {report['model_kind']}. Sentences: {stsb} unique STS-B test sentences (Spearman over all STS-B test "
        "pairs). x ref = speed / sentence-transformers in the same round (median over rounds).", "",
        *table(report), "", "In words:", *findings(report), end])


def rounds_block(report: dict) -> str:
    hw = report["hardware"]
    lines = [ROUNDS_MARKERS[0],
             f"Run {report['started_utc']} UTC, `{report['command']}`: {hw['cpu']}, {hw['threads']} threads, "
             f"{report['rounds']} rounds, load average before {report['load_average_before'][0]}, "
             f"after {report['load_average_after'][0]}. Ratio = variant / `st-fp32` in the same round "
             f"(sentences/s over the STS-B test sentences, {report['repeats']} passes each).", "",
             "| variant | median ratio | min – max | per round |", "|---|---|---|---|"]
    for name, row in report["summary"].items():
        lines.append(f"| {name} | {row['median']:.2f}x | {row['min']:.2f} – {row['max']:.2f} | "
                     f"{', '.join(f'{x:.2f}' for x in row['ratios'])} |")
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
