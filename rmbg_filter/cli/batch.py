"""``rmbg-filter batch``: many files, each through the ``video`` job, with a manifest that makes reruns cheap.

The unit of work is one whole file (its temporal window and its encoder need
every frame, in order). Each input ``clip.mp4`` becomes ``DIR/clip.FORMAT``, or
the folder ``DIR/clip/`` of ``%05d.png`` for png, written atomically.
``DIR/manifest.jsonl`` gets one JSON object per input and run (see ``batch_jobs.Record``);
a rerun skips an input whose last record is done (or skipped) for the same
content (size and SHA-256), the same settings and an output still there, and
retries the rest. Here the files run one after another in this process; with
``--ray`` they run on a Ray cluster (``batch_ray``), one file per task.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import itertools
import json
import os
import socket
import sys
from collections.abc import Callable, Generator, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import InputError, system_reason
from .batch_jobs import (
    PNG_PATTERN,
    STATUSES,
    BatchSettings,
    Record,
    Task,
    convert,
    failed_record,
    fingerprint,
    recorded_output,
)
from .progress import BatchProgress
from .safe_output import remove_stale_temporaries

if TYPE_CHECKING:
    from ..engine import BackgroundRemover

__all__ = ["FORMATS", "Manifest", "expand_inputs", "plan", "run_batch"]

#: what ``--format`` may be: a video container, or png for a folder of numbered PNGs per input
FORMATS = ("mov", "webm", "mkv", "png")
#: the files a folder given as INPUT contributes (its other files, such as notes, are not videos)
VIDEO_SUFFIXES = frozenset((".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mxf", ".ts", ".mts", ".m2ts",
                            ".mpg", ".mpeg", ".wmv", ".flv", ".3gp", ".ogv", ".y4m", ".gif", ".nut"))


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


def _exists(output: Path) -> bool:
    """Whether an output file, or a png folder with at least its first picture, is there."""
    return (output / (PNG_PATTERN % 1)).is_file() if output.is_dir() else output.is_file()


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
        maker = maker_of_output.get(recorded_output(settings, task.output))
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


def run_here(tasks: list[Task], settings: BatchSettings, load: Callable[[], BackgroundRemover],
             progress: BatchProgress) -> Generator[Record, None, None]:
    """Convert the tasks one after another in this process, the model loaded once (when the first task needs it)."""
    remover = load() if tasks else None
    for task in tasks:
        progress.start_file(Path(task.input).name)
        yield convert(remover, task, settings, on_frame=progress.frame)


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
