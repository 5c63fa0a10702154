"""Write an output file so that a failure never leaves half of it behind.

The writer gets a temporary path beside the destination; only when it
finishes is that file renamed over the destination. An existing destination is
refused unless overwriting was asked for. A process killed outright (SIGKILL)
leaves its temporary behind: ``remove_stale_temporaries`` finds those of one
destination by their names, so that a retry can clear them first.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from ..errors import InputError

__all__ = ["atomic_folder", "atomic_output", "atomic_sequence", "check_destination", "is_pattern", "is_temporary",
           "remove_stale_temporaries"]


#: a numbered image sequence's counter, as ffmpeg writes it: %d or %05d (a lone % is part of a name)
_COUNTER = re.compile(r"%0?\d*d")


def is_pattern(destination: Path) -> bool:
    """Whether the destination names an image sequence (``out_%05d.png``), not a file such as ``100%.mov``."""
    return _COUNTER.search(destination.name) is not None


def check_destination(destination: Path, *, overwrite: bool) -> None:
    """Raise InputError if ``destination`` (a file, or a ``%d`` pattern's first file) exists
    and ``overwrite`` is false, or if its folder does not exist or is not writable."""
    first = destination.parent / _COUNTER.sub(lambda m: m.group() % 1, destination.name, count=1) \
        if is_pattern(destination) else destination
    if first.exists() and not overwrite:
        raise InputError(f"{first} already exists; pass --overwrite (or -y) to replace it")
    if not destination.parent.is_dir():
        raise InputError(f"cannot write {destination}: folder {destination.parent} does not exist")
    if not os.access(destination.parent, os.W_OK):  # read-only mounts too; asked before any work
        raise InputError(f"cannot write {destination}: folder {destination.parent} is not writable "
                         "(its permissions, or a read-only disk); write elsewhere")


@contextlib.contextmanager
def atomic_output(destination: Path, *, overwrite: bool) -> Iterator[Path]:
    """Yield a temporary path (same folder, same suffix) renamed to ``destination`` on success.

    Raises InputError before any work if ``destination`` exists and
    ``overwrite`` is false, or if its folder does not exist.
    """
    check_destination(destination, overwrite=overwrite)
    handle, name = tempfile.mkstemp(prefix=f".{destination.stem}.{_MARK}", suffix=f".partial{destination.suffix}",
                                    dir=destination.parent)
    os.close(handle)
    temporary = Path(name)
    try:
        yield temporary
        os.chmod(temporary, 0o666 & ~_umask())  # mkstemp made it private (0600); give it a new file's mode
        os.replace(temporary, destination)
    finally:
        temporary.unlink(missing_ok=True)


def _umask() -> int:
    """The process's umask (read by setting it, then putting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_sequence(pattern: Path, *, overwrite: bool) -> Iterator[Path]:
    """Yield a pattern (``out_%05d.png``) inside a temporary folder beside ``pattern``.

    On success every file written there is moved beside ``pattern``; on failure
    the folder goes. An existing first file (number 1) is refused unless
    ``overwrite``.
    """
    check_destination(pattern, overwrite=overwrite)
    with tempfile.TemporaryDirectory(prefix=".rmbg-partial-", dir=pattern.parent) as folder:
        yield Path(folder) / pattern.name
        for written in sorted(Path(folder).iterdir()):
            os.replace(written, pattern.parent / written.name)


@contextlib.contextmanager
def atomic_folder(destination: Path) -> Iterator[Path]:
    """Yield a temporary folder beside ``destination`` that replaces it, whole, on success.

    A folder already at ``destination`` is moved aside, the new one renamed in (the old one is put
    back if that fails), and the old one deleted: readers see the old folder or the new one, never
    a mix (for an instant, neither). On failure the temporary goes.
    """
    check_destination(destination, overwrite=True)  # its folder must exist; replacing is the point
    temporary = _temporary_folder(destination, "partial")
    try:
        yield temporary
        os.chmod(temporary, 0o777 & ~_umask())
        if not destination.exists():
            os.replace(temporary, destination)
            return
        old = _temporary_folder(destination, "old")
        os.replace(destination, old / destination.name)
        try:
            os.replace(temporary, destination)
        except BaseException:
            os.replace(old / destination.name, destination)
            os.rmdir(old)
            raise
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(temporary, ignore_errors=True)


#: what every temporary name here carries after the destination's name, before 8 random characters:
#: ``.clip.rmbg-x1y2z3w4.partial.mov``; ``remove_stale_temporaries`` matches nothing else
_MARK = "rmbg-"


def _temporary_folder(destination: Path, kind: str) -> Path:
    """A new folder ``.NAME.rmbg-XXXXXXXX.KIND`` beside ``destination``."""
    return Path(tempfile.mkdtemp(prefix=f".{destination.name}.{_MARK}", suffix=f".{kind}", dir=destination.parent))


#: a temporary's name: the destination's name (for a file, its stem, with its suffix after ``partial``)
_TEMPORARY = re.compile(rf"\.(?P<name>.+)\.{_MARK}[a-z0-9_]{{8}}\.(?:partial(?P<suffix>\.[^.]+)?|old)")


def is_temporary(path: Path) -> bool:
    """Whether ``path`` is named as this module's temporary files and folders are."""
    return _TEMPORARY.fullmatch(path.name) is not None


def remove_stale_temporaries(destinations: Iterable[Path]) -> list[Path]:
    """Delete what killed writers of ``destinations`` left beside them; returns what was deleted.

    Those are ``atomic_output``'s temporary files, ``.STEM.rmbg-XXXXXXXX.partial.SUFFIX``, and
    ``atomic_folder``'s folders, ``.NAME.rmbg-XXXXXXXX.partial`` and ``.old`` (8 random characters):
    ``a.mov``'s never match ``a.b.mov``'s. One pass over each folder. Only for destinations that no
    live process is writing.
    """
    names: dict[Path, set[str]] = {}
    for destination in destinations:
        names.setdefault(destination.parent, set()).add(destination.name)
    removed = []
    for folder, wanted in names.items():
        if not folder.is_dir():
            continue
        for path in folder.iterdir():
            match = _TEMPORARY.fullmatch(path.name)
            if match and match["name"] + (match["suffix"] or "") in wanted:
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)
                removed.append(path)
    return removed
