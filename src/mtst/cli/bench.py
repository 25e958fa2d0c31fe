"""``mtst bench``: how fast each mtst path is on this machine against sentence-transformers and a
plain-transformers baseline, in one run."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from mtst.cli.app import InputOpt, ModelOpt
from mtst.errors import MtstError

QUICK_SENTENCES = 64  # --quick: this many of the sentences, one round, no exports


def register(app: typer.Typer) -> None:
    @app.command()
    def bench(
        model: ModelOpt = None,
        input_path: InputOpt = None,
        rounds: Annotated[int, typer.Option(help="Alternating rounds; each figure is the median.")] = 3,
        quick: Annotated[bool, typer.Option("--quick", help=f"{QUICK_SENTENCES} sentences, one round, no exports: "
                                            "a few seconds.")] = False,
        probe: Annotated[bool, typer.Option("--probe", help="First measure which torch path (and OpenVINO "
                                            "export precision) is fastest and lossless here, and keep it for later "
                                            "loads (precision auto).")] = False,
        exports: Annotated[bool, typer.Option("--exports/--no-exports", help="Also export to ONNX / OpenVINO "
                                              "(where installed) in a temp dir and time them.")] = True,
        int8: Annotated[bool, typer.Option("--int8", help="Also time int8 exports.")] = False,
        as_json: Annotated[bool, typer.Option("--json", help="Machine-readable JSON.")] = False,
    ) -> None:
        """Sentences/s of sentence-transformers and every mtst path here (encode; predict with the embedding)."""
        from contextlib import nullcontext

        from mtst.cli.io import read_sentences, stdout_kept_clean
        from mtst.inference.bench import bench as run

        if rounds < 1:
            raise MtstError(f"--rounds must be at least 1, got {rounds}")
        texts = read_sentences(None, input_path) if input_path is not None else None
        if quick:
            from mtst.model.cpu_probe import calibration_sentences

            texts, rounds, exports = (texts or calibration_sentences())[:QUICK_SENTENCES], 1, False
        with stdout_kept_clean() if as_json else nullcontext():  # exporters print progress: keep the JSON parseable
            result = run(model, texts, rounds=rounds, exports=exports, int8=int8, probe=probe)
        if as_json:
            typer.echo(json.dumps(asdict(result), indent=2))
        else:
            print_bench(result, model)


def print_bench(result, model_dir: Path | None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    rows = {name: row for name, row in result.rows.items() if name != "_"}
    table = Table(title=f"{result.sentences} sentences, median of {result.rounds} alternating round(s)")
    for column in ("path", "encode /s", "vs ST", "predict+emb /s", "vs ST", "min cos", "note"):
        table.add_column(column, justify="left" if column in ("path", "note") else "right")
    for name, row in rows.items():
        table.add_row(name, _cell(row.get("encode")), _ratio(row.get("encode_vs_reference")),
                      _cell(row.get("predict")), _ratio(row.get("predict_vs_reference")),
                      _cell(row.get("min_cosine")), row.get("note", ""))
    console.print(table)
    from mtst.inference.bench import verdict

    line = verdict(result)
    if line:
        console.print(line)
    console.print(f"model: {model_dir or 'the shipped default'}; CPU: {result.cpu['model']}; flags: "
                  f"{' '.join(result.cpu['flags']) or 'none of note'}; load average: {result.load_average}")
    console.print(f"versions: {', '.join(f'{k} {v}' for k, v in result.versions.items())}; mtst chose: "
                  f"{result.chosen} (`mtst bench --probe` measures and keeps the fastest lossless path)")


def _cell(value) -> str:
    return "-" if value is None else str(value)


def _ratio(value) -> str:
    return "-" if value is None else f"{value:.2f}x"
