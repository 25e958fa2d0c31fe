"""``mtst demo``: the showcase (mtst.cli.showcase) on the shipped model, or on seeded heads over a backbone."""

from __future__ import annotations

import typer
from rich.console import Console

from mtst.cli.app import BackboneOpt, DeviceOpt, PrecisionOpt, ThreadsOpt


def register(app: typer.Typer) -> None:
    @app.command()
    def demo(
        backbone: BackboneOpt = None,
        threads: ThreadsOpt = None,
        device: DeviceOpt = None,
        precision: PrecisionOpt = "auto",
    ) -> None:
        """The showcase: sample sentences, embeddings, similarities and every head's predictions (same every run)."""
        from mtst.cli.loading import torch_threads
        from mtst.cli.showcase import demo_model, render_demo, seeded_model

        torch_threads(threads)
        model = demo_model() if backbone is None else seeded_model(backbone)
        model.use_precision(precision)
        if device is not None:
            from mtst.model.devices import resolve_device

            model = model.to(resolve_device(device))
        render_demo(Console(), model)
