"""Bulk encoding / prediction on a Ray cluster (``mtst encode|predict --engine ray``): read a text, JSON-lines or
Parquet input in numbered chunks, run ``MtstPredictor`` on an actor pool, write one output.

The driver checks everything it can before the cluster does any work (input readable, output nameable, model
loadable, tasks known: one-line MtstErrors), shows progress as blocks come back, and keeps a ledger so that every
input row is in the output exactly once. Ray retries a task whose actor died (it restarts the actor), so a killed
worker costs its unfinished chunks, not the run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import pyarrow as pa

from mtst.errors import MtstError, first_line
from mtst.inference.backends import ModelSpec
from mtst.inference.truncation import embedding_limit
from mtst.integrations.ray_data import ROW, MtstPredictor, PredictOptions, output_fields
from mtst.integrations.ray_sinks import FileSink, PartsSink, PartWriter, output_kind
from mtst.progress import progress_bar

ENGINES = ("local", "ray")
logger = logging.getLogger("mtst")
RAY_MISSING = "--engine ray needs Ray: pip install 'mtst[ray]' (it installs ray[data])"


@dataclass(frozen=True)
class RayJob:
    """Where the rows come from and go, and the cluster that runs them.

    ``address``: "local" starts a Ray instance on this machine for the job; "auto" joins the cluster this machine
    belongs to (``ray start``); "ray://HOST:10001" or "HOST:6379" names one. A process already connected
    (``ray.init()`` was called) keeps its connection. ``actors`` x ``threads`` CPUs are reserved (default: as many
    actors as the cluster's CPUs allow); ``chunk_size`` rows are encoded together, as ``mtst encode`` does.
    """

    input: Path
    output: Path
    address: str = "local"
    actors: int | None = None
    threads: int = 1
    chunk_size: int = 4096

    def __post_init__(self) -> None:
        for name in ("threads", "chunk_size", *(("actors",) if self.actors is not None else ())):
            if getattr(self, name) < 1:
                raise MtstError(f"{name} must be at least 1, got {getattr(self, name)}")


def require_ray():
    try:
        import ray
        import ray.data  # noqa: F401  (the [data] extra: pyarrow, pandas, fsspec)
    except ImportError as exc:
        raise MtstError(RAY_MISSING) from exc
    return ray


def run_job(job: RayJob, spec: ModelSpec, options: PredictOptions, show_progress: bool = False,
            on_block: Callable[[int], None] | None = None) -> Path:
    """Run ``spec``'s model over every row of ``job.input`` on Ray and write ``job.output``.

    Args:
        options: what each row gets (embedding and/or tasks, text column, batch size); the chunk size is the job's.
        on_block: called with the number of rows done after each block is in the output (progress hooks, tests).
    Returns:
        The output path (a .npy / .jsonl / .parquet file, or a folder of Parquet parts).
    """
    ray = require_ray()
    from mtst.integrations.ray_sources import ChunkedSource, plan_input

    options = replace(options, chunk_size=job.chunk_size)
    kind = output_kind(job.output, options)
    plan = plan_input(job.input, job.chunk_size, options.text_column)
    predictor = spec.load()
    fields = output_fields(predictor, options)  # the model and the tasks, checked here once
    sink = PartsSink(job.output, plan.rows) if kind == "parts" else FileSink(
        kind, job.output, plan.rows, _empty_schema(options, fields), embedding_limit(predictor))
    try:
        if plan.rows:  # an empty input needs no cluster
            with connected(ray, job.address), _quiet("ray.data"):
                source = ChunkedSource(plan)  # reading reserves no CPU: cheap next to encoding
                dataset = ray.data.read_datasource(source, num_cpus=0, override_num_blocks=source.num_tasks)
                dataset = _predict(ray, dataset, job, spec, options, getattr(sink, "staging", None))
                verb = "encoding" if options.tasks == () else "predicting"
                _stream(dataset, plan, sink, verb, show_progress, on_block)
        sink.finish()
    except BaseException:
        sink.abort()
        raise
    return job.output


def _stream(dataset, plan, sink, verb: str, show_progress: bool, on_block: Callable[[int], None] | None) -> None:
    """The dataset's blocks into the sink as they come back, counted on a progress bar."""
    with progress_bar(plan.rows, verb, enabled=show_progress) as advance:
        warned = False
        for block in _blocks(dataset):
            warned = warned or _warn_if_cut(block, plan)
            sink.add(block)
            advance(block.num_rows)
            if on_block is not None:
                on_block(sink.ledger.done)


@contextmanager
def connected(ray, address: str) -> Iterator[None]:
    """Use this process's Ray connection, else connect to ``address`` (or start a local instance) for the job."""
    if ray.is_initialized():
        yield
        return
    extra = {"include_dashboard": False} if address == "local" else {}
    try:
        # log_to_driver=False: Ray's own processes (GCS, raylet, actors) otherwise print into our stderr at any
        # time, e.g. a "Failed to kill actor" line before the command's one-line error; job errors still arrive
        # as exceptions, and the cluster's logs stay in its session folder.
        ray.init(address=address, logging_level=logging.ERROR, log_to_driver=False, **extra)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        raise MtstError(f"cannot reach a Ray cluster at '{address}' ({first_line(exc)[:160]}); start one with "
                        "`ray start --head`, or use --address local") from exc
    try:
        yield
    finally:
        ray.shutdown()


@contextmanager
def _quiet(name: str) -> Iterator[None]:
    """Ray Data's own INFO/WARNING chatter off for the job (our bar counts rows; its full logs stay in Ray's log
    folder, /tmp/ray/session_latest/logs/ray-data)."""
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _predict(ray, dataset, job: RayJob, spec: ModelSpec, options: PredictOptions, folder: Path | None):
    cpus = int(ray.cluster_resources().get("CPU", 0))
    actors = job.actors or max(1, cpus // job.threads)
    if actors * job.threads > cpus:
        raise MtstError(f"{actors} actors x {job.threads} threads need {actors * job.threads} CPUs but the Ray "
                        f"cluster has {cpus}; lower --actors or --threads")
    udf = MtstPredictor if folder is None else PartWriter
    args = (spec, options, job.threads) if folder is None else (spec, options, job.threads, str(folder))
    dataset = dataset.map_batches(udf, fn_constructor_args=args, batch_size=None, batch_format="pyarrow",
                                  compute=ray.data.ActorPoolStrategy(size=actors), num_cpus=job.threads)
    dataset.context.enable_progress_bars = False  # ours counts rows; this dataset only, not the user's others
    dataset.context.print_on_execution_start = False
    return dataset


def _blocks(dataset) -> Iterator[pa.Table]:
    """The dataset's output blocks; an MtstError raised in an actor comes back as itself, one line."""
    try:
        yield from dataset.iter_batches(batch_size=None, batch_format="pyarrow")
    except MtstError:
        raise
    except Exception as exc:
        cause = _mtst_cause(exc)
        if cause is not None:
            raise MtstError(str(cause)) from None
        raise MtstError(f"the Ray job failed: {type(exc).__name__}: {first_line(exc)[:300]}") from exc


def _warn_if_cut(block: pa.Table, plan) -> bool:
    """Warn (once: returns True) when a block is not whole chunks: Ray cut one, so its floats are not bit-identical
    to the single-process path's (other batches), only equal to rounding."""
    rows, size = block.column(ROW), plan.chunk_size
    first = rows[0].as_py() if len(rows) else 0
    if first % size == 0 and (len(rows) % size == 0 or first + len(rows) == plan.rows):
        return False
    logger.warning("Ray cut the chunk at row %d into smaller blocks: those rows match a single-process run to float "
                   "rounding, not bit for bit", first - first % size)
    return True


def _mtst_cause(exc: BaseException | None) -> MtstError | None:
    """The MtstError behind Ray's wrappers (RayTaskError keeps the original in ``cause``; its own text has a
    traceback), or None."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        inner = getattr(exc, "cause", None)
        if isinstance(exc, MtstError) and not isinstance(inner, BaseException):
            return exc
        exc = inner if isinstance(inner, BaseException) else (exc.__cause__ or exc.__context__)
    return None


def _empty_schema(options: PredictOptions, fields: list[pa.Field]) -> pa.Schema:
    return pa.schema([pa.field(options.text_column, pa.string()), *fields])
