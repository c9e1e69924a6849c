"""The exception raised for a mistake in the user's input.

This module imports nothing from showerforge, so every module (including those that must
not import torch) can raise :class:`UserError`.
"""

from __future__ import annotations

__all__ = ["UserError"]


class UserError(ValueError):
    """A mistake in the user's input: a file, an option or an argument.

    The message names the file or option and the field, and says what was expected, e.g.
    ``--energy: '10 GeVs' is not an energy; expected a number with a unit such as 10GeV``.
    The command line prints it as one line ``error: <message>`` and exits with code 2,
    without a traceback; every other exception keeps its traceback.

    It subclasses :class:`ValueError`, so library callers that catch ``ValueError`` keep
    working.
    """
