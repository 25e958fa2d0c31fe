"""``mtst info``: what a model directory holds (encoder settings, tasks, heads, labels), without loading weights."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text


def register(app: typer.Typer) -> None:
    @app.command()
    def info(
        directory: Annotated[Path | None, typer.Argument(
            help="Model or backbone directory (default: the default model).", show_default=False)] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Machine-readable JSON.")] = False,
        output: Annotated[Path | None, typer.Option("--output", "-o", help="Write the JSON to this file.")] = None,
    ) -> None:
        """What a model directory holds: encoder settings, tasks, heads, labels, trained or not."""
        from mtst.files import write_text
        from mtst.inference.describe import describe

        facts = describe(directory)
        if directory is not None and facts["kind"].startswith("mtst openvino export"):
            from mtst.inference.export_probe import describe_choice

            facts["cpu_path"] = describe_choice(directory)  # the probe's precision and batch sizes for it here
        if output is not None:
            write_text(output, json.dumps(facts, indent=2, ensure_ascii=False) + "\n")
        elif as_json:
            typer.echo(json.dumps(facts, indent=2, ensure_ascii=False))
        else:
            print_info(facts)


def print_info(facts: dict) -> None:
    """The facts as a Rich summary and a table of tasks."""
    console = Console()
    summary = Table(show_header=False, box=None)
    summary.add_column(style="bold")
    summary.add_column(overflow="fold")
    for key in ("note", "path", "kind", "backbone", "backbone_sha256", "architecture", "layers", "hidden_size",
                "parameters", "branch_at", "branch_layers", "branch_parameters", "branch_dtype", "pooling", "normalize",
                "max_seq_length", "embedding_max_seq_length", "trained", "cpu_path"):
        if facts.get(key) is not None:
            summary.add_row(key, Text(str(facts[key])))
    console.print(summary)
    if facts["kind"] == "backbone":
        console.print("tasks: none (a plain backbone; add heads with MultiTaskModel.from_backbone(...).add_head)")
        return
    if not facts["tasks"]:
        console.print("tasks: none")
        return
    table = Table(title="tasks")
    for column in ("task", "type", "sizes", "parameters"):
        table.add_column(column, no_wrap=True)
    table.add_column("labels", overflow="fold")
    for name, task in facts["tasks"].items():
        table.add_row(Text(name), task["type"], task["sizes"], str(task["parameters"] or "-"),
                      Text(", ".join(task["labels"])))
    console.print(table)
