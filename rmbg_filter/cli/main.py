"""The ``rmbg-filter`` command line.

Exit status: 0 success; 2 a usage or input error (bad option, missing or
unreadable input, existing output, unwritable folder, unusable model, a request
too large for memory); 1 any other failure (a decode error, a full disk; for
``batch``: any input failed, each recorded in its manifest); 130 interrupted
(SIGINT, Ctrl-C); 141 the reader of ``pipe``'s output went away (as a writer
killed by SIGPIPE); 143 terminated (SIGTERM). Every error is one line on stderr;
an interrupted or terminated command leaves no output. The core's warnings are lines on stderr
too, with options named as flags (``--dtype float32``); ``-v`` adds how the model runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import errno
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import BinaryIO, NoReturn, TypeVar

from ..compositing import MODE_WORDS, parse_output
from ..errors import (
    InputError,
    Mention,
    OptionError,
    OptionNotice,
    ProcessingError,
    Spelling,
    first_line,
    one_line,
    system_reason,
)
from ..memory import check_frames
from ..options import MODEL_ENV, ModelOptions, QualityOptions, all_specs, specs, split_keywords
from .batch import FORMATS, Manifest
from .engine_loading import load_engine
from .pipe import PIXEL_FORMATS, parse_size
from .safe_output import is_temporary

__all__ = ["main"]

T = TypeVar("T")

PROG = "rmbg-filter"
EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED, EXIT_BROKEN_PIPE, EXIT_TERMINATED = 0, 1, 2, 130, 141, 143


class Terminated(BaseException):
    """SIGTERM, raised in the main thread as Ctrl-C raises KeyboardInterrupt, so that the same
    clean-ups run (temporary outputs removed, threads stopped) instead of the process vanishing."""


def _raise_terminated(signum: int, frame: object) -> NoReturn:
    raise Terminated


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line and exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _checked(parse: Callable[[str], T]) -> Callable[[str], T]:
    """An argparse type from a parser that raises ValueError: its message becomes the usage error."""

    def convert(text: str) -> T:
        try:
            return parse(text)
        except OptionError as error:  # argparse names the flag itself: "argument --output: must be ..."
            flag = FLAGS.render(Mention(error.option))
            raise argparse.ArgumentTypeError(error.worded(FLAGS).removeprefix(f"{flag} ")) from error
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from error

    return convert


#: how the command line writes an option: ``--batch-size``, ``--device cpu``
FLAGS = Spelling(name="--{name}", assignment="--{name} {value}", separator="-")


def _add_options(parser: argparse.ArgumentParser) -> None:
    """One flag per ModelOptions and QualityOptions field: ``batch_size`` is ``--batch-size N``; values are
    checked by those classes."""
    for title, kind in (("model", ModelOptions), ("quality", QualityOptions)):
        group = parser.add_argument_group(title)
        for spec in specs(kind):
            flag = FLAGS.render(Mention(spec.name))
            if spec.type is bool:
                group.add_argument(flag, action="store_true", help=spec.help)
                continue
            metavar = "{" + ",".join(spec.choices) + "}" if spec.choices else spec.metavar
            group.add_argument(flag, type=spec.type, default=spec.default, metavar=metavar, help=spec.help)


def chosen_options(args: argparse.Namespace) -> tuple[ModelOptions, QualityOptions]:
    """The ModelOptions and QualityOptions of parsed arguments; a bad value is an OptionError."""
    return split_keywords({spec.name: getattr(args, spec.name) for spec in all_specs()})


def build_parser() -> argparse.ArgumentParser:
    """The parser of every subcommand."""
    parser = _Parser(prog=PROG, description="Background removal for images and video with RMBG-1.4.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)
    image = commands.add_parser("image", help="one picture in, its cut-out out",
                                description="Remove the background of one picture (PNG, JPEG, ...).")
    image.add_argument("input", type=Path, metavar="IN")
    image.add_argument("output", type=Path, metavar="OUT", help="the result; .png keeps the alpha")
    image.add_argument("--output", dest="mode", type=_checked(parse_output), default=parse_output("rgba"),
                       metavar="MODE", help=f"{MODE_WORDS} (default rgba)")
    image.add_argument("-y", "--overwrite", action="store_true", help="replace OUT if it exists")
    _add_options(image)

    pipe = commands.add_parser(
        "pipe", help="raw or y4m frames on stdin, frames on stdout (for ffmpeg)",
        description="Filter raw frames (--size, --pix-fmt) or a y4m stream (detected by its header) from stdin "
                    "to stdout, frame for frame.")
    pipe.add_argument("--size", type=_checked(parse_size), metavar="WxH",
                      help="frame size of raw input (y4m input carries its own)")
    pipe.add_argument("--pix-fmt", choices=tuple(PIXEL_FORMATS), help="pixel format of raw input (default rgb24)")
    pipe.add_argument("--output", dest="mode", type=_checked(parse_output), default=parse_output("alpha"),
                      metavar="MODE", help=f"{MODE_WORDS} (default alpha: ffmpeg's gray; rgba: rgba; "
                                           "composites: rgb24)")
    pipe.add_argument("--out-format", choices=("raw", "y4m"), default="raw",
                      help="raw frames (default) or y4m (C mono, for --output alpha)")
    _add_options(pipe)

    video = commands.add_parser(
        "video", help="a video file in, its cut-out (or mask, or composite) out",
        description="Decode IN with PyAV, remove the background, encode OUT; timing, audio, size, rotation and "
                    "colour tags are kept. The alpha codec follows OUT: .mov ProRes 4444, .webm VP9, .mkv FFV1.")
    video.add_argument("input", type=Path, metavar="IN")
    video.add_argument("output", type=Path, metavar="OUT", nargs="?", help="the result (optional with --preview)")
    video.add_argument("--preview", type=Path, metavar="FILE.png",
                       help="first write a contact sheet of 4 frames (original | alpha | cut-out); without OUT "
                            "only the sheet is made")
    _add_video_options(video, replaced="OUT")

    batch = commands.add_parser(
        "batch", help="many videos, each through the video job, with a manifest; on a Ray cluster with --ray",
        description="Run the video job on every INPUT (a file, a folder's videos, or a glob): each becomes "
                    "DIR/<stem>.FORMAT (png: DIR/<stem>/%%05d.png). DIR/manifest.jsonl records every input "
                    "and run; a rerun skips what is done for the same content and settings and retries the "
                    "rest. Exit status 1 when any input failed.")
    batch.add_argument("inputs", nargs="+", metavar="INPUT")
    batch.add_argument("--out-dir", type=Path, required=True, metavar="DIR", help="where outputs and the manifest go")
    batch.add_argument("--format", choices=FORMATS, default="mov",
                       help="mov (ProRes 4444, default), webm (VP9), mkv (FFV1) or png (a folder per input)")
    batch.add_argument("--ray", metavar="ADDRESS",
                       help="run on Ray: auto (the running cluster), local (start one here) or host:port")
    batch.add_argument("--workers", type=int, metavar="N",
                       help="workers with --ray (default: one per GPU, else one per node)")
    _add_video_options(batch, replaced="an output this batch's manifest did not make")

    commands.add_parser(
        "gst-plugin-path", help="print the folder for GST_PLUGIN_PATH that holds the GStreamer element rmbg",
        description="Print the folder that holds the GStreamer element rmbg (installed with this package), for "
                    "GST_PLUGIN_PATH: export GST_PLUGIN_PATH=$(rmbg-filter gst-plugin-path)")
    for command in commands.choices.values():
        command.add_argument("-v", "--verbose", action="store_true",
                             help="say on stderr how the model runs: device, dtype, runtime and the CPU's features")
    return parser


def _add_video_options(parser: argparse.ArgumentParser, replaced: str) -> None:
    """What ``video`` and ``batch`` share: the output mode, the encoder's choices, -y, -q, every option."""
    parser.add_argument("--output", dest="mode", type=_checked(parse_output), default=parse_output("rgba"),
                        metavar="MODE", help=f"{MODE_WORDS} (default rgba)")
    parser.add_argument("--codec", help="encoder to use instead of the container's choice (e.g. libx264)")
    parser.add_argument("--pix-fmt", help="pixel format to encode instead of the container's choice")
    parser.add_argument("--crf", type=int,
                        help="quality for libx264 (default 18) and libvpx-vp9 (default 20: alpha within 2 levels)")
    parser.add_argument("-y", "--overwrite", action="store_true", help=f"replace {replaced} if it exists")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    _add_options(parser)


