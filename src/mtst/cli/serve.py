"""``mtst serve [--model DIR] [--backend auto|torch|onnx|openvino] [--host 127.0.0.1] [--port 8000] [--threads N]
[--device auto|cpu|cuda|mps]``.

Which model is served is decided by ``mtst.cli.loading.load_task_model`` (the same choice as ``mtst predict``):
--model DIR, else the shipped default model, else the seeded demo model.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from mtst.cli.app import DeviceOpt, PrecisionOpt, ThreadsOpt

API_KEY_ENV = "MTST_API_KEY"
# Idle OpenMP threads spin by default. In a server they spin between batches and starve the event loop and
# the batcher thread; on a busy 2-core machine that took single-request p50 from ~16 ms to ~980 ms
# (benchmarks/speed/HISTORY.md, "Serving under load"). libgomp reads this once, when torch is imported.
OMP_POLICY_ENV = "OMP_WAIT_POLICY"


def _restart_with_passive_openmp() -> None:
    """Re-execute ``mtst serve ...`` once with OMP_WAIT_POLICY=PASSIVE unless the user chose a policy.

    Only when this process *is* that command line (not when the CLI is called in-process, e.g. by tests).
    """
    if os.environ.get(OMP_POLICY_ENV) or sys.argv[1:2] != ["serve"]:
        return
    env = {**os.environ, OMP_POLICY_ENV: "PASSIVE"}
    os.execve(sys.executable, [sys.executable, "-m", "mtst.cli", *sys.argv[1:]], env)


def serve_model(model: Path | None, backend: str, host: str, port: int, settings, threads: int | None = None,
                device: str | None = None, precision: str = "auto") -> None:
    """Load the model, build the app and run uvicorn until SIGINT/SIGTERM (then drain and exit)."""
    import uvicorn

    from mtst.cli.loading import load_task_model
    from mtst.serving.app import create_app

    predictor = load_task_model(model, backend, threads, device, precision)
    app = create_app(predictor, settings)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))  # the access log line is already JSON
    access = logging.getLogger("mtst.access")
    access.addHandler(handler)
    access.setLevel(logging.INFO)
    access.propagate = False
    auth = "bearer token required" if settings.api_key else f"no auth (set {API_KEY_ENV} to require a token)"
    typer.echo(f"mtst serving {settings.model_name} on http://{host}:{port} ({auth}); playground at /, docs at /docs",
               err=True)
    if host not in ("127.0.0.1", "localhost", "::1") and not settings.api_key:
        typer.echo(f"warning: listening on {host} without auth; anyone who can reach it can use it "
                   f"(set {API_KEY_ENV})", err=True)
    # uvicorn's own access log is off: the JSON line from mtst.serving.app replaces it.
    uvicorn.run(app, host=host, port=port, access_log=False, log_level="warning",
                timeout_graceful_shutdown=int(settings.drain_timeout_s))


def register(app: typer.Typer) -> None:
    """Add the ``serve`` command to the mtst CLI."""

    @app.command("serve")
    def serve(
        model: Annotated[Path | None, typer.Option("--model", "-m", help="mtst model directory (saved or exported); "
                                                   "default: the shipped model, else the demo model.")] = None,
        backend: Annotated[str, typer.Option(help="auto | torch | onnx | openvino.")] = "auto",
        host: Annotated[str, typer.Option(help="Interface to bind; 127.0.0.1 keeps it local.")] = "127.0.0.1",
        port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
        max_batch: Annotated[int, typer.Option(help="Most sentences per forward pass.")] = 64,
        max_gather: Annotated[int, typer.Option(
            help="Most sentences the batcher gathers per round; they run as length-sorted forward passes.")] = 256,
        max_wait_ms: Annotated[float, typer.Option(
            help="How long a batch waits to fill, in ms (only when callers are concurrent).")] = 5.0,
        max_queue: Annotated[int, typer.Option(help="Most sentences waiting; beyond it requests get 429.")] = 1024,
        max_sentences: Annotated[int, typer.Option(help="Most sentences per request (413 beyond).")] = 256,
        max_chars: Annotated[int, typer.Option(help="Most characters per sentence (413 beyond).")] = 10_000,
        timeout: Annotated[float, typer.Option(help="Seconds a request may wait for the model (504 beyond).")] = 30.0,
        cors_origin: Annotated[list[str] | None, typer.Option(
            "--cors-origin", help="Allow browser calls from this origin (repeatable); no CORS by default.")] = None,
        threads: ThreadsOpt = None,
        device: DeviceOpt = None,
        precision: PrecisionOpt = "auto",
    ) -> None:
        """Serve embeddings and predictions over HTTP (OpenAI-compatible /v1/embeddings, playground at /).

        Set MTST_API_KEY to require 'Authorization: Bearer <key>' on every endpoint except /health and /.
        """
        from mtst.extras import check

        check("serve", "mtst serve")  # before the restart below: one line, not a second process saying it
        _restart_with_passive_openmp()
        from mtst.serving.app import ServeSettings

        name = model.name if model is not None else "mtst-default"
        settings = ServeSettings(
            max_sentences=max_sentences, max_chars=max_chars, max_batch=max_batch, max_gather=max_gather,
            max_wait_ms=max_wait_ms, max_queue=max_queue, timeout_s=timeout,
            api_key=os.environ.get(API_KEY_ENV) or None, cors_origins=tuple(cors_origin or ()), model_name=name,
        )
        serve_model(model, backend, host, port, settings, threads=threads, device=device, precision=precision)
