"""One file of ``rmbg-filter batch``: its settings, its task, its manifest record, and its conversion.

What the batch driver (``batch``) and the Ray workers (``batch_ray``) share; it imports neither.
A task is one whole input file (its temporal window and its encoder need every frame, in order);
converting it runs the ``video`` job and always ends in a record, done or failed.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import InputError, ProcessingError, first_line
from ..options import ModelOptions
from .encodings import choose_encoding
from .safe_output import atomic_folder, remove_stale_temporaries
from .video import VideoJob, VideoOptions

if TYPE_CHECKING:
    from ..engine import BackgroundRemover

__all__ = ["PNG_PATTERN", "STATUSES", "BatchSettings", "Record", "Task", "convert", "failed_record", "fingerprint",
           "recorded_output"]

#: the pictures of a png output folder
PNG_PATTERN = "%05d.png"
#: what a record's ``status`` may be
STATUSES = ("done", "failed", "skipped")


@dataclass(frozen=True)
class BatchSettings:
    """What every file of a batch is made with: the output folder and format, and ``video``'s options.

    ``video.overwrite`` and ``video.progress`` are ignored: the plan decides what may be replaced,
    and the batch shows its own progress.
    """

    out_dir: Path
    format: str
    video: VideoOptions
    model: ModelOptions

    def output_of(self, source: Path) -> Path:
        """Where ``source``'s result goes: ``DIR/<stem>.<format>``, or the folder ``DIR/<stem>`` for png."""
        return self.out_dir / (source.stem if self.format == "png" else f"{source.stem}.{self.format}")

    @functools.cached_property
    def digest(self) -> str:
        """A short hash of everything that shapes an output (format, modes, codec, model and quality
        options, the background picture's content): a rerun with other settings redoes the files.
        Computed once (it reads the background picture), not once per record."""
        video = dataclasses.replace(self.video, overwrite=False, progress=False)
        image = self.video.mode.image
        background = fingerprint(image)[1] if image is not None and image.is_file() else None
        text = json.dumps([self.format, repr(video), repr(self.model), background])
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def check(self) -> None:
        """Raise InputError if the format cannot hold what ``--output`` makes, or ``--crf`` does not apply:
        once for the batch, rather than once per file."""
        probe = self.out_dir / (f"x/{PNG_PATTERN}" if self.format == "png" else f"x.{self.format}")
        video = self.video
        choose_encoding(probe, video.mode, "yuv420p", (64, 64), codec=video.codec, pix_fmt=video.pix_fmt,
                        crf=video.crf)


@dataclass(frozen=True)
class Task:
    """One input to convert, as absolute paths every worker can reach: ``output`` is a file, or the
    png folder."""

    input: str
    output: str


#: One manifest line. ``input``, ``output`` (the png pattern for png); ``status`` done, failed or
#: skipped; ``frames`` written (for skipped, those of the run that made it); ``seconds`` of work;
#: ``error`` the one-line message or None; and what reruns compare: ``size``, ``sha256`` (None
#: when the input could not be read), ``settings`` (``BatchSettings.digest``); ``host`` that did it;
#: ``refused`` (only present, true, on a refusal to replace an output this input did not make).
Record = dict[str, Any]


def recorded_output(settings: BatchSettings, output: str) -> str:
    """What a record says was written for ``output``: the file, or the png folder's pattern."""
    return str(Path(output) / PNG_PATTERN) if settings.format == "png" else output


def fingerprint(path: Path) -> tuple[int, str]:
    """The size in bytes and SHA-256 (hex) of the file at ``path``; OSError if it cannot be read."""
    with path.open("rb") as file:
        digest = hashlib.file_digest(file, "sha256").hexdigest()
    return path.stat().st_size, digest


def _record(task: Task, settings: BatchSettings, status: str, *, frames: int = 0, seconds: float = 0.0,
            error: str | None = None, size: int | None = None, sha256: str | None = None) -> Record:
    return {"input": task.input, "output": recorded_output(settings, task.output), "status": status,
            "frames": frames, "seconds": round(seconds, 3), "error": error, "size": size, "sha256": sha256,
            "settings": settings.digest, "host": socket.gethostname()}


def convert(remover: BackgroundRemover, task: Task, settings: BatchSettings,
            on_frame: Callable[[], None] | None = None) -> Record:
    """Run the ``video`` job on one task; its record, failed with the one-line error if anything went wrong.

    What killed writers of the same output left (SIGKILL) is cleared first. Interrupts propagate.
    """
    started = time.monotonic()
    output = Path(task.output)
    size = sha256 = None
    try:
        size, sha256 = fingerprint(Path(task.input))
        remove_stale_temporaries([output])
        frames = _write(remover, Path(task.input), output, settings, on_frame)
    except (InputError, ProcessingError) as error:
        message = str(error)
    except OSError as error:
        message = f"{type(error).__name__}: {first_line(error)}"
    except Exception as error:  # one file's failure never stops the others
        message = f"unexpected {type(error).__name__}: {first_line(error)}"
    else:
        return _record(task, settings, "done", frames=frames, seconds=time.monotonic() - started,
                       size=size, sha256=sha256)
    return _record(task, settings, "failed", seconds=time.monotonic() - started, error=message,
                   size=size, sha256=sha256)


def failed_record(task: Task, settings: BatchSettings, error: str) -> Record:
    """The record of a task that failed without its worker saying so (the worker died, or the job did)."""
    return _record(task, settings, "failed", error=error)


def _write(remover: BackgroundRemover, source: Path, output: Path, settings: BatchSettings,
           on_frame: Callable[[], None] | None) -> int:
    """Write ``output`` from ``source`` (replacing it: the plan allowed it); returns the frames written."""
    options = dataclasses.replace(settings.video, overwrite=True, progress=False)
    if settings.format != "png":
        with VideoJob(source, output, options) as job:
            return job.run(remover, on_frame=on_frame)
    with atomic_folder(output) as folder, VideoJob(source, folder / PNG_PATTERN, options) as job:
        return job.run(remover, on_frame=on_frame)
