"""``mtst similarity``: the cosine similarity matrix between sentences."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from mtst.cli.app import (
    BackboneOpt,
    BackendOpt,
    BatchOpt,
    DeviceOpt,
    InputOpt,
    MaxLenOpt,
    ModelOpt,
    PoolingOpt,
    PrecisionOpt,
    SentencesArg,
    ThreadsOpt,
)
from mtst.cli.io import read_sentences, short
from mtst.cli.loading import check_choice, load_encoder
from mtst.errors import MtstError
from mtst.files import write_text


def register(app: typer.Typer) -> None:
    @app.command()
    def similarity(
        sentences: SentencesArg = None,
        input_path: InputOpt = None,
        output_format: Annotated[str | None, typer.Option("--format", "-f", help="table | json (default: table; "
                                                                   "json with --output).")] = None,
        output: Annotated[Path | None, typer.Option("--output", "-o", help="Write the JSON to this file.")] = None,
        model: ModelOpt = None,
        backbone: BackboneOpt = None,
        pooling: PoolingOpt = None,
        max_seq_length: MaxLenOpt = None,
        batch_size: BatchOpt = None,
        backend: BackendOpt = "auto",
        threads: ThreadsOpt = None,
        device: DeviceOpt = None,
        precision: PrecisionOpt = "auto",
    ) -> None:
        """Cosine similarity matrix between sentences."""
        import numpy as np
        from rich.console import Console
        from rich.table import Table
        from rich.text import Text

        from mtst.cli.showcase import cosine_matrix

        check_choice(output_format, ("table", "json"), "format")
        if output is not None and output_format == "table":
            raise MtstError("--format table prints to the terminal; drop --output or use --format json")
        texts = read_sentences(sentences, input_path)
        predictor = load_encoder(model, backbone, pooling, None, max_seq_length, backend, threads, device, precision)
        embeddings = np.asarray(predictor.encode(texts, batch_size=batch_size), dtype=np.float64)
        sims = cosine_matrix(embeddings)  # (N, N)
        if output is not None or output_format == "json":
            text = json.dumps({"sentences": texts, "similarity": np.round(sims, 6).tolist()}, ensure_ascii=False)
            if output is None:
                typer.echo(text)
            else:
                write_text(output, text + "\n")
            return
        table = Table(title="Cosine similarity")
        table.add_column("sentence", no_wrap=True)
        for col in range(len(texts)):
            table.add_column(str(col + 1), justify="right")
        for row, text in enumerate(texts):
            table.add_row(Text(f"{row + 1} {short(text, 30)}"), *(f"{v:.3f}" for v in sims[row]))
        Console().print(table)
