"""One exception type for problems the user can fix; the CLI prints it as one line."""

from __future__ import annotations


class MtstError(Exception):
    """A user-facing error: the message names the problem and the fix."""
