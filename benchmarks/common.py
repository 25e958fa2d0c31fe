"""What every harness shares: paths, the real data (``$MTST_DATA_DIR``, default ``../shared/data`` beside the
checkout; never copied into the repository) read by mtst's own readers, timing (median of alternating rounds),
memory and CPU time, result files written atomically (mtst.files), and the generated blocks of docs/."""

from __future__ import annotations

import json
import os
import platform
import time
from importlib.metadata import distributions
from pathlib import Path

from mtst.data.pairs import read_pairs
from mtst.data.sources import DATA_DIR_VARIABLE, DEFAULT_DATA_DIR, DataSource
from mtst.files import write_text
from mtst.model.cpu_paths import cpu_facts
from mtst.model.timing import alternating_rounds, seconds  # noqa: F401 (the harnesses import them from here)

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get(DATA_DIR_VARIABLE) or REPO / DEFAULT_DATA_DIR).resolve()
PACKAGES = ("torch", "onnxruntime", "openvino", "nncf", "sentence-transformers", "transformers")


# ---- data ---------------------------------------------------------------------------------
def source(path: str, format: str, **fields) -> DataSource:
    """A file under the data directory, described as a training config describes it."""
    return DataSource(path=DATA / path, format=format, **fields)


def stsb(split: str = "test", **fields) -> DataSource:
    """STS-B: tab-separated, no header; gold score in column 4, the two sentences in 5 and 6."""
    return source(f"stsb/sts-{split}.csv", "tsv", header=False, text_column=5, text_pair_column=6, label_column=4,
                  **fields)


def stsb_sentences(split: str = "test") -> list[str]:
    """The unique sentences of an STS-B split in file order (first, second, first, second, ...)."""
    first, second, _, _ = read_pairs(stsb(split))
    return list(dict.fromkeys(text for pair in zip(first, second, strict=True) for text in pair))


# ---- timing, memory, CPU ------------------------------------------------------------------
# seconds / alternating_rounds (median of alternating rounds) live in the package: `mtst bench` times the same way


def peak_rss_mb() -> float:
    """This process's own peak resident memory (VmHWM; getrusage's ru_maxrss carries the parent's peak over exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)  # kB -> MB
    return float("nan")


def cpu_seconds(pid: int | None = None, thread: bool = False) -> float:
    """User + system CPU time of a process so far (``thread``: its main thread only), from Linux /proc."""
    pid = pid or os.getpid()
    stat = Path(f"/proc/{pid}/task/{pid}/stat" if thread else f"/proc/{pid}/stat")
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# ---- what a result records about its run -------------------------------------------------
def hardware(threads: int | None = None) -> dict:
    cpu = cpu_facts()["model"]
    installed = {dist.metadata["Name"].lower(): dist.version for dist in distributions()}
    return {"cpu": cpu, "logical_cores": os.cpu_count(), "cores_available": len(os.sched_getaffinity(0)),
            "threads": threads, "python": platform.python_version(),
            "versions": {name: installed[name] for name in PACKAGES if name in installed}}


def run_metadata(command: str, started: float, load_before: tuple[float, ...], threads: int | None) -> dict:
    """Command, start (UTC), duration, load average before / after and hardware: what every result file says."""
    return {"command": command, "started_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(started)),
            "duration_s": round(time.time() - started, 1),
            "load_average_before": [round(x, 2) for x in load_before],
            "load_average_after": [round(x, 2) for x in os.getloadavg()], "hardware": hardware(threads)}


# ---- result files and docs ----------------------------------------------------------------
def write_result(path: Path, payload: dict) -> None:
    """Pretty JSON, written atomically: an interrupted run never leaves half a result behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path, json.dumps(payload, indent=2) + "\n")


def replace_block(path: Path, text: str, begin: str, end: str, heading: str) -> None:
    """Put ``text`` (from ``begin`` to ``end``) where those markers are in the markdown file ``path``, else right
    under ``heading``, else at the end under a new ``heading``; the rest of the file is kept."""
    doc = path.read_text(encoding="utf-8") if path.exists() else "# Performance\n"
    if begin in doc and end in doc:
        head, rest = doc.split(begin, 1)
        doc = head + text + rest.split(end, 1)[1]
    elif heading in doc:
        doc = doc.replace(heading, f"{heading}\n\n{text}", 1)
    else:
        doc = doc.rstrip("\n") + f"\n\n{heading}\n\n{text}\n"
    write_text(path, doc)
