"""Renders a speed run as markdown between markers in docs/performance.md (the rest of the file is kept).

    .venv/bin/python benchmarks/speed/report.py benchmarks/speed/results/speed-STAMP.json [--block NAME]
re-renders a saved run; each block NAME ("main" is what run.py writes) has its own pair of markers.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

HEADING = "## Offline inference speed"


def markers(block: str) -> tuple[str, str]:
    name = "speed-table" if block == "main" else f"speed-table-{block}"
    return f"<!-- {name}:begin -->", f"<!-- {name}:end -->"


def _speed(result: dict, name: str) -> str:
    row = result.get("sets", {}).get(name)
    return f"{row['sentences_per_s']:,.0f} ({row['ratio_to_reference']:.2f}x)" if row else "-"


def _agreement(result: dict) -> str:
    """"topic 99.3%, ner 99.9% of words (98.0% of sentences)": token tasks per word, whole sentences after."""
    agreement = result.get("task_agreement_with_torch")
    if not agreement:
        return "-"
    parts = []
    for task, value in agreement.items():
        if task.endswith("/sentences"):
            continue
        whole = agreement.get(f"{task}/sentences")
        parts.append(f"{task} {100 * value:.1f}%" if whole is None
                     else f"{task} {100 * value:.1f}% of words ({100 * whole:.1f}% of sentences)")
    return ", ".join(parts)


def table(report: dict) -> list[str]:
    lines = [
        "| variant | STS-B sent/s (x ref) | short sent/s (x ref) | long sent/s (x ref) | batch-1 p50 / p95 ms "
        "| peak RSS MB | STS-B Spearman | cos to ref mean / min | batch make-up max abs(1-cos) "
        "| tasks = torch | % fp32 peak (STS-B) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, result in report["results"].items():
        if "error" in result:
            lines.append(f"| {name} | failed: {result['error'].replace('|', '/')} |" + " |" * 10)
            continue
        cos = result.get("cosine_to_reference")
        makeup = result.get("batch_makeup_max_1_minus_cos")
        runtime = result.get("openvino_runtime_precision")
        label = f"{name} ({runtime})" if runtime else name
        lines.append(" | ".join([
            f"| {label}", _speed(result, "stsb"), _speed(result, "short"), _speed(result, "long"),
            f"{result['latency_ms']['p50']:.1f} / {result['latency_ms']['p95']:.1f}",
            f"{result['peak_rss_mb']:,.0f}",
            f"{result['stsb_spearman']:.2f}" if "stsb_spearman" in result else "-",
            f"{cos['mean']:.5f} / {cos['min']:.5f}" if cos else "-",
            f"{makeup:.1e}" if makeup is not None else "-",
            _agreement(result),
            f"{100 * result['sets']['stsb']['fraction_of_fp32_peak']:.0f}%",
        ]) + " |")
    return lines


def targets(report: dict) -> list[str]:
    results = {name: r for name, r in report["results"].items() if "error" not in r}
    ref_spearman = results.get("st-fp32", {}).get("stsb_spearman")

    def ratio(name: str) -> float:
        return results[name]["sets"]["stsb"]["ratio_to_reference"] if name in results else 0.0

    lines = []
    if "torch-fp32" in results:
        cos_min = results["torch-fp32"]["cosine_to_reference"]["min"]
        ok = ratio("torch-fp32") >= 1.4 and cos_min >= 0.9999
        lines.append(f"- mtst torch fp32 >= 1.4x, cos >= 0.9999: {ratio('torch-fp32'):.2f}x, min cos {cos_min:.6f}"
                     f" -> {'met' if ok else 'MISSED'}")
    lossless = [n for n in ("onnx-fp32", "openvino-fp32") if n in results
                and ref_spearman is not None and abs(results[n]["stsb_spearman"] - ref_spearman) <= 0.05]
    if lossless:
        best = max(lossless, key=ratio)
        lines.append(f"- best lossless export >= 5x with STS-B unchanged (within 0.05): {best} {ratio(best):.2f}x, "
                     f"Spearman {results[best]['stsb_spearman']:.2f} -> {'met' if ratio(best) >= 5 else 'MISSED'}")
    int8 = [n for n in ("onnx-int8", "openvino-int8") if n in results]
    if int8:
        best = max(int8, key=ratio)
        ok = ratio(best) >= 7 and results[best]["stsb_spearman"] >= 82.0
        lines.append(f"- best int8 >= 7x with STS-B >= 82.0: {best} {ratio(best):.2f}x, Spearman "
                     f"{results[best]['stsb_spearman']:.2f} -> {'met' if ok else 'MISSED'}")
    for name in int8:
        agreement = results[name].get("task_agreement_with_torch")
        if agreement:
            shown = {task: value for task, value in agreement.items() if not task.endswith("/sentences")}
            worst = min(shown, key=shown.get)
            lines.append(f"- int8 same label as torch >= 98% (token tasks per word): {name} lowest {worst} "
                         f"{100 * shown[worst]:.1f}% -> {'met' if shown[worst] >= 0.98 else 'MISSED'}")
    for name in ("torch-predict", "onnx-predict"):
        same = results.get(name, {}).get("predict_vs_encode_same_process")
        cost = same["ratio"] if same else results.get(name, {}).get("cost_vs_embeddings_only")
        if cost is not None:
            how = "alternating in one process, fastest of each" if same else "across processes"
            lines.append(f"- all heads <= 1.15x embeddings alone ({name}, {how}): {cost:.2f}x -> "
                         f"{'met' if cost <= 1.15 else 'MISSED'}")
    separate = results.get("separate-models", {}).get("cost_vs_mtst_predict")
    if separate is not None:
        lines.append(f"- separate models (embedding model + one per task) cost {separate:.2f}x mtst predict")
    return lines


def section(report: dict, results_file: Path, block: str = "main") -> str:
    hw = report["hardware"]
    versions = ", ".join(f"{name} {v}" for name, v in hw["versions"].items())
    stsb = report["results"].get("st-fp32", {}).get("sets", {}).get("stsb", {}).get("sentences", "?")
    begin, end = markers(block)
    body = [
        begin,
        f"Run {report['started_utc']} UTC, {report['duration_s']:.0f} s, command: "
        f"`.venv/bin/python {report['command'].strip()}` (raw numbers: `{results_file}`).",
        "",
        f"Hardware: {hw['cpu']}, {hw['cores_available']} cores available, {hw['threads']} thread(s) for every "
        f"variant; Python {hw['python']}; {versions}. Throughput is the fastest of {report.get('repeats', 1)} "
        "pass(es) over STS-B (one pass over short / long / separate models).",
        f"Load average before / after: {report['load_average_before']} / {report['load_average_after']}"
        " (other jobs shared the machine whenever it is above the thread count).",
        f"Model: {report['model_kind']}. Sentences: {stsb} unique STS-B test sentences "
        f"(Spearman over the {report.get('stsb_pairs', '?')} test pairs they make up); short = those with "
        "<= 10 tokens; long = the first 200 AG News test texts (title. description). "
        "x ref = speed / sentence-transformers (mean of its two runs).",
        "",
        *table(report),
        "",
        "Targets:",
        *targets(report),
        end,
    ]
    return "\n".join(body)


def write_docs(report: dict, path: Path, results_file: Path, block: str = "main") -> None:
    """Replace the block's generated text (or add it at the end of the speed section, or create the file)."""
    begin, end = markers(block)
    replace_block(path, section(report, results_file, block), begin, end, HEADING)


