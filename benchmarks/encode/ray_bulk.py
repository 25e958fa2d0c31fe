"""Bulk encoding of one text file: one process, ``--num-processes 2``, and Ray (``--engine ray --address local``,
2 actors x 1 thread and 1 actor x 2 threads): throughput, peak memory, and what a worker killed half-way costs.

    .venv/bin/python benchmarks/encode/ray_bulk.py [--sentences 1000000] [--modes single,processes,ray,ray-1x2]
                                                   [--no-kill] [--no-docs] [-- EXTRA mtst encode args, e.g. --model DIR]
    .venv/bin/python benchmarks/encode/ray_bulk.py --render benchmarks/encode/results/ray_bulk-N.json  # docs only

The input is every unique STS-B sentence (train, dev, test; needs ../shared/data) repeated in a seeded shuffled
order up to ``--sentences`` lines. Each run is a fresh ``mtst encode`` process, as a user runs it (model loading,
worker or Ray start-up included). Peak memory is the largest sum over the command's whole process tree (Ray's
raylet, GCS and actors included), sampled every 0.25 s, of RSS (shared pages count once per process: Ray's
shared-memory object store is counted by every process that maps it, so this can exceed the machine's RAM) and of
PSS (each shared page split between the processes that map it: the tree's real share of RAM). Kill runs SIGKILL
one worker when half the clean run's time has passed: for Ray a busy actor (Ray restarts it and retries its task:
one run), for the local modes a worker or the process itself (the run stops; rerunning the same command resumes
from its manifest: two runs, both timed). Every output must equal the single-process array exactly (all three
encode the same 4096-line chunks), which also shows no row was lost or duplicated. Writes
benchmarks/encode/results/ray_bulk-N.json and its table in docs/ray.md (between the markers for N sentences; a new
size gets its block after the last one).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data" / "stsb"
MTST = Path(sys.executable).with_name("mtst")
MODES = {"single": ["--threads", "2"], "processes": ["--num-processes", "2", "--threads", "2"],
         "ray": ["--engine", "ray", "--address", "local", "--actors", "2", "--threads", "1"],
         "ray-1x2": ["--engine", "ray", "--address", "local", "--actors", "1", "--threads", "2"]}


def sentences(count: int, seed: int = 0) -> list[str]:
    unique: dict[str, None] = {}
    for split in ("train", "dev", "test"):
        with (DATA / f"sts-{split}.csv").open(encoding="utf-8") as handle:
            for row in csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE):
                unique.update(dict.fromkeys(text.replace("\n", " ") for text in row[5:7]))
    pool = list(unique)
    rng = random.Random(seed)
    return [pool[rng.randrange(len(pool))] for _ in range(count)]


def markers(sentences: int) -> tuple[str, str]:
    return f"<!-- ray-bulk-{sentences}:begin -->", f"<!-- ray-bulk-{sentences}:end -->"


class PeakMemory(threading.Thread):
    """Largest RSS and PSS sums over a process and all its descendants, sampled until stopped."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.root, self.peak, self.peak_pss, self.done = psutil.Process(pid), 0, 0, threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            try:
                tree = [self.root, *self.root.children(recursive=True)]
            except psutil.Error:
                return
            rss = pss = 0
            for process in tree:
                try:
                    info = process.memory_full_info()
                except psutil.Error:
                    continue
                rss, pss = rss + info.rss, pss + info.pss
            self.peak, self.peak_pss = max(self.peak, rss), max(self.peak_pss, pss)
            time.sleep(0.25)


def victim(mode: str, pid: int) -> int | None:
    """The process to kill: a Ray actor running a task, a local worker process, or the single process itself."""
    if mode == "single":
        return pid
    for process in psutil.Process(pid).children(recursive=True):
        try:
            title = " ".join(process.cmdline()).strip()  # Ray's process titles come padded with empty arguments
        except psutil.Error:
            continue
        if mode.startswith("ray") and title.startswith("ray::MapWorker(") and title.endswith(".submit"):
            return process.pid
        if mode == "processes" and "spawn_main" in title:
            return process.pid
    return None


def run(command: list[str], kill_after: float | None, mode: str) -> dict:
    """One command: wall time, peak memory, exit code, and the pid killed (if asked to kill)."""
    start = time.perf_counter()
    log = tempfile.TemporaryFile(mode="w+")  # not a pipe: a full pipe would stall the command
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log, text=True)
    memory = PeakMemory(process.pid)
    memory.start()
    killed = None
    while process.poll() is None:
        if kill_after is not None and killed is None and time.perf_counter() - start > kill_after:
            killed = victim(mode, process.pid)
            if killed is not None:
                os.kill(killed, signal.SIGKILL)
        time.sleep(0.01)
    memory.done.set()
    memory.join()
    log.seek(0)
    stderr = log.read()
    log.close()
    return {"wall_s": time.perf_counter() - start, "peak_rss_mib": memory.peak / 2**20,
            "peak_pss_mib": memory.peak_pss / 2**20, "rc": process.returncode,
            "killed_pid": killed, "stderr_tail": stderr.strip().splitlines()[-1:] if stderr.strip() else []}


def measure(mode: str, source: Path, work: Path, extra: list[str], rows: int, kill_after: float | None) -> dict:
    out = work / f"{mode}{'-killed' if kill_after else ''}.npy"
    command = [str(MTST), "encode", "--input", str(source), "--output", str(out), *MODES[mode], *extra]
    first = run(command, kill_after, mode)
    result = {"mode": mode, "command": " ".join(command[1:]), "kill": kill_after is not None, **first}
    if first["killed_pid"] is not None and not mode.startswith("ray"):  # it stopped; the same command resumes it
        again = run(command, None, mode)
        result.update(resumed_wall_s=again["wall_s"], rc=again["rc"], wall_s=first["wall_s"] + again["wall_s"],
                      peak_rss_mib=max(first["peak_rss_mib"], again["peak_rss_mib"]),
                      peak_pss_mib=max(first["peak_pss_mib"], again["peak_pss_mib"]))
    if result["rc"] == 0:
        result["sentences_per_s"] = rows / result["wall_s"]
    result["output"] = str(out)
    return result


