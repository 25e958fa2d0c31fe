"""Speed ratios that survive run-to-run noise: the reference and each variant alternate for several rounds.

    .venv/bin/python benchmarks/speed/rounds.py --rounds 5 --variants openvino-fp32,onnx-fp32 --threads 2

One round runs sentence-transformers (``st-fp32``) and then every variant, each in its own process
(``variants.py``, fastest of ``--repeats`` passes over the STS-B test sentences). A variant's ratio in a
round is its speed over the reference's speed *in the same round*, so slow drift of the machine (another
job starting, thermal state) cancels; the verdict uses the median over rounds and shows the spread.
Writes benchmarks/speed/results/rounds-<stamp>.json and the "rounds" block of docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))

from prepare import prepare  # noqa: E402
from report import replace_block  # noqa: E402
from run import run_metadata, run_variant  # noqa: E402

REFERENCE = "st-fp32"
TARGETS = {"openvino-fp32": 5.0, "onnx-fp32": 5.0, "torch-fp32": 1.4, "openvino-int8": 7.0, "onnx-int8": 7.0}
BEGIN, END = "<!-- speed-rounds:begin -->", "<!-- speed-rounds:end -->"
HEADING = "## Speed ratios over alternating rounds"


def summarise(rounds: list[dict[str, float]], variants: list[str]) -> dict[str, dict]:
    """Per variant: the per-round ratios to the reference, their median, min and max."""
    out = {}
    for name in variants:
        ratios = [r[name] / r[REFERENCE] for r in rounds if name in r and REFERENCE in r]
        if ratios:
            out[name] = {"ratios": [round(x, 3) for x in ratios], "median": round(statistics.median(ratios), 2),
                         "min": round(min(ratios), 2), "max": round(max(ratios), 2)}
    return out


def markdown(report: dict) -> str:
    hw = report["hardware"]
    lines = [
        BEGIN,
        f"Run {report['started_utc']} UTC, `{report['command']}`: {hw['cpu']}, {hw['threads']} threads, "
        f"{report['rounds']} rounds, load average before {report['load_average_before'][0]}, "
        f"after {report['load_average_after'][0]}. Ratio = variant / `{REFERENCE}` in the same round "
        f"(sentences/s over the STS-B test sentences, fastest of {report['repeats']} passes each).",
        "",
        "| variant | median ratio | min – max | per round | target | verdict (median) |",
        "|---|---|---|---|---|---|",
    ]
    for name, row in report["summary"].items():
        target = TARGETS.get(name)
        verdict = "-" if target is None else ("met" if row["median"] >= target else "MISSED")
        lines.append(f"| {name} | {row['median']:.2f}x | {row['min']:.2f} – {row['max']:.2f} | "
                     f"{', '.join(f'{x:.2f}' for x in row['ratios'])} | {f'{target:g}x' if target else '-'} "
                     f"| {verdict} |")
    speeds = ", ".join(f"{s:,.0f}" for s in report["reference_speeds"])
    lines += ["", f"`{REFERENCE}` per round: {speeds} sentences/s.", END]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/mtst-bench-speed"))
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3, help="timed passes per variant and round; fastest counts")
    parser.add_argument("--variants", default="openvino-fp32,onnx-fp32,openvino-int8")
    parser.add_argument("--reuse", action="store_true", help="reuse the model and exports already in --work")
    parser.add_argument("--no-docs", action="store_true", help="do not rewrite docs/performance.md")
    args = parser.parse_args()
    if args.rounds < 1:
        raise SystemExit(f"error: --rounds must be at least 1, got {args.rounds}")
    variants = [name for name in args.variants.split(",") if name and name != REFERENCE]
    started, load_before = time.time(), os.getloadavg()
    prepare(args.work, None, args.reuse)
    rounds: list[dict[str, float]] = []
    for k in range(args.rounds):
        print(f"round {k + 1} of {args.rounds}", flush=True)
        speeds = {}
        for name in [REFERENCE, *variants]:
            result = run_variant(name, args.work, args.threads, args.repeats)
            if "sets" in result:
                speeds[name] = result["sets"]["stsb"]["sentences_per_s"]
        rounds.append(speeds)
    report = {
        **run_metadata("rounds.py", started, load_before, args.threads), "rounds": args.rounds, "repeats": args.repeats,
        "speeds": rounds, "reference_speeds": [r.get(REFERENCE, 0.0) for r in rounds],
        "summary": summarise(rounds, variants),
    }
    out = HERE / "results" / f"rounds-{time.strftime('%Y%m%d-%H%M', time.gmtime(started))}.json"
    out.write_text(json.dumps(report, indent=1) + "\n")
    print(markdown(report))
    print(f"wrote {out.relative_to(ROOT)}", flush=True)
    if not args.no_docs:
        replace_block(ROOT / "docs" / "performance.md", markdown(report), BEGIN, END, HEADING)


if __name__ == "__main__":
    main()
