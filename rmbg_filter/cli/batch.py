"""``rmbg-filter batch``: many files, each through the ``video`` job, with a manifest that makes reruns cheap.

The unit of work is one whole file (its temporal window and its encoder need
every frame, in order). Each input ``clip.mp4`` becomes ``DIR/clip.FORMAT``, or
the folder ``DIR/clip/`` of ``%05d.png`` for png, written atomically.
``DIR/manifest.jsonl`` gets one JSON object per input and run (see ``Record``);
a rerun skips an input whose last record is done (or skipped) for the same
content (size and SHA-256), the same settings and an output still there, and
retries the rest. Here the files run one after another in this process; with
``--ray`` they run on a Ray cluster (``batch_ray``), one file per task.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import functools
import glob
import hashlib
import itertools
import json
import os
import socket
import sys
import time
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from ..errors import InputError, ProcessingError, first_line, system_reason
from ..options import ModelOptions
from .encodings import choose_encoding
from .safe_output import atomic_folder, remove_stale_temporaries
from .video import VideoJob, VideoOptions

if TYPE_CHECKING:
    from ..engine import BackgroundRemover

__all__ = ["FORMATS", "BatchProgress", "BatchSettings", "Manifest", "Record", "Task", "convert", "expand_inputs",
           "failed_record", "plan", "run_batch"]

#: what ``--format`` may be: a video container, or png for a folder of numbered PNGs per input
FORMATS = ("mov", "webm", "mkv", "png")
#: the files a folder given as INPUT contributes (its other files, such as notes, are not videos)
VIDEO_SUFFIXES = frozenset((".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mxf", ".ts", ".mts", ".m2ts",
                            ".mpg", ".mpeg", ".wmv", ".flv", ".3gp", ".ogv", ".y4m", ".gif", ".nut"))
_PNG_PATTERN = "%05d.png"
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
        probe = self.out_dir / (f"x/{_PNG_PATTERN}" if self.format == "png" else f"x.{self.format}")
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


def _recorded_output(settings: BatchSettings, output: str) -> str:
    return str(Path(output) / _PNG_PATTERN) if settings.format == "png" else output


def expand_inputs(words: Iterable[str], settings: BatchSettings) -> list[Path]:
    """The files INPUT words name, in order, each once, as absolute paths (symlinks kept: a link's
    own name names its output).

    A word is a file, a folder (its files with a video suffix, not its subfolders) or a glob
    (``clips/**/*.mp4``; for shells that did not expand it). Raises InputError for a word that
    names nothing, an input inside the output folder itself (outputs would become inputs), two
    inputs whose outputs would collide (or one whose output would be the manifest), or no input.
    """
    found: list[Path] = []
    for word in words:
        path = Path(word)
        if path.is_file():
            found.append(path)
        elif path.is_dir():
            found.extend(sorted(child for child in path.iterdir()
                                if child.is_file() and child.suffix.lower() in VIDEO_SUFFIXES
                                and not child.name.startswith(".")))
        elif glob.has_magic(word):
            matches = [Path(match) for match in sorted(glob.glob(word, recursive=True)) if Path(match).is_file()]
            if not matches:
                raise InputError(f"{word} matches no file")
            found.extend(matches)
        else:
            raise InputError(f"input not found: {word}")
    unique = list(dict.fromkeys(Path(os.path.abspath(path)) for path in found))
    if not unique:
        raise InputError("no video file in the inputs given (a folder contributes its files ending in "
                         f"{', '.join(sorted(VIDEO_SUFFIXES)[:4])}, ...)")
    outputs: dict[Path, Path] = {}
    for path in unique:
        output = settings.output_of(path)
        if path.parent == settings.out_dir:
            raise InputError(f"{path} is inside --out-dir {settings.out_dir}; keep inputs and outputs in "
                             "different folders")
        if output.name == Manifest.NAME:
            raise InputError(f"{path} would be written over the manifest; rename it")
        if output in outputs:
            raise InputError(f"{outputs[output]} and {path} would both be written as {output}; rename one or "
                             "run them in separate batches")
        outputs[output] = path
    return unique


def fingerprint(path: Path) -> tuple[int, str]:
    """The size in bytes and SHA-256 (hex) of the file at ``path``; OSError if it cannot be read."""
    with path.open("rb") as file:
        digest = hashlib.file_digest(file, "sha256").hexdigest()
    return path.stat().st_size, digest


def _exists(output: Path) -> bool:
    """Whether an output file, or a png folder with at least its first picture, is there."""
    return (output / (_PNG_PATTERN % 1)).is_file() if output.is_dir() else output.is_file()


class Manifest:
    """``DIR/manifest.jsonl``: appended to, one line per record, each flushed to disk as it comes.

    One batch at a time writes it: ``appending`` holds an exclusive lock on it for the run.
    """

    NAME = "manifest.jsonl"

    def __init__(self, out_dir: Path) -> None:
        self.path = out_dir / self.NAME

    def records(self) -> list[Record]:
        """Every well-formed record, oldest first. Lines that do not parse (a write cut by a crash, an
        edit) or lack a field that reruns read are passed over."""
        if not self.path.is_file():
            return []
        records = []
        with self.path.open(encoding="utf-8", errors="replace") as file:
            for line in file:
                with contextlib.suppress(ValueError):
                    record = json.loads(line)
                    if _well_formed(record):
                        records.append(record)
        return records

    @contextlib.contextmanager
    def appending(self) -> Iterator[Callable[[Record], None]]:
        """Lock the manifest and yield a function that appends one record and syncs it; the folder is
        made if needed. Raises InputError when the manifest cannot be written, or another batch has it."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            file = self.path.open("a", encoding="utf-8")
        except OSError as error:
            raise InputError(f"cannot write {self.path} ({system_reason(error)}); give a writable --out-dir") from error
        with file:
            try:
                fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise InputError(f"another rmbg-filter batch is writing to {self.path.parent}; wait for it to "
                                 "finish or give another --out-dir") from None
            if file.tell() and not self._ends_with_newline():
                file.write("\n")  # a crash cut the last line: start a fresh one

            def append(record: Record) -> None:
                file.write(json.dumps(record) + "\n")
                file.flush()
                os.fsync(file.fileno())

            yield append

    def _ends_with_newline(self) -> bool:
        with self.path.open("rb") as file:
            file.seek(-1, os.SEEK_END)
            return file.read(1) == b"\n"


