"""One exception type for problems the user can fix; the CLI prints it as one line."""

from __future__ import annotations


class MtstError(Exception):
    """A user-facing error: the message names the problem and the fix."""


def first_line(exc: BaseException) -> str:
    """A library exception's message cut to one line (or its type name when it has none)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
