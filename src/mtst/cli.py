"""The ``mtst`` command line: a thin layer that parses options and calls the library.

Every command shares one error rule, enforced once in ``MtstGroup.invoke``: a problem the user can
fix (MtstError, a pydantic ValidationError) becomes ONE line on stderr, ``error: ...``, exit code 1,
and no output file. Output files are written to a temp file beside the target, then renamed.
Commands living in other modules (train, evaluate, export, serve) register themselves at the end.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Callable, Iterable
from importlib import import_module
from importlib.util import find_spec
from pathlib import Path
from typing import IO, Annotated

import numpy as np
import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table
from rich.text import Text

from mtst.errors import MtstError

PROGRESS_THRESHOLD = 256  # inputs above this show a progress bar on stderr
TABLE_ROWS = 50  # rows shown by the readable table; files and JSON lines carry everything
ENCODE_FORMATS = ("table", "jsonl", "npy")
SUFFIX_FORMATS = {".npy": "npy", ".jsonl": "jsonl", ".ndjson": "jsonl"}


class MtstGroup(typer.core.TyperGroup):
    """Turns user errors from any subcommand into one ``error: ...`` line and exit code 1."""

    def invoke(self, ctx: typer.Context):
        try:
            return super().invoke(ctx)
        except MtstError as exc:
            _fail(str(exc))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            _fail(f"{where}: {first['msg']}" if where else first["msg"])


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
BatchOpt = Annotated[int, typer.Option(help="Sentences per forward pass.")]
BackendOpt = Annotated[str, typer.Option(help="auto | torch | onnx | openvino (all but torch need --model).")]
ThreadsOpt = Annotated[int | None, typer.Option(help="CPU threads for inference (default: all available cores).",
                                                show_default=False)]


# ---- input --------------------------------------------------------------------------------------
def _decode(data: bytes, source: str) -> list[str]:
    """UTF-8 bytes -> one sentence per line. Blank lines stay (line N = row N), a final newline does not."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise MtstError(f"{source} is not UTF-8 text (invalid byte at offset {exc.start}); "
                        "convert it, e.g. iconv -t utf-8") from exc
    if not text:
        return []
    lines = text.replace("\r\n", "\n").split("\n")
    return lines[:-1] if text.endswith("\n") else lines


def read_sentences(sentences: list[str] | None, input_path: str | None) -> list[str]:
    """Sentences from the arguments, a file, or stdin (``--input -``, or nothing given and stdin piped)."""
    if sentences and input_path is not None:
        raise MtstError("give sentences as arguments or with --input, not both")
    if sentences:
        return list(sentences)
    if input_path == "-" or (input_path is None and not sys.stdin.isatty()):
        stdin = getattr(sys.stdin, "buffer", None)  # bytes, so a bad encoding gets our one-line error
        return _decode(stdin.read() if stdin is not None else sys.stdin.read().encode("utf-8"), "stdin")
    if input_path is None:
        raise MtstError("no sentences: pass them as arguments, with --input FILE, or pipe them on stdin")
    path = Path(input_path)
    if not path.exists() or path.is_dir():
        raise MtstError(f"input file not found: {path}" + (" (it is a directory)" if path.is_dir() else ""))
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise MtstError(f"cannot read {path}: {exc.strerror}") from exc
    return _decode(data, str(path))


# ---- output -------------------------------------------------------------------------------------
def write_atomic(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    """Write via a temp file in the same folder, then rename: the target is never half-written."""
    if not path.parent.is_dir():
        raise MtstError(f"output folder not found: {path.parent}; create it first")
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temp, 0o666 & ~umask)  # mkstemp makes it private (0600); give it a normal file's mode
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def _jsonl_bytes(rows: Iterable[dict]) -> bytes:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows).encode("utf-8")


def _emit_jsonl(rows: list[dict], output: Path | None) -> None:
    if output is None:
        for row in rows:
            typer.echo(json.dumps(row, ensure_ascii=False))
    else:
        data = _jsonl_bytes(rows)
        write_atomic(output, lambda handle: handle.write(data))


def _wants_progress(texts: list[str]) -> bool:
    return len(texts) > PROGRESS_THRESHOLD and sys.stderr.isatty()  # a bar in a log file is noise


def _stdout_is_terminal() -> bool:
    return sys.stdout.isatty()


def _short(text: str, width: int = 40) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


# ---- models -------------------------------------------------------------------------------------
def _check_choice(value: str | None, choices: Iterable[str], option: str) -> None:
    choices = tuple(choices)
    if value is not None and value not in choices:
        raise MtstError(f"unknown {option} '{value}'; choose one of {', '.join(choices)}")


