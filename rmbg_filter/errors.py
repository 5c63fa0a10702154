"""The errors this package raises for problems a user can fix.

The CLI prints their message as one line and exits with status 2 (InputError)
or 1 (ProcessingError).
"""

from __future__ import annotations

__all__ = ["InputError", "ModelLoadError", "ProcessingError", "first_line", "keyword_message"]


class InputError(Exception):
    """Bad input from the user (a file, an option, a stream): one line says what and what to do."""


class ProcessingError(Exception):
    """Work on valid-looking input failed part way (a decode error in the middle): exit status 1."""


class ModelLoadError(InputError):
    """The model could not be found, read or matched to RMBG-1.4."""


def first_line(error: BaseException) -> str:
    """The first non-empty line of an exception's message, or its type name."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


def keyword_message(error: BaseException) -> str:
    """``first_line`` of a ``load()`` error, worded for callers that take options as keywords.

    The core words its hints for the command line ("--model PATH") and marks
    load()'s own checks "load: "; the VapourSynth and GStreamer adapters take
    ``model=PATH`` and put their own name in front.
    """
    return first_line(error).removeprefix("load: ").replace("--model PATH", "model=PATH")
