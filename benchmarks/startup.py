"""Start-up time: how long ``mtst --help``, ``mtst encode --help`` and ``import mtst`` take, as fresh processes.

    .venv/bin/python -m benchmarks.startup                         # median of 10 runs of each
    .venv/bin/python -m benchmarks.startup --runs 20 --src /tmp/before-wt/src   # another checkout's code

Each case is a new interpreter (``python -m mtst.cli`` is what the ``mtst`` script runs), started in turn, round
after round, so a busy machine slows every case alike; the median drops the rounds it hit hardest. ``--src``
puts a directory first on PYTHONPATH, so an older checkout (``git worktree add``) runs on the same venv.
A benchmark, not a test: nothing here asserts a time. Numbers: docs/performance.md, "Start-up time".
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

from benchmarks.common import alternating_rounds

CASES = {
    "mtst --help": ["-m", "mtst.cli", "--help"],
    "mtst encode --help": ["-m", "mtst.cli", "encode", "--help"],
    "import mtst": ["-c", "import mtst"],
    "import mtst; mtst.MultiTaskModel": ["-c", "import mtst; mtst.MultiTaskModel"],
}


def measure(python: str, runs: int, src: str | None) -> dict[str, float]:
    """Median wall seconds per case over ``runs`` alternating rounds (one untimed warm-up round first)."""
    env = dict(os.environ)
    if src:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [src, env.get("PYTHONPATH")]))
    calls = {name: lambda args=args: subprocess.run([python, *args], env=env, check=True,
                                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for name, args in CASES.items()}
    for call in calls.values():  # warms the file cache
        call()
    return alternating_rounds(calls, runs)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="timed rounds (median reported)")
    parser.add_argument("--python", default=sys.executable, help="interpreter to run (default: this one)")
    parser.add_argument("--src", default=None, help="directory put first on PYTHONPATH (another checkout's src/)")
    args = parser.parse_args(argv)
    medians = measure(args.python, args.runs, args.src)
    print(f"| case | median of {args.runs} (s) |")
    print("|---|---:|")
    for name, value in medians.items():
        print(f"| `{name}` | {value:.2f} |")


if __name__ == "__main__":
    main()
