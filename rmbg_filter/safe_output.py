"""Write an output file so that a failure never leaves half of it behind.

The writer gets a temporary path beside the destination; only when it
finishes is that file renamed over the destination. An existing destination is
refused unless overwriting was asked for.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .errors import InputError

__all__ = ["atomic_output"]


@contextlib.contextmanager
def atomic_output(destination: Path, *, overwrite: bool) -> Iterator[Path]:
    """Yield a temporary path (same folder, same suffix) renamed to ``destination`` on success.

    Raises InputError before any work if ``destination`` exists and
    ``overwrite`` is false, or if its folder does not exist.
    """
    if destination.exists() and not overwrite:
        raise InputError(f"{destination} already exists; pass --overwrite (or -y) to replace it")
    folder = destination.parent
    if not folder.is_dir():
        raise InputError(f"cannot write {destination}: folder {folder} does not exist")
    handle, name = tempfile.mkstemp(prefix=f".{destination.stem}.", suffix=f".partial{destination.suffix}",
                                    dir=folder)
    os.close(handle)
    temporary = Path(name)
    try:
        yield temporary
        os.replace(temporary, destination)
    finally:
        temporary.unlink(missing_ok=True)
