"""``--engine ray`` for ``mtst encode`` and ``mtst predict``: the options both commands share and the one call
into ``mtst.integrations.ray_jobs`` (which holds the logic)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from mtst.cli.loading import check_choice
from mtst.errors import MtstError

ENGINES = ("local", "ray")
EngineOpt = Annotated[str, typer.Option(help="local (this machine) | ray (a Ray cluster, see --address).")]
AddressOpt = Annotated[str | None, typer.Option(help="--engine ray: local (start Ray here, the default) | auto (the "
                                                     "cluster this machine joined) | ray://HOST:10001.")]
ActorsOpt = Annotated[int | None, typer.Option(help="--engine ray: model copies (default: the cluster's CPUs / "
                                                    "--threads).", show_default=False)]
ColumnOpt = Annotated[str | None, typer.Option(help="--engine ray: the text column of a .jsonl / .parquet input "
                                                    "(default: text).", show_default=False)]


def check_engine(engine: str, address: str | None, actors: int | None, column: str | None,
                 device: str | None = None) -> bool:
    """True for --engine ray (once the 'ray' extra is found); the Ray-only options are refused with --engine local,
    --device with --engine ray (Ray actors run on their machines' CPUs)."""
    check_choice(engine, ENGINES, "engine")
    if engine == "local":
        given = [flag for flag, value in (("--address", address), ("--actors", actors), ("--column", column))
                 if value is not None]
        if given:
            raise MtstError(f"{given[0]} is for --engine ray; add --engine ray or drop {given[0]}")
        return False
    if device is not None:
        raise MtstError("--device is for --engine local; Ray actors run on the CPUs of the cluster")
    from mtst.extras import check

    check("ray", "--engine ray")
    return True


def ray_job(sentences: list[str] | None, input_path: str | None, output: Path | None, threads: int | None,
            actors: int | None, address: str | None):
    """The RayJob a command line describes (--input and --output are required: Ray reads and writes files)."""
    from mtst.integrations.ray_jobs import RayJob

    if sentences or input_path in (None, "-"):
        raise MtstError("--engine ray reads --input PATH (a text, .jsonl or .parquet file, or a folder of .parquet), "
                        "not sentences or stdin")
    if output is None:
        raise MtstError("--engine ray needs --output: OUT.npy, OUT.jsonl, OUT.parquet, or a new folder for parts")
    return RayJob(Path(input_path), output, address or "local", actors, threads or 1)


def show_progress() -> bool:
    return sys.stderr.isatty()