def _well_formed(record: object) -> bool:
    """Whether a parsed line is a record that reruns can read: paths and status as written here."""
    return isinstance(record, dict) and isinstance(record.get("input"), str) \
        and isinstance(record.get("output"), str) and record.get("status") in STATUSES


def plan(inputs: list[Path], settings: BatchSettings, previous: list[Record], *,
         overwrite: bool) -> tuple[list[Task], list[Record]]:
    """The tasks to run, and the records of inputs decided without work (skipped, or refused).

    ``previous``: the manifest's records, oldest first. An output's maker is the last record for
    it that is not a refusal. Skipped: the input's last record is done or skipped and is its
    output's maker (no other run wrote there since), for the same size, SHA-256 and settings, and
    the output is still there. Refused (failed, ``refused`` true): the output exists and this
    input is not its maker (another input's, or not this batch's), unless ``overwrite``. The file
    is hashed only when all else matches.
    """
    digest = settings.digest
    last_of_input = {record["input"]: record for record in previous}
    maker_of_output = {record["output"]: record for record in previous if not record.get("refused")}
    tasks: list[Task] = []
    decided: list[Record] = []
    for path in inputs:
        output = settings.output_of(path)
        task = Task(str(path), str(output))
        last = last_of_input.get(task.input)
        maker = maker_of_output.get(_recorded_output(settings, task.output))
        if last is not None and last is maker and last["status"] in ("done", "skipped") \
                and last.get("settings") == digest and _exists(output) and _same_content(path, last):
            decided.append({**last, "status": "skipped", "seconds": 0.0, "error": None,
                            "host": socket.gethostname()})
        elif output.exists() and not overwrite and (maker is None or maker["input"] != task.input):
            whose = "this batch's manifest did not make it" if maker is None else f"it was made from {maker['input']}"
            decided.append({**failed_record(task, settings, f"{output} already exists and {whose}; remove it or "
                                                            "pass --overwrite (or -y)"), "refused": True})
        else:
            tasks.append(task)
    return tasks, decided


def _same_content(path: Path, record: Record) -> bool:
    try:
        return path.stat().st_size == record.get("size") and fingerprint(path) == (record.get("size"),
                                                                                     record.get("sha256"))
    except OSError:
        return False