def _run(args: argparse.Namespace, stdin: BinaryIO | None, stdout: BinaryIO | None) -> None:
    if args.command == "gst-plugin-path":
        from .gst_plugin import plugin_folder

        out = stdout or sys.stdout.buffer
        out.write(f"{plugin_folder()}\n".encode())
        out.flush()
        return
    options, quality = chosen_options(args)
    if args.command == "image":
        from .image import remove_background_from_image

        width, height = remove_background_from_image(lambda: load_engine(options), args.input, args.output, args.mode,
                                                     quality, overwrite=args.overwrite, batch_size=options.batch_size)
        print(f"wrote {args.output} ({width}x{height}, {args.mode.kind})", file=sys.stderr)
    elif args.command == "pipe":
        from .pipe import PipeOptions, run_pipe

        stream = PipeOptions(args.size, args.pix_fmt, args.mode, args.out_format == "y4m", quality, options.batch_size)
        # unbuffered: a read left waiting on stdin when the command is interrupted holds no lock
        # that the interpreter's exit would wait for (it aborts instead)
        run_pipe(lambda: load_engine(options), stream, stdin or sys.stdin.buffer.raw, stdout or sys.stdout.buffer)
    elif args.command == "video":
        from .video import VideoJob, VideoOptions

        if args.output is None and args.preview is None:
            raise InputError("give OUT, or --preview FILE.png to look first")
        video = VideoOptions(args.mode, args.codec, args.pix_fmt, args.crf, args.overwrite,
                             progress=sys.stderr.isatty() and not args.quiet, quality=quality)
        with VideoJob(args.input, args.output, video, args.preview) as job:
            check_frames(*job.size, options.batch_size, quality, host_finishing=False)  # the engine: again
            remover = load_engine(options)
            if args.preview is not None:
                rows = job.preview(remover)
                print(f"wrote {args.preview} ({rows} frames: original | alpha | cut-out)", file=sys.stderr)
            if job.encoding is not None:
                frames = job.run(remover)
                print(f"wrote {args.output} ({frames} frames, {job.encoding.codec} {job.encoding.pix_fmt})",
                      file=sys.stderr)
    elif args.command == "batch":
        _run_batch(args, options, quality)