def load_encoder(model_dir: Path | None, backbone: str | None, pooling: str | None,
                 normalize: bool | None, max_seq_length: int | None, backend: str, threads: int | None = None):
    """--model DIR -> its predictor (any backend); otherwise a head-less model on a backbone."""
    from mtst.backends import BACKENDS, load_predictor
    from mtst.pooling import POOLINGS

    _check_choice(backend, BACKENDS, "backend")
    _check_choice(pooling, POOLINGS, "pooling")
    if max_seq_length is not None and max_seq_length < 2:
        raise MtstError(f"--max-seq-length must be at least 2 (room for [CLS] and [SEP]), got {max_seq_length}")
    if model_dir is not None:
        fixed = [flag for flag, value in (("--backbone", backbone), ("--pooling", pooling),
                                          ("--max-seq-length", max_seq_length)) if value is not None]
        if fixed:
            raise MtstError(f"{fixed[0]} cannot be combined with --model: a model directory fixes its encoder settings")
        return load_predictor(model_dir, backend, threads)
    if backend not in ("auto", "torch"):
        raise MtstError(f"--backend {backend} needs --model DIR (an exported mtst model); a backbone runs on torch")
    _torch_threads(threads)
    from mtst.model import MultiTaskModel

    return MultiTaskModel.from_backbone(backbone, pooling, normalize, max_seq_length)


def _torch_threads(threads: int | None) -> None:
    if threads is not None:
        if threads < 1:
            raise MtstError(f"--threads must be at least 1, got {threads}")
        import torch

        torch.set_num_threads(threads)


def load_task_model(model_dir: Path | None, backend: str, threads: int | None = None):
    """--model DIR, else the shipped default model, else the seeded untrained demo model (with a warning)."""
    from mtst.backends import BACKENDS, load_predictor
    from mtst.demo import DEMO_SEED, demo_model, trained_default_available

    _check_choice(backend, BACKENDS, "backend")
    if model_dir is not None or trained_default_available():
        return load_predictor(model_dir, backend, threads)
    if backend not in ("auto", "torch"):
        raise MtstError(f"--backend {backend} needs --model DIR: no trained default model is installed")
    _torch_threads(threads)
    typer.echo("warning: no trained default model is installed; using the demo model, whose heads are UNTRAINED "
               f"(random weights, seed {DEMO_SEED}); pass --model DIR for real predictions", err=True)
    return demo_model()


# ---- commands -----------------------------------------------------------------------------------
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
    batch_size: BatchOpt = 64,
    backend: BackendOpt = "auto",
    threads: ThreadsOpt = None,
    num_processes: Annotated[int, typer.Option("--num-processes", help="Worker processes for a file into .npy "
                                               "(threads are split between them).")] = 1,
) -> None:
    """Sentences -> fixed-length embeddings (a table, JSON lines or a .npy matrix)."""
    fmt = _encode_format(output_format, output)
    streams = fmt == "npy" and not sentences and input_path not in (None, "-")
    if num_processes < 1:
        raise MtstError(f"--num-processes must be at least 1, got {num_processes}")
    if num_processes > 1 and not streams:
        raise MtstError("--num-processes is for bulk encoding: pass --input FILE and --output OUT.npy")
    if streams:  # a file into .npy: stream it
        from mtst.bulk import Workers, encode_file  # bounded memory, resumable: rerun the same command after a kill

        predictor = load_encoder(model, backbone, pooling, normalize, max_seq_length, backend, threads)
        workers = Workers(num_processes, threads, None if model is None else str(model), backend, backbone,
                          pooling, normalize, max_seq_length) if num_processes > 1 else None
        encode_file(predictor, input_path, output, batch_size=batch_size, normalize=normalize,
                    show_progress=sys.stderr.isatty(), workers=workers)
        return
    texts = read_sentences(sentences, input_path)
    predictor = load_encoder(model, backbone, pooling, normalize, max_seq_length, backend, threads)
    embeddings = predictor.encode(texts, batch_size=batch_size, normalize=normalize,
                                  show_progress=_wants_progress(texts), convert_to="numpy")  # (N, H)
    embeddings = np.asarray(embeddings, dtype=np.float32)
    if fmt == "npy":
        write_atomic(output, lambda handle: np.save(handle, embeddings, allow_pickle=False))
    elif fmt == "jsonl":
        _emit_jsonl(({"text": t, "embedding": v.tolist()} for t, v in zip(texts, embeddings, strict=True)), output)
    else:
        _print_embedding_table(texts, embeddings)


def _encode_format(output_format: str | None, output: Path | None) -> str:
    _check_choice(output_format, ENCODE_FORMATS, "format")
    if output_format is None and output is not None:
        output_format = SUFFIX_FORMATS.get(output.suffix.lower())
        if output_format is None:
            raise MtstError(f"cannot tell the format from '{output.name}'; use a .npy or .jsonl name, or --format")
    if output_format is None:
        output_format = "table" if _stdout_is_terminal() else "jsonl"
    if output_format == "npy" and output is None:
        raise MtstError("--format npy needs --output FILE.npy")
    if output_format == "table" and output is not None:
        raise MtstError("--format table prints to the terminal; drop --output or use .npy / .jsonl")
    return output_format