def _record(task: Task, settings: BatchSettings, status: str, *, frames: int = 0, seconds: float = 0.0,
            error: str | None = None, size: int | None = None, sha256: str | None = None) -> Record:
    return {"input": task.input, "output": _recorded_output(settings, task.output), "status": status,
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
    with atomic_folder(output) as folder, VideoJob(source, folder / _PNG_PATTERN, options) as job:
        return job.run(remover, on_frame=on_frame)


def run_here(tasks: list[Task], settings: BatchSettings, load: Callable[[], BackgroundRemover],
             progress: BatchProgress) -> Generator[Record, None, None]:
    """Convert the tasks one after another in this process, the model loaded once (when the first task needs it)."""
    remover = load() if tasks else None
    for task in tasks:
        progress.start_file(Path(task.input).name)
        yield convert(remover, task, settings, on_frame=progress.frame)


class BatchProgress:
    """``[#####...] 3/6 files  1200 frames  2 failed  clip.mp4`` on one line of a terminal; silent elsewhere."""

    def __init__(self, total: int, *, shown: bool, stream: IO[str] = sys.stderr) -> None:
        self.total, self.shown, self.stream = total, shown, stream
        self.files = self.frames = self.failed = 0
        self.current = ""
        self._drawn = 0.0

    def start_file(self, name: str) -> None:
        self.current = name
        self._draw(force=True)

    def frame(self) -> None:
        """Count one frame written (here: as it is encoded)."""
        self.frames += 1
        self._draw()

    def add_frames(self, count: int) -> None:
        """Count a finished file's frames at once (on a cluster, where frames are not seen one by one)."""
        self.frames += count

    def file_done(self, record: Record) -> None:
        """Count a finished file, and a failure."""
        self.files += 1
        self.failed += record["status"] == "failed"
        self._draw(force=True)

    def _draw(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not self.shown or (not force and now - self._drawn < 0.25):
            return
        self._drawn = now
        filled = int(24 * self.files / max(self.total, 1))
        failed = f"  {self.failed} failed" if self.failed else ""
        self.stream.write(f"\r[{'#' * filled}{'.' * (24 - filled)}] {self.files}/{self.total} files  "
                          f"{self.frames} frames{failed}  {self.current}\033[K")
        self.stream.flush()

    def clear(self) -> None:
        """Blank the line, so that a message can be printed on it."""
        if self.shown:
            self.stream.write("\r\033[K")
            self.stream.flush()


def run_batch(words: list[str], settings: BatchSettings, load: Callable[[], BackgroundRemover], *,
              overwrite: bool, ray: str | None, workers: int | None, shown: bool) -> dict[str, int]:
    """Expand, plan and run a batch, appending every record to the manifest as it comes; returns how
    many inputs ended ``done``, ``skipped`` and ``failed``.

    ``ray``: None runs here (``load`` gives the model, called only if a file needs it), else the
    cluster address for ``batch_ray``. Each failure is also a line on stderr as it happens. Usage
    problems (no inputs, an unwritable folder, a format that cannot hold the output, no cluster)
    raise InputError before any file is touched. What killed writers left beside the outputs
    (SIGKILL) is swept first, under the manifest's lock.
    """
    settings.check()
    if ray is not None:
        from .batch_ray import check_cluster

        check_cluster(ray)
    inputs = expand_inputs(words, settings)
    manifest = Manifest(settings.out_dir)
    counts = dict.fromkeys(STATUSES, 0)
    progress = BatchProgress(len(inputs), shown=shown)
    with manifest.appending() as append:
        remove_stale_temporaries(settings.output_of(path) for path in inputs)
        tasks, decided = plan(inputs, settings, manifest.records(), overwrite=overwrite)
        if ray is None:
            records = run_here(tasks, settings, load, progress)
        else:
            from .batch_ray import run_on_ray

            records = run_on_ray(tasks, settings, ray, workers, progress)
        done: set[str] = set()
        try:
            for record in itertools.chain(decided, records):
                append(record)
                if record["status"] != "failed":
                    done.add(record["input"])
                counts[record["status"]] += 1
                progress.file_done(record)
                if record["status"] == "failed":
                    progress.clear()
                    print(f"rmbg-filter batch: failed: {record['input']}: {record['error']}", file=sys.stderr)
        finally:
            progress.clear()  # the command's last line starts on a clean line, interrupted or not
            records.close()  # a cluster is left before its workers' leftovers are swept
            remove_stale_temporaries(Path(task.output) for task in tasks if task.input not in done)
    return counts