def _run_batch(args: argparse.Namespace, options: ModelOptions, quality: QualityOptions) -> None:
    from .batch import run_batch
    from .batch_jobs import BatchSettings
    from .video import VideoOptions

    if args.workers is not None and args.ray is None:
        raise InputError("--workers needs --ray (without it the files run one after another in this process)")
    if args.workers is not None and args.workers < 1:
        raise InputError(f"--workers must be at least 1, got {args.workers}")
    # what workers elsewhere need, and what the settings' hash must tell apart: the model named
    # outright (RMBG_MODEL does not travel to Ray's workers), local paths absolute
    model = options.model or os.environ.get(MODEL_ENV)
    if model is not None:
        options = dataclasses.replace(options, model=os.path.abspath(model) if Path(model).exists() else model)
    image = args.mode.image
    mode = args.mode if image is None else dataclasses.replace(args.mode, image=Path(os.path.abspath(image)))
    video = VideoOptions(mode, args.codec, args.pix_fmt, args.crf, quality=quality)
    settings = BatchSettings(Path(os.path.abspath(args.out_dir)), args.format, video, options)
    counts = run_batch(args.inputs, settings, lambda: load_engine(options), overwrite=args.overwrite, ray=args.ray,
                       workers=args.workers, shown=sys.stderr.isatty() and not args.quiet)
    total = sum(counts.values())
    tally = f"{counts['done']} done, {counts['skipped']} skipped, {counts['failed']} failed"
    if counts["failed"]:
        raise ProcessingError(f"{counts['failed']} of {total} inputs failed ({tally}); see "
                              f"{settings.out_dir / Manifest.NAME}")
    print(f"{PROG} batch: {tally}; manifest {settings.out_dir / Manifest.NAME}", file=sys.stderr)


