"""The one Typer app every command registers on, its error rule and the options commands share.

Every command shares one error rule, enforced once in ``MtstGroup.invoke``: a problem the user can
fix (MtstError, a pydantic ValidationError, a missing optional library: ``mtst.extras``) becomes ONE line on
stderr, ``error: ...``, exit code 1, and no output file.

Every command that writes a file takes ``--output/-o``; every command that runs a model takes ``--threads`` and
(where PyTorch runs it for inference) ``--device`` and ``--precision``. Only typer, rich and mtst.errors are
imported here, so ``--help`` is fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mtst.errors import MtstError


class MtstGroup(typer.core.TyperGroup):
    """Turns user errors from any subcommand into one ``error: ...`` line and exit code 1."""

    def invoke(self, ctx: typer.Context):
        from pydantic import ValidationError  # here, not at the top: pydantic is not needed for --help

        try:
            return super().invoke(ctx)
        except MtstError as exc:
            _fail(str(exc))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            _fail(f"{where}: {first['msg']}" if where else first["msg"])
        except ModuleNotFoundError as exc:  # an optional library imported deep inside: name the extra that brings it
            from mtst.extras import extra_for, message

            extra = extra_for(exc.name or "")
            if extra is None:
                raise
            _fail(message(extra, f"mtst {ctx.invoked_subcommand or ''}".strip(), exc.name))


def _fail(message: str) -> None:
    one_line = " ".join(message.split())  # never more than one line, whatever the message holds
    typer.echo(f"error: {one_line}", err=True)
    raise typer.Exit(1)


app = typer.Typer(
    cls=MtstGroup,
    help="mtst: one shared sentence encoder -> embeddings + every task head in one forward pass.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)


def _print_version(value: bool) -> None:
    if value:
        from mtst import __version__

        typer.echo(f"mtst {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True,
                                          help="Print mtst's version and exit.")] = False,
) -> None:
    pass

# ---- shared options -----------------------------------------------------------------------------
SentencesArg = Annotated[list[str] | None, typer.Argument(help="Sentences (or use --input / stdin).",
                                                         show_default=False)]
InputOpt = Annotated[str | None, typer.Option("--input", "-i", help="UTF-8 text file, one sentence per line; "
                                                                    "'-' = stdin.")]
ModelOpt = Annotated[Path | None, typer.Option("--model", "-m", help="mtst model directory (save / train / export).")]
BackboneOpt = Annotated[str | None, typer.Option(help="Local backbone directory (HF or sentence-transformers); "
                                                      "default all-MiniLM-L6-v2.")]
PoolingOpt = Annotated[str | None, typer.Option(help="mean | cls | max (default: what the backbone says).")]
NormalizeOpt = Annotated[bool | None, typer.Option("--normalize/--no-normalize", help="L2-normalise embeddings.",
                                                   show_default=False)]
MaxLenOpt = Annotated[int | None, typer.Option(help="Truncate inputs to this many tokens.")]
BatchOpt = Annotated[int | None, typer.Option(help="Sentences per forward pass (default: the batching `mtst bench "
                                                  "--probe` measured fastest here, else 32).", show_default=False)]
BackendOpt = Annotated[str, typer.Option(help="auto | torch | onnx | openvino (all but torch need --model).")]
ThreadsOpt = Annotated[int | None, typer.Option(help="CPU threads for inference (default: all available cores).",
                                                show_default=False)]
DeviceOpt = Annotated[str | None, typer.Option(help="auto | cpu | cuda | cuda:N | mps, PyTorch only (default: the "
                                                    "CPU; auto: CUDA, then MPS, then the CPU).", show_default=False)]
PrecisionOpt = Annotated[str, typer.Option(help="auto | fp32 | bf16: how PyTorch runs on the CPU (auto: the path "
                                                "`mtst bench --probe` measured fastest and lossless here, else fp32); "
                                                "OpenVINO exports the same (auto: the probe's choice, else OpenVINO's "
                                                "default); ONNX exports run at their own precision (auto only).")]
