"""``mtst export --model DIR --format onnx|openvino [--quantize int8] [--calibration FILE] -o OUT_DIR``.

``--output/-o`` as on every command; ``--out`` (its first name) still works, hidden from --help.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mtst.cli.app import ThreadsOpt
from mtst.errors import MtstError


def run_export(model: Path | None, format: str, out: Path, quantize: str | None = None,
               calibration: Path | None = None) -> str:
    """Export, then return a one-line summary for the terminal."""
    from mtst.extras import check

    check("export", "mtst export")
    from mtst.inference.export import export_model, read_export_info

    if quantize in ("", "none", "fp32"):
        quantize = None
    if calibration is not None and not (format == "openvino" and quantize == "int8"):
        raise MtstError("--calibration is only used by --format openvino --quantize int8; drop it or add those")
    directory = export_model(model, out, format=format, quantize=quantize, calibration=calibration)
    info = read_export_info(directory)
    size = sum(path.stat().st_size for path in directory.iterdir() if path.is_file()) / 1e6
    return f"exported {info['format']} {info['precision']} to {directory} ({size:.1f} MB)"


def register(app: typer.Typer) -> None:
    """Add the ``export`` command to the mtst CLI."""

    @app.command("export")
    def export(
        output: Annotated[Path | None, typer.Option("--output", "-o", help="Directory to write the exported model "
                                                    "into.", show_default=False)] = None,
        out: Annotated[Path | None, typer.Option("--out", hidden=True)] = None,  # the old name of --output
        model: Annotated[Path | None, typer.Option("--model", help="A saved mtst model directory "
                                                   "(default: the shipped model).")] = None,
        format: Annotated[str, typer.Option("--format", help="onnx (ONNX Runtime) or openvino.")] = "onnx",
        quantize: Annotated[str | None, typer.Option("--quantize", help="int8, or leave out for fp32.")] = None,
        calibration: Annotated[Path | None, typer.Option(
            "--calibration", help="OpenVINO int8 only: sentences, one per line (default: 300 shipped ones).")] = None,
        threads: ThreadsOpt = None,
    ) -> None:
        """Export encoder + pooling + every head as one ONNX / OpenVINO graph with its tokenizer."""
        from mtst.cli.loading import torch_threads

        try:
            if (output or out) is None:
                raise MtstError("missing --output/-o DIR: the directory to write the exported model into")
            torch_threads(threads)
            summary = run_export(model, format, output or out, quantize, calibration)
        except MtstError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from exc
        typer.echo(summary)
