"""``mtst predict``: every task head's predictions as JSON lines, one per sentence, from one forward pass."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mtst.cli.app import (
    BackendOpt,
    BatchOpt,
    DeviceOpt,
    InputOpt,
    ModelOpt,
    PrecisionOpt,
    SentencesArg,
    ThreadsOpt,
)
from mtst.cli.engine import ActorsOpt, AddressOpt, ColumnOpt, EngineOpt, check_engine, ray_job, show_progress
from mtst.cli.io import emit_jsonl, read_sentences, wants_progress
from mtst.cli.loading import load_task_model
from mtst.errors import MtstError


def register(app: typer.Typer) -> None:
    @app.command()
    def predict(
        sentences: SentencesArg = None,
        input_path: InputOpt = None,
        model: ModelOpt = None,
        tasks: Annotated[str | None, typer.Option(help="Comma-separated tasks (default: all of the model's).")] = None,
        embedding: Annotated[bool, typer.Option("--embedding", help="Add each sentence's embedding.")] = False,
        output: Annotated[Path | None, typer.Option("--output", "-o", help="Write JSON lines to this file.")] = None,
        batch_size: BatchOpt = None,
        backend: BackendOpt = "auto",
        threads: ThreadsOpt = None,
        device: DeviceOpt = None,
        precision: PrecisionOpt = "auto",
        engine: EngineOpt = "local",
        address: AddressOpt = None,
        actors: ActorsOpt = None,
        column: ColumnOpt = None,
    ) -> None:
        """Every task head's predictions as JSON lines, one per sentence (one forward pass each)."""
        wanted = None if tasks is None else [t.strip() for t in tasks.split(",") if t.strip()]
        if check_engine(engine, address, actors, column, device):  # threads: per actor
            from mtst.cli.showcase import trained_default_available
            from mtst.inference.backends import ModelSpec
            from mtst.integrations.ray_data import PredictOptions
            from mtst.integrations.ray_jobs import run_job
            from mtst.model.storage import DEFAULT_MODEL_DIR

            job = ray_job(sentences, input_path, output, threads, actors, address)
            if model is None and not trained_default_available():
                raise MtstError("--engine ray needs --model DIR: no trained default model is installed")
            spec = ModelSpec(str(model or DEFAULT_MODEL_DIR), backend, precision=precision)
            options = PredictOptions(embedding, None if wanted is None else tuple(wanted), column or "text", batch_size)
            run_job(job, spec, options, show_progress())
            return
        texts = read_sentences(sentences, input_path)
        predictor = load_task_model(model, backend, threads, device, precision)
        rows = predictor.predict(texts, tasks=wanted, batch_size=batch_size, include_embedding=embedding,
                                 show_progress_bar=wants_progress(texts))
        emit_jsonl(rows, output)
