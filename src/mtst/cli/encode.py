"""``mtst encode``: sentences -> embeddings as a table, JSON lines or a .npy matrix (a file into .npy streams)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from mtst.cli.app import (
    BackboneOpt,
    BackendOpt,
    BatchOpt,
    DeviceOpt,
    InputOpt,
    MaxLenOpt,
    ModelOpt,
    NormalizeOpt,
    PoolingOpt,
    PrecisionOpt,
    SentencesArg,
    ThreadsOpt,
)
from mtst.cli.engine import ActorsOpt, AddressOpt, ColumnOpt, EngineOpt, check_engine, ray_job, show_progress
from mtst.cli.io import emit_jsonl, read_sentences, short, stdout_is_terminal, wants_progress
from mtst.cli.loading import check_choice, encoder_spec, load_encoder
from mtst.errors import MtstError
from mtst.files import write_atomic

if TYPE_CHECKING:
    import numpy as np

TABLE_ROWS = 50  # rows shown by the readable table; files and JSON lines carry everything
ENCODE_FORMATS = ("table", "jsonl", "npy")
SUFFIX_FORMATS = {".npy": "npy", ".jsonl": "jsonl", ".ndjson": "jsonl"}


def register(app: typer.Typer) -> None:
    @app.command()
    def encode(
        sentences: SentencesArg = None,
        input_path: InputOpt = None,
        output: Annotated[Path | None, typer.Option("--output", "-o", help="Write OUT.npy or OUT.jsonl.")] = None,
        output_format: Annotated[str | None, typer.Option("--format", "-f", help="table | jsonl | npy "
                                 "(default: from --output's suffix; table on a terminal, else jsonl).")] = None,
        model: ModelOpt = None,
        backbone: BackboneOpt = None,
        pooling: PoolingOpt = None,
        normalize: NormalizeOpt = None,
        max_seq_length: MaxLenOpt = None,
        batch_size: BatchOpt = None,
        backend: BackendOpt = "auto",
        threads: ThreadsOpt = None,
        device: DeviceOpt = None,
        precision: PrecisionOpt = "auto",
        num_processes: Annotated[int, typer.Option("--num-processes", help="Worker processes for a file into .npy "
                                                   "(threads are split between them).")] = 1,
        engine: EngineOpt = "local",
        address: AddressOpt = None,
        actors: ActorsOpt = None,
        column: ColumnOpt = None,
    ) -> None:
        """Sentences -> fixed-length embeddings (a table, JSON lines or a .npy matrix)."""
        if check_engine(engine, address, actors, column, device):  # threads: per actor
            from mtst.inference.backends import ModelSpec
            from mtst.integrations.ray_data import PredictOptions
            from mtst.integrations.ray_jobs import run_job

            if output_format is not None or num_processes != 1:
                raise MtstError(f"{'--format' if output_format else '--num-processes'} is for --engine local; with "
                                "--engine ray the format comes from --output's name and --actors sets the workers")
            job = ray_job(sentences, input_path, output, threads, actors, address)
            spec = ModelSpec(None if model is None else str(model), backend, backbone, pooling, normalize,
                             max_seq_length, precision=precision)
            run_job(job, spec, PredictOptions(batch_size=batch_size, text_column=column or "text"), show_progress())
            return
        fmt = _encode_format(output_format, output)
        streams = fmt == "npy" and not sentences and input_path not in (None, "-")
        if num_processes < 1:
            raise MtstError(f"--num-processes must be at least 1, got {num_processes}")
        if num_processes > 1 and not streams:
            raise MtstError("--num-processes is for bulk encoding: pass --input FILE and --output OUT.npy")
        if num_processes > 1 and device not in (None, "cpu"):
            raise MtstError("--num-processes splits the CPU's threads between processes; drop it to use --device")
        if streams:  # a file into .npy: stream it
            # bounded memory, resumable: rerun the same command after a kill
            from mtst.inference.bulk import encode_file
            from mtst.inference.bulk_workers import Workers

            spec = encoder_spec(model, backbone, pooling, normalize, max_seq_length, backend, threads, precision)
            workers = Workers(num_processes, spec) if num_processes > 1 else None
            predictor = spec.load() if device is None else spec.load().to(device)
            encode_file(predictor, input_path, output, batch_size=batch_size, normalize=normalize,
                        show_progress=sys.stderr.isatty(), workers=workers)
            return
        import numpy as np

        texts = read_sentences(sentences, input_path)
        predictor = load_encoder(model, backbone, pooling, normalize, max_seq_length, backend, threads, device,
                                 precision)
        embeddings = predictor.encode(texts, batch_size=batch_size, normalize=normalize,
                                      show_progress_bar=wants_progress(texts))  # (N, H)
        embeddings = np.asarray(embeddings, dtype=np.float32)
        from mtst.inference.truncation import embedding_cuts, embedding_limit, write_sidecar

        cuts = embedding_cuts(predictor, texts)  # cut at the embedding limit: rows say so, as predict rows do
        if fmt == "npy":
            write_sidecar(output, [i for i, cut in enumerate(cuts) if cut], len(texts), embedding_limit(predictor))
            write_atomic(output, lambda handle: np.save(handle, embeddings, allow_pickle=False))
        elif fmt == "jsonl":
            emit_jsonl(({"text": t, "embedding": v.tolist(), **({"truncated": True} if cut else {})}
                        for t, v, cut in zip(texts, embeddings, cuts, strict=True)), output)
        else:
            _print_embedding_table(texts, embeddings)


def _encode_format(output_format: str | None, output: Path | None) -> str:
    check_choice(output_format, ENCODE_FORMATS, "format")
    if output_format is None and output is not None:
        output_format = SUFFIX_FORMATS.get(output.suffix.lower())
        if output_format is None:
            raise MtstError(f"cannot tell the format from '{output.name}'; use a .npy or .jsonl name, or --format")
    if output_format is None:
        output_format = "table" if stdout_is_terminal() else "jsonl"
    if output_format == "npy" and output is None:
        raise MtstError("--format npy needs --output FILE.npy")
    if output_format == "table" and output is not None:
        raise MtstError("--format table prints to the terminal; drop --output or use .npy / .jsonl")
    return output_format


def _print_embedding_table(texts: list[str], embeddings: np.ndarray) -> None:
    import numpy as np
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console()
    table = Table(title=f"{len(texts)} sentence(s) -> embeddings of dimension {embeddings.shape[1]}")
    table.add_column("#", justify="right")
    table.add_column("sentence")
    table.add_column("first values")
    table.add_column("norm", justify="right")
    for index, (text, vector) in enumerate(zip(texts[:TABLE_ROWS], embeddings, strict=False)):
        values = " ".join(f"{v:+.4f}" for v in vector[:4]) + " …"
        table.add_row(str(index + 1), Text(short(text)), values, f"{np.linalg.norm(vector):.3f}")
    console.print(table)
    if len(texts) > TABLE_ROWS:
        console.print(f"… {len(texts) - TABLE_ROWS} more; use --output FILE.npy or --format jsonl for all rows")
