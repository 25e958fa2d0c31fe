"""``mtst demo``: the showcase (mtst.cli.showcase) on the shipped model, or on seeded heads over a backbone."""

from __future__ import annotations

import typer
from rich.console import Console

from mtst.cli.app import BackboneOpt


def register(app: typer.Typer) -> None:
    @app.command()
    def demo(
        backbone: BackboneOpt = None,
    ) -> None:
        """The showcase: sample sentences, embeddings, similarities and every head's predictions (same every run)."""
        from mtst.cli.showcase import demo_model, render_demo, seeded_model

        model = demo_model() if backbone is None else seeded_model(backbone)
        render_demo(Console(), model)
