"""``mtst encode --input FILE --output OUT.npy`` with 1 vs N processes: wall time and CPU time (workers included).

    .venv/bin/python benchmarks/encode/bulk.py [--lines 20000] [--processes 1,2] [--rounds 2] [-- EXTRA mtst args]

The input is the unique STS-B test sentences (needs ../shared/data) repeated up to ``--lines`` lines,
written to a temp folder. Each run is a fresh ``mtst encode`` process (model loading and worker start-up
included, as a user sees it); runs alternate between process counts, the fastest round counts. CPU time is
user + sys of the command and every process it waited for. Also checks that every array equals the first.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "speed"))

from prepare import stsb_test  # noqa: E402

MTST = Path(sys.executable).with_name("mtst")


def timed(command: list[str]) -> tuple[float, float]:
    """(wall s, CPU s of the command and its children)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - usage.ru_utime) + (after.ru_stime - usage.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=20_000)
    parser.add_argument("--processes", default="1,2")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("extra", nargs="*", help="more mtst encode arguments, e.g. --model DIR")
    args = parser.parse_args()
    counts = [int(n) for n in args.processes.split(",")]
    sentences = stsb_test()[0]
    lines = (sentences * (args.lines // len(sentences) + 1))[: args.lines]
    results: dict[int, list[tuple[float, float]]] = {n: [] for n in counts}
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as work:
        source = Path(work) / "lines.txt"
        source.write_text("\n".join(lines) + "\n", encoding="utf-8")
        arrays = {}
        for _ in range(args.rounds):
            for n in counts:
                out = Path(work) / f"out{n}.npy"
                out.unlink(missing_ok=True)
                command = [str(MTST), "encode", "--input", str(source), "--output", str(out),
                           "--num-processes", str(n), *args.extra]
                results[n].append(timed(command))
                arrays[n] = np.load(out)
        first = arrays[counts[0]]
        max_diff = {n: float(np.abs(array - first).max()) for n, array in arrays.items()}
    summary = {}
    for n, runs in results.items():
        wall, cpu = min(w for w, _ in runs), min(c for _, c in runs)
        summary[n] = {"wall_s": wall, "cpu_s": cpu, "lines_per_s": args.lines / wall,
                      "cpu_ms_per_line": 1000 * cpu / args.lines, "max_abs_diff_to_first": max_diff[n]}
        print(f"--num-processes {n}: {wall:6.1f} s wall ({args.lines / wall:5.0f} lines/s), CPU {cpu:6.1f} s "
              f"({1000 * cpu / args.lines:.2f} ms/line), max |diff| to {counts[0]} process(es) {max_diff[n]:.1e}")
    print(json.dumps({"lines": args.lines, "rounds": args.rounds, "extra": args.extra, "cores": os.cpu_count(),
                      "load_before": load_before, "load_after": os.getloadavg(), "results": summary}))


if __name__ == "__main__":
    main()