def markdown(report: dict) -> str:
    smoke = report["sentences"] < 100_000
    begin, end = markers(report["sentences"])
    lines = [begin, "",
             f"{report['sentences']:,} STS-B sentences, {report['model']}, {report['cores']} cores, load average "
             f"{report['load_before'][0]:.1f} before / {report['load_after'][0]:.1f} after, {report['date']} "
             f"(`benchmarks/encode/ray_bulk.py`, JSON in `{report['json']}`)."]
    if smoke:
        lines.append("**Smoke run** (under 100,000 sentences): these numbers show the script works, not the speed.")
    lines += ["", "| mode | worker killed half-way | wall s | sentences/s | peak RSS MiB (tree) | peak PSS MiB (tree) "
              "| output |", "|---|---|---|---|---|---|---|"]
    for row in report["runs"]:
        if not row["kill"]:
            kill = "no"
        elif row["killed_pid"] is None:
            kill = "asked, but the run ended before a busy worker was found"
        elif row["mode"].startswith("ray"):
            kill = "yes: Ray retried its task"
        else:
            kill = f"yes: the rerun resumed it ({row['resumed_wall_s']:.1f} s of the total)"
        speed = f"{row['sentences_per_s']:,.0f}" if "sentences_per_s" in row else f"failed (rc {row['rc']})"
        pss = f"{row['peak_pss_mib']:,.0f}" if "peak_pss_mib" in row else "not measured"
        lines.append(f"| {row['mode']} | {kill} | {row['wall_s']:.1f} | {speed} | {row['peak_rss_mib']:,.0f} | {pss} "
                     f"| {row['equal_to_single']} |")
    return "\n".join([*lines, "", end])


def write(report: dict, docs: bool) -> None:
    """The JSON and the docs table as they stand: written after every run, so a stopped benchmark keeps its rows."""
    report["load_after"] = os.getloadavg()
    replace_text(ROOT / report["json"], json.dumps(report, indent=2) + "\n")
    if docs:
        write_docs(report)


def write_docs(report: dict) -> None:
    doc = ROOT / "docs" / "ray.md"
    text = doc.read_text(encoding="utf-8")
    begin, end = markers(report["sentences"])
    if begin in text:
        head, rest = text.split(begin, 1)
        tail = rest.split(end, 1)[1]
    else:  # a size not in the docs yet: after the last block
        cut = text.rindex(":end -->") + len(":end -->") if ":end -->" in text else len(text)
        head, tail = text[:cut] + "\n\n", text[cut:]
    replace_text(doc, head + markdown(report) + tail)


def replace_text(path: Path, text: str) -> None:
    """Temp file, then rename: a stopped run never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(path.name + ".tmp")
    temp.write_text(text, encoding="utf-8")
    temp.replace(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sentences", type=int, default=1_000_000)
    parser.add_argument("--modes", default=",".join(MODES), help="in this order; single (the reference) runs first")
    parser.add_argument("--kill-modes", default=None, help="modes that also get a killed-worker run (default: all)")
    parser.add_argument("--no-kill", action="store_true", help="skip the killed-worker runs")
    parser.add_argument("--no-docs", action="store_true", help="do not write the table into docs/ray.md")
    parser.add_argument("--render", type=Path, help="only rewrite the docs table from this saved JSON")
    parser.add_argument("extra", nargs="*", help="more mtst encode arguments, e.g. --model DIR")
    args = parser.parse_args()
    if args.render:
        write_docs(json.loads(args.render.read_text(encoding="utf-8")))
        return
    modes = ["single", *(mode for mode in args.modes.split(",") if mode != "single")]
    kill_modes = set() if args.no_kill else set(args.kill_modes.split(",") if args.kill_modes else modes)
    report = {"sentences": args.sentences, "model": "--model " + args.extra[args.extra.index("--model") + 1]
              if "--model" in args.extra else "all-MiniLM-L6-v2 (default backbone)", "cores": os.cpu_count(),
              "python": platform.python_version(), "date": time.strftime("%Y-%m-%d"), "load_before": os.getloadavg(),
              "json": f"benchmarks/encode/results/ray_bulk-{args.sentences}.json", "runs": []}
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        source = work / "sentences.txt"
        source.write_text("\n".join(sentences(args.sentences)) + "\n", encoding="utf-8")
        reference = None
        for mode, kill in [(mode, kill) for mode in modes for kill in (False, True) if not kill or mode in kill_modes]:
            if kill and report["runs"][-1]["rc"] != 0:
                continue
            row = measure(mode, source, work, args.extra, args.sentences,
                          report["runs"][-1]["wall_s"] / 2 if kill else None)
            path = Path(row.pop("output"))
            if reference is None and mode == "single" and not kill and path.exists():
                reference = np.load(path)
            same = reference is not None and path.exists() and np.array_equal(np.load(path), reference)
            row["equal_to_single"] = "identical" if same else ("differs" if path.exists() else "missing")
            if path != work / "single.npy":
                path.unlink(missing_ok=True)  # 1.5 GB per million rows
            report["runs"].append(row)
            print(json.dumps(row), flush=True)
            write(report, not args.no_docs)
    print(markdown(report))


if __name__ == "__main__":
    main()
