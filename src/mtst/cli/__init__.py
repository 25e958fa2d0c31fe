"""The ``mtst`` command line: a thin layer that parses options and calls the library.

One Typer app (``mtst.cli.app``) carries the shared error rule and options; each command lives in a
module of its own here and adds itself with ``register(app)``. Commands import the library lazily, inside
the command, so ``mtst --help`` stays fast. This package may import everything below it (model, data,
training, inference, serving); nothing imports it.
"""

from __future__ import annotations

from mtst.cli import bench, calibrate, demo, encode, evaluate, export, few_shot, info, predict, serve, similarity, train
from mtst.cli.app import app

for _command in (encode, similarity, predict, info, demo, train, evaluate, calibrate, few_shot, export, serve, bench):
    _command.register(app)

__all__ = ["app"]
