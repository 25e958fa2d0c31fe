"""``python -m mtst.cli ...``: the same as the ``mtst`` command."""

from mtst.cli import app

app()