class _FlagsFormatter(logging.Formatter):
    """Log records as their message alone, an OptionNotice's with its options named as flags (``--dtype float32``)."""

    def format(self, record: logging.LogRecord) -> str:
        if isinstance(record.msg, OptionNotice):
            record = logging.makeLogRecord({**record.__dict__, "msg": record.msg.worded(FLAGS), "args": ()})
        return super().format(record)


def _log_to_stderr(verbose: bool) -> Callable[[], None]:
    """Show the core's log records on stderr, one line each: warnings, and with ``verbose`` its INFO lines
    (the engine's choice of device, dtype and runtime). Returns what undoes it (``main`` may run many
    times in one process)."""
    logger = logging.getLogger("rmbg_filter")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_FlagsFormatter())
    level = logger.level
    if verbose:
        logger.setLevel(logging.INFO)
    logger.addHandler(handler)

    def undo() -> None:
        logger.removeHandler(handler)
        logger.setLevel(level)

    return undo


def _system_error(error: OSError) -> str:
    """An OSError in one line: what the system said, the file (unless one of our temporaries), what to do."""
    text = system_reason(error)
    if error.filename and not is_temporary(Path(os.fsdecode(error.filename))):
        text += f": {os.fsdecode(error.filename)}"
    if error.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        text += "; nothing was kept (free some space, or write elsewhere)"
    return one_line(text)


def main(argv: Sequence[str] | None = None, *, stdin: BinaryIO | None = None, stdout: BinaryIO | None = None) -> int:
    """Run the command line; returns the exit status. ``stdin`` and ``stdout``: the streams of ``pipe``
    (default: the process's own)."""
    args = build_parser().parse_args(argv)
    in_main_thread = threading.current_thread() is threading.main_thread()  # only it may set handlers
    previous = signal.signal(signal.SIGTERM, _raise_terminated) if in_main_thread else None
    stop_logging = _log_to_stderr(args.verbose)
    try:
        _run(args, stdin, stdout)
    except OptionError as error:
        print(f"{PROG} {args.command}: error: {error.worded(FLAGS)}", file=sys.stderr)
        return EXIT_USAGE
    except InputError as error:
        print(f"{PROG} {args.command}: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except ProcessingError as error:
        print(f"{PROG} {args.command}: error: {error}", file=sys.stderr)
        return EXIT_FAILURE
    except BrokenPipeError:  # the reader downstream has gone: stop quietly, with the status of head(1)'s writers
        if stdout is None:  # the process's stdout: its buffer must not be flushed again at exit
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except KeyboardInterrupt:
        print(f"{PROG} {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Terminated:
        print(f"{PROG} {args.command}: terminated", file=sys.stderr)
        return EXIT_TERMINATED
    except OSError as error:  # the system refused a write or read: a full disk, a lost mount, a closed stream
        print(f"{PROG} {args.command}: error: {_system_error(error)}", file=sys.stderr)
        return EXIT_FAILURE
    except Exception as error:  # anything else is our failure: still one line, status 1
        print(f"{PROG} {args.command}: error: unexpected {type(error).__name__}: {one_line(first_line(error))}",
              file=sys.stderr)
        return EXIT_FAILURE
    finally:
        stop_logging()
        if previous is not None:  # None: no handler set here, or one set from C that Python cannot restore
            signal.signal(signal.SIGTERM, previous)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