def replace_block(path: Path, text: str, begin: str, end: str, heading: str) -> None:
    """Put ``text`` (which starts with ``begin`` and ends with ``end``) where those markers are in ``path``, else
    right under ``heading``, else at the end under a new ``heading``; written atomically."""
    doc = path.read_text(encoding="utf-8") if path.exists() else "# Performance\n"
    if begin in doc and end in doc:
        head, rest = doc.split(begin, 1)
        doc = head + text + rest.split(end, 1)[1]
    elif heading in doc:
        doc = doc.replace(heading, f"{heading}\n\n{text}", 1)
    else:
        doc = doc.rstrip("\n") + f"\n\n{heading}\n\n{text}\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(path.name + ".tmp")
    temp.write_text(doc, encoding="utf-8")
    temp.replace(path)


def main() -> None:
    parser = argparse.ArgumentParser(description="Re-render a saved speed run into docs/performance.md")
    parser.add_argument("results", type=Path)
    parser.add_argument("--block", default="main")
    parser.add_argument("--docs", type=Path, default=Path(__file__).resolve().parents[2] / "docs" / "performance.md")
    args = parser.parse_args()
    root = Path(__file__).resolve().parents[2]
    results = args.results.resolve()
    shown = results.relative_to(root) if results.is_relative_to(root) else results
    write_docs(json.loads(results.read_text()), args.docs, shown, args.block)


if __name__ == "__main__":
    main()