def _print_embedding_table(texts: list[str], embeddings: np.ndarray) -> None:
    console = Console()
    table = Table(title=f"{len(texts)} sentence(s) -> embeddings of dimension {embeddings.shape[1]}")
    table.add_column("#", justify="right")
    table.add_column("sentence")
    table.add_column("first values")
    table.add_column("norm", justify="right")
    for index, (text, vector) in enumerate(zip(texts[:TABLE_ROWS], embeddings, strict=False)):
        values = " ".join(f"{v:+.4f}" for v in vector[:4]) + " …"
        table.add_row(str(index + 1), Text(_short(text)), values, f"{np.linalg.norm(vector):.3f}")
    console.print(table)
    if len(texts) > TABLE_ROWS:
        console.print(f"… {len(texts) - TABLE_ROWS} more; use --output FILE.npy or --format jsonl for all rows")


@app.command()
def similarity(
    sentences: SentencesArg = None,
    input_path: InputOpt = None,
    output_format: Annotated[str, typer.Option("--format", "-f", help="table | json")] = "table",
    model: ModelOpt = None,
    backbone: BackboneOpt = None,
    pooling: PoolingOpt = None,
    max_seq_length: MaxLenOpt = None,
    batch_size: BatchOpt = 64,
    backend: BackendOpt = "auto",
    threads: ThreadsOpt = None,
) -> None:
    """Cosine similarity matrix between sentences."""
    from mtst.demo import cosine_matrix

    _check_choice(output_format, ("table", "json"), "format")
    texts = read_sentences(sentences, input_path)
    predictor = load_encoder(model, backbone, pooling, None, max_seq_length, backend, threads)
    embeddings = np.asarray(predictor.encode(texts, batch_size=batch_size, convert_to="numpy"), dtype=np.float64)
    sims = cosine_matrix(embeddings)  # (N, N)
    if output_format == "json":
        typer.echo(json.dumps({"sentences": texts, "similarity": np.round(sims, 6).tolist()}, ensure_ascii=False))
        return
    table = Table(title="Cosine similarity")
    table.add_column("sentence", no_wrap=True)
    for col in range(len(texts)):
        table.add_column(str(col + 1), justify="right")
    for row, text in enumerate(texts):
        table.add_row(Text(f"{row + 1} {_short(text, 30)}"), *(f"{v:.3f}" for v in sims[row]))
    Console().print(table)


@app.command()
def predict(
    sentences: SentencesArg = None,
    input_path: InputOpt = None,
    model: ModelOpt = None,
    tasks: Annotated[str | None, typer.Option(help="Comma-separated tasks (default: all of the model's).")] = None,
    embedding: Annotated[bool, typer.Option("--embedding", help="Add each sentence's embedding.")] = False,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write JSON lines to this file.")] = None,
    batch_size: BatchOpt = 32,
    backend: BackendOpt = "auto",
    threads: ThreadsOpt = None,
) -> None:
    """Every task head's predictions as JSON lines, one per sentence (one forward pass each)."""
    texts = read_sentences(sentences, input_path)
    predictor = load_task_model(model, backend, threads)
    wanted = None if tasks is None else [t.strip() for t in tasks.split(",") if t.strip()]
    for task in wanted or []:
        if task not in predictor.tasks:
            known = ", ".join(predictor.tasks) or "none (this model has no heads)"
            raise MtstError(f"unknown task '{task}'; this model's tasks are: {known}")
    rows = predictor.predict(texts, tasks=wanted, batch_size=batch_size, include_embedding=embedding,
                             show_progress=_wants_progress(texts))
    _emit_jsonl(rows, output)


@app.command()
def info(
    directory: Annotated[Path | None, typer.Argument(help="Model or backbone directory (default: the default model).",
                                                     show_default=False)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable JSON.")] = False,
) -> None:
    """What a model directory holds: encoder settings, tasks, heads, labels, trained or not."""
    from mtst.model_info import describe, print_info

    facts = describe(directory)
    if as_json:
        typer.echo(json.dumps(facts, indent=2, ensure_ascii=False))
    else:
        print_info(facts)


@app.command()
def demo(
    backbone: BackboneOpt = None,
) -> None:
    """The showcase: sample sentences, embeddings, similarities and every head's predictions (identical each run)."""
    from mtst.demo import demo_model, render_demo, seeded_model

    model = demo_model() if backbone is None else seeded_model(backbone)
    render_demo(Console(), model)


# ---- commands from other modules (each exposes register(app)) -----------------------------------
for _module in ("mtst.cli_train", "mtst.cli_evaluate", "mtst.cli_export", "mtst.cli_serve"):
    if find_spec(_module) is not None:
        import_module(_module).register(app)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
