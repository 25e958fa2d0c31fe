"""Which torch path runs CPU inference fastest on *this* CPU: chosen by measurement, kept per machine.

What is fastest depends on the CPU: oneDNN's fp32 linear path won ~2x on AMD Zen5 and is level with torch's on an
Intel Xeon with AMX, where bf16 (run natively by AMX) won ~2x instead and passes cut by a token budget another 1.4x.
So a short probe (mtst.model.cpu_probe: on demand, ``MultiTaskModel.choose_cpu_path()`` or ``mtst bench --probe``,
and a quick one on a model's first load here) times the candidates (kernels x precision, then batchings) and keeps
the fastest that passes the parity gate against fp32 torch; the choice is cached per CPU model, CPU flags, library
versions and model architecture in the user cache dir, and ``precision="auto"`` (the default of
``MultiTaskModel.load`` / ``from_backbone``) applies it, its batching included when the caller gives no batch size.

    precision "fp32"  torch fp32, kernels from MTST_ONEDNN (as before)
              "bf16"  bf16 autocast at CPU inference (warns where the CPU has no native bf16: emulated, slow)
              "auto"  the cached choice for this CPU and model, else "fp32"
    MTST_ONEDNN=1/0   set: overrides the kernels of any choice
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import time
from dataclasses import asdict, dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np

from mtst.errors import MtstError
from mtst.files import write_text
from mtst.model.config import ModelConfig

logger = logging.getLogger("mtst")

PRECISIONS = ("auto", "fp32", "bf16")
CACHE_VARIABLE = "MTST_CACHE_DIR"  # where the choices are cached (tests point it at a temp dir)
CACHE_FILE = "cpu_paths.json"
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
SPEED_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_fp16", "amx_tile", "amx_int8",
               *NATIVE_BF16_FLAGS)  # the /proc/cpuinfo flags that change which path wins
VERSIONED = ("mtst", "torch", "transformers")
MEASURED = ("measured", "cached")  # a model's cpu_path_source when its path (and batching) was measured here
DEFAULT_BATCH_SIZE = 32  # rows per pass where nothing was measured (sentence-transformers' default)
PROBE_VERSION = 2  # what the probe measures; a new one measures again (2: oneDNN bf16, token budgets, used by default)


@dataclass(frozen=True)
class Gate:
    """"Lossless" against fp32 torch on the calibration sentences."""

    mean_cosine: float = 0.9999
    min_cosine: float = 0.999
    agreement: float = 0.995  # the same predicted label on this share of rows, and of words


GATE = Gate()


@dataclass(frozen=True)
class CpuPath:
    """How a model runs CPU inference: linear kernels, precision, and the batching that measured fastest (what
    ``encode`` / ``predict`` use when the caller gives no ``batch_size``, once measured or cached)."""

    kernels: str = "torch"  # "torch" (nn.Linear) | "onednn" (mtst.model.onednn)
    precision: str = "fp32"  # "fp32" | "bf16" (autocast)
    encode_batch_size: int = 64
    predict_batch_size: int = 32
    encode_max_tokens: int | None = None  # padded tokens per pass (None: the batch size alone cuts passes)
    predict_max_tokens: int | None = None

    @property
    def name(self) -> str:
        return f"{self.kernels}-{self.precision}"

    def batching(self, call: str) -> Batching:
        """(rows, padded-token budget) per pass for "encode" | "predict"."""
        return (self.encode_batch_size, self.encode_max_tokens) if call == "encode" else (
            self.predict_batch_size, self.predict_max_tokens)


Batching = tuple[int, int | None]  # rows per pass, and padded tokens per pass (None: rows alone cut passes)
# What the probe times for the winning kernels: fixed row counts, and larger passes cut by a token budget (short
# sentences in big passes read the weights once per ~2,000 tokens; long ones in small passes pad little).
# Measured on an AMX Xeon (torch bf16, 2026-12-06): 64 rows 1,400 sentences/s, 256 rows / 2,048 tokens 1,745.
BATCHINGS: tuple[Batching, ...] = ((32, None), (64, None), (128, None), (256, 1024), (256, 2048), (512, 4096))
QUICK_BATCHINGS: tuple[Batching, ...] = ((64, None), (256, 2048))


def as_batching(size: int | Batching) -> Batching:
    """A batch size alone (the export probe's) or (rows, token budget)."""
    return size if isinstance(size, tuple) else (size, None)


def batching_label(size: int | Batching) -> str:
    """"64" (rows) or "256/2048t" (rows / padded tokens per pass): how timings and ``mtst info`` name it."""
    rows, tokens = as_batching(size)
    return str(rows) if tokens is None else f"{rows}/{tokens}t"


# ---- the machine --------------------------------------------------------------------------
def cpu_facts(cpuinfo: Path = Path("/proc/cpuinfo")) -> dict:
    """{"model": the CPU's model name, "flags": the speed-relevant flags it has} from /proc/cpuinfo (Linux)."""
    name, flags = platform.processor() or platform.machine(), set()
    try:
        lines = cpuinfo.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        lines = []
    for line in lines:
        key, _, value = line.partition(":")
        if key.strip() == "model name" and value.strip():
            name = value.strip()
        elif key.strip() == "flags":
            flags = set(value.split())
    return {"model": name, "flags": [flag for flag in SPEED_FLAGS if flag in flags]}


def cpu_has_native_bf16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool | None:
    """Whether the CPU flags list native bf16; None where the flags cannot be read (not Linux)."""
    return native_bf16(cpu_facts(cpuinfo)["flags"]) if cpuinfo.is_file() else None


def native_bf16(flags: list[str]) -> bool:
    """The CPU runs bf16 matmuls natively (AVX512-BF16 or AMX-BF16): only there is bf16 a candidate."""
    return any(flag in flags for flag in NATIVE_BF16_FLAGS)


def library_versions() -> dict[str, str]:
    found = {}
    for name in VERSIONED:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "?"
    return found


def model_fingerprint(config: ModelConfig) -> str:
    """The model's architecture (what speed and the gate depend on), from its config alone: ``mtst info`` can
    read the cached choice without loading weights."""
    decoding = {"temperature", "threshold", "thresholds", "confidence_curve"}  # calibration: no effect on speed
    raw = config.model_dump(mode="json", exclude={"trained": True, "encoder": {"backbone_sha256"},
                                                  "heads": {"__all__": decoding}})
    return hashlib.sha256(json.dumps(raw, sort_keys=True).encode()).hexdigest()[:16]


def cache_key(cpu: dict, versions: dict[str, str], fingerprint: str) -> str:
    """Changes with the CPU model, its flags, the library versions, the model architecture and PROBE_VERSION."""
    text = json.dumps({"cpu": cpu, "versions": versions, "model": fingerprint, "probe": PROBE_VERSION}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def key_for(config: ModelConfig) -> str:
    return cache_key(cpu_facts(), library_versions(), model_fingerprint(config))


# ---- the cache ----------------------------------------------------------------------------
def cache_dir() -> Path:
    """$MTST_CACHE_DIR, else the user cache dir (platformdirs when installed, else ~/.cache/mtst)."""
    if os.environ.get(CACHE_VARIABLE):
        return Path(os.environ[CACHE_VARIABLE])
    try:
        from platformdirs import user_cache_dir
    except ImportError:
        return Path.home() / ".cache" / "mtst"
    return Path(user_cache_dir("mtst"))


def read_cache() -> dict:
    path = cache_dir() / CACHE_FILE
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        logger.warning("ignoring the unreadable CPU-path cache %s: %s", path, exc)
        return {}


def cached_entry(key: str) -> dict | None:
    """The cached probe result under ``key``: {"path": {...}, "cpu", "versions", "measured_utc", "timings"}."""
    entry = read_cache().get(key)
    return entry if isinstance(entry, dict) and isinstance(entry.get("path"), dict) else None


def cached_path(key: str) -> CpuPath | None:
    return path_of(cached_entry(key))


def path_of(entry: dict | None) -> CpuPath | None:
    """The CpuPath of a cached entry; None for none, or for one another mtst version wrote."""
    try:
        return CpuPath(**entry["path"]) if entry else None
    except TypeError:
        return None


def describe(entry: dict) -> str:
    """One line for ``mtst info``: a cached entry's path and batching, and when it was measured."""
    path = path_of(entry) or CpuPath(**{key: entry["path"][key] for key in ("kernels", "precision")})
    rows = " / ".join(batching_label(path.batching(call)) for call in ("encode", "predict"))
    return f"{path.name}, batch {rows} (measured {entry.get('measured_utc', '?')} UTC on this CPU)"


def remember(key: str, path: CpuPath, details: dict) -> Path:
    """Store ``path`` under ``key`` beside the other machines' and models' choices (one atomic rename)."""
    folder = cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    cache = read_cache()
    cache[key] = {"path": asdict(path), "measured_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
                  **details}
    write_text(folder / CACHE_FILE, json.dumps(cache, indent=2) + "\n")
    return folder / CACHE_FILE


# ---- the parity gate and the choice -------------------------------------------------------
def parity(reference: tuple[np.ndarray, list[dict]], candidate: tuple[np.ndarray, list[dict]]) -> dict:
    """Embedding cosines and label agreement of ``candidate`` against ``reference``. Each is (embeddings (N, H),
    per row {task: label (sentence tasks) | {word: tag} (token tasks)}), as head.best_labels gives them."""
    (ref_vectors, ref_labels), (vectors, labels) = reference, candidate
    norms = np.linalg.norm(ref_vectors, axis=-1) * np.linalg.norm(vectors, axis=-1)
    cosine = (ref_vectors * vectors).sum(-1) / np.maximum(norms, 1e-12)
    rows = words = same_rows = same_words = 0
    for ref_row, row in zip(ref_labels, labels, strict=True):
        for task, ref_value in ref_row.items():
            rows, same_rows = rows + 1, same_rows + (row[task] == ref_value)
            if isinstance(ref_value, dict):  # a token task: its words too
                words += len(ref_value)
                same_words += sum(row[task].get(word) == tag for word, tag in ref_value.items())
    return {"mean_cosine": float(cosine.mean()) if len(cosine) else 1.0,
            "min_cosine": float(cosine.min()) if len(cosine) else 1.0,
            "row_agreement": same_rows / rows if rows else 1.0, "word_agreement": same_words / words if words else 1.0}


def passes(report: dict, gate: Gate = GATE) -> bool:
    return (report["mean_cosine"] >= gate.mean_cosine and report["min_cosine"] >= gate.min_cosine
            and report["row_agreement"] >= gate.agreement and report["word_agreement"] >= gate.agreement)


def choose(timings: dict[tuple, float], passed: set[tuple[str, str]]) -> CpuPath:
    """The fastest (kernels, precision) that passed the gate, by its best encode + best predict time, with those
    batchings. ``timings``: (kernels, precision, "encode" | "predict", batch size | (rows, token budget)) ->
    seconds."""
    best: tuple[float, CpuPath] | None = None
    for kind in sorted({key[:2] for key in timings} & passed):
        fastest = {}
        for call in ("encode", "predict"):
            mine = {size: took for (k, p, c, size), took in timings.items() if (k, p) == kind and c == call}
            fastest[call] = min(mine, key=mine.__getitem__) if mine else None
        if None in fastest.values():
            continue
        total = timings[(*kind, "encode", fastest["encode"])] + timings[(*kind, "predict", fastest["predict"])]
        (encode_rows, encode_tokens), (predict_rows, predict_tokens) = map(as_batching, fastest.values())
        if best is None or total < best[0]:
            best = (total, CpuPath(*kind, encode_rows, predict_rows, encode_tokens, predict_tokens))
    if best is None:
        raise MtstError("no CPU path passed the parity gate (not even fp32 torch); nothing to choose")
    return best[1]


def probe_on_first_use(model) -> bool:
    """Whether a model with nothing cached for this CPU measures its path now (the quick probe, ~10 s on 2 cores):
    on a CPU model with heads or an embedding to time, unless ``MTST_CPU_PROBE=0`` (tests, CI, batch jobs that
    want fp32 without measuring). It logs one line, so a slow first load is never a mystery."""
    if os.environ.get("MTST_CPU_PROBE", "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    if next(model.parameters()).device.type != "cpu":
        return False
    logger.info("mtst: measuring the fastest lossless CPU path for this machine once (cached in %s; "
                "MTST_CPU_PROBE=0 skips it)", cache_dir())
    return True


def warn_if_bf16_is_emulated() -> None:
    """Asked-for bf16 runs anyway (torch autocast, OpenVINO's hint), but where the CPU lacks it, slowly: say so."""
    if not native_bf16(cpu_facts()["flags"]):
        logger.warning("this CPU has no native bf16 (AVX512-BF16 / AMX-BF16): bf16 inference is emulated and slow")


def resolve(precision: str, config: ModelConfig) -> tuple[CpuPath, str]:
    """The path a model starts with for ``precision``, and where it came from ("requested", "cached", "default")."""
    if precision not in PRECISIONS:
        raise MtstError(f"unknown precision '{precision}'; choose one of {', '.join(PRECISIONS)}")
    if precision == "bf16":
        warn_if_bf16_is_emulated()
    if precision != "auto":
        return CpuPath(precision=precision), "requested"
    path = cached_path(key_for(config))
    return (path, "cached") if path else (CpuPath(), "default")
