"""``rmbg-filter video IN OUT``: decode with PyAV, remove the background, encode.

Timestamps, frame rate (variable too), size, rotation and the colour tags of
the source are kept; audio is copied where the container takes it, otherwise
re-encoded. Decoding, inference and encoding overlap (the engine's stream).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from ..compositing import OutputMode, composite, read_rgb
from ..errors import InputError, ProcessingError, first_line
from ..options import QualityOptions
from .avframes import fill_plane
from .encodings import Encoding, choose_encoding
from .progress import Progress
from .safe_output import atomic_output, atomic_sequence, check_destination, is_pattern

if TYPE_CHECKING:
    from ..engine import BackgroundRemover

__all__ = ["VideoJob", "VideoOptions"]

_FULL_RANGE = 2  # AVCOL_RANGE_JPEG


@dataclass(frozen=True)
class VideoOptions:
    """What the command line asked of ``video``."""

    mode: OutputMode
    codec: str | None = None
    pix_fmt: str | None = None
    crf: int | None = None
    overwrite: bool = False
    progress: bool = False
    quality: QualityOptions = dataclasses.field(default_factory=QualityOptions)


class VideoJob:
    """One input checked and opened, its output planned: ``run()`` does the work.

    Opening checks everything a user can get wrong (missing, empty, corrupt or
    audio-only input; an output container that cannot hold the mode; an
    existing output) before any model is loaded.
    """

    def __init__(self, source: Path, destination: Path | None, options: VideoOptions,
                 preview: Path | None = None) -> None:
        """``destination`` is the video to write (None: only the ``preview`` PNG is made)."""
        self.source, self.destination, self.options, self.preview_path = source, destination, options, preview
        if not source.is_file():
            raise InputError(f"input not found: {source}")
        if source.stat().st_size == 0:
            raise InputError(f"{source} is empty; give a video file")
        for path in (destination, preview):
            if path is not None:
                check_destination(path, overwrite=options.overwrite)  # again when writing
        if preview is not None and preview.suffix.lower() != ".png":
            raise InputError(f"--preview {preview}: the contact sheet is a PNG; end the name in .png")
        try:
            self.input = av.open(str(source))
        except av.error.FFmpegError as error:
            raise InputError(f"cannot read {source} as a video ({first_line(error)})") from error
        if not self.input.streams.video:
            self.input.close()
            raise InputError(f"{source} has no video stream (audio only?); give a video file")
        self.video = self.input.streams.video[0]
        self.video.thread_type = "AUTO"
        self.audio = list(self.input.streams.audio) if destination and not is_pattern(destination) else []
        context = self.video.codec_context
        self.size = (context.width, context.height)
        try:
            self.encoding: Encoding | None = None
            if destination is not None:
                self.encoding = choose_encoding(
                    destination, options.mode, context.format.name if context.format else "",
                    self.size, codec=options.codec, pix_fmt=options.pix_fmt, crf=options.crf)
            self.background = None if options.mode.image is None else read_rgb(options.mode.image, self.size)
        except BaseException:  # the job is not made: nothing will close the input but us
            self.input.close()
            raise

    def __enter__(self) -> VideoJob:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.input.close()

    def preview(self, remover: BackgroundRemover, count: int = 4) -> int:
        """Write the contact sheet PNG of ``count`` frames spread over the clip; returns the rows written."""
        from .preview import contact_sheet, save_sheet

        if self.preview_path is None:
            raise ValueError("VideoJob.preview: no preview path was given")
        total = self.video.frames or count
        wanted = {round(i * (total - 1) / max(count - 1, 1)) for i in range(count)}
        frames = []
        try:
            with av.open(str(self.source)) as container:
                for index, frame in enumerate(container.decode(video=self.video.index)):
                    if index in wanted:
                        frames.append(frame.to_ndarray(format="rgb24", interpolation="BICUBIC"))
                    if len(frames) == len(wanted):
                        break
        except av.error.FFmpegError as error:
            raise ProcessingError(f"decoding {self.source} failed ({first_line(error)}); no preview written") \
                from error
        if not frames:
            raise ProcessingError(f"no video frame could be decoded from {self.source}")
        stack = np.stack(frames)
        with atomic_output(self.preview_path, overwrite=self.options.overwrite) as temporary:
            # the sheet's frames are far apart: each is its own window, nothing to reuse
            alone = dataclasses.replace(self.options.quality, temporal_radius=0, reuse_threshold=0.0)
            save_sheet(contact_sheet(stack, remover(stack, alone)), temporary)
        return len(frames)

    def run(self, remover: BackgroundRemover, on_frame: Callable[[], None] | None = None) -> int:
        """Write the output (atomically); returns the number of frames written. ``on_frame`` is called
        after each frame is encoded (for a caller's own progress display)."""
        if self.destination is None or self.encoding is None:
            raise ValueError("VideoJob.run: no output was given")
        writer = atomic_sequence if is_pattern(self.destination) else atomic_output
        with writer(self.destination, overwrite=self.options.overwrite) as temporary, \
                av.open(str(temporary), "w") as output:
            return _Encoder(self, output).run(remover, on_frame)


class _Encoder:
    """The state of one run: the output container, its streams, the frames in flight."""

    def __init__(self, job: VideoJob, output: av.container.OutputContainer) -> None:
        self.job = job
        self.output = output
        #: audio packets demuxed after the last video frame, set when decoding ends
        self.trailing_audio: list[av.Packet] = []
        self.video_out: av.VideoStream | None = None
        #: input audio stream index -> (output stream, resampler when re-encoding, None when copying)
        self.audio_out: dict[int, tuple[av.AudioStream, av.AudioResampler | None]] = {}
        # one converter a thread (the reader's to RGB, the writer's to the encoder's format), kept for the
        # whole run: a frame's own (frame.reformat) makes a scaling context and its threads for every frame
        # (decoding 1080p with the RGB conversion: 262 fps that way, 375 with one kept; scripts/gpu_bench.py)
        self._to_rgb = VideoReformatter()
        self._to_output = VideoReformatter()

    def run(self, remover: BackgroundRemover, on_frame: Callable[[], None] | None) -> int:
        job = self.job
        progress = Progress(job.video.frames or None, shown=job.options.progress)
        written = 0
        for (source, rgb, audio), alpha in remover.stream_tagged(self._decoded(), quality=job.options.quality):
            if self.video_out is None:
                self._add_streams(source)
            self._mux_audio(audio)
            self._mux(self.video_out.encode(self._output_frame(source, rgb, alpha)))
            written += 1
            progress.advance()
            if on_frame is not None:
                on_frame()
        if self.video_out is None:
            raise ProcessingError(f"no video frame could be decoded from {job.source}")
        self._mux(self.video_out.encode(None))
        self._mux_audio(self.trailing_audio)
        for stream, resampler in self.audio_out.values():
            if resampler is not None:
                for converted in resampler.resample(None):
                    self._mux(stream.encode(converted))
                self._mux(stream.encode(None))
        progress.finish()
        return written

    def _decoded(self) -> Iterator[tuple[tuple[av.VideoFrame, np.ndarray, list[av.Packet]], np.ndarray]]:
        """Decode the video in the engine's reader thread: ``(tag, rgb)`` pairs for its tagged stream.

        ``rgb`` is the frame's pixels (H,W,3) uint8, converted as ffmpeg's command line does;
        the tag ``(frame, rgb, audio)`` adds the decoded frame (its timing and colour tags) and
        the audio packets demuxed since the frame before, to be muxed before it. Audio after the
        last frame is left in ``trailing_audio``.
        """
        job = self.job
        count = 0
        audio: list[av.Packet] = []
        try:
            for packet in job.input.demux(job.video, *job.audio):
                if packet.stream.type == "audio":
                    if packet.size:
                        audio.append(packet)
                    continue
                for frame in packet.decode():
                    rgb = self._to_rgb.reformat(frame, format="rgb24", interpolation="BICUBIC").to_ndarray()
                    yield (frame, rgb, audio), rgb
                    audio = []
                    count += 1
            self.trailing_audio = audio
        except av.error.FFmpegError as error:
            raise ProcessingError(f"decoding {job.source} failed after {count} frames ({first_line(error)}); "
                                  "nothing was written") from error

    def _add_streams(self, first: av.VideoFrame) -> None:
        """Create the output streams once the first frame (and so its rotation) is known."""
        job, encoding = self.job, self.job.encoding
        video_in = job.video
        rate = video_in.average_rate or video_in.guessed_rate or 25
        stream = self.output.add_stream(encoding.codec, rate=rate, options=encoding.options)
        stream.width, stream.height = job.size
        stream.pix_fmt = encoding.pix_fmt
        stream.thread_type = "AUTO"  # frame and slice threads: ProRes 4444 at 1080p went 17 -> 46 fps on 16 cores
        stream.time_base = video_in.time_base
        stream.codec_context.time_base = video_in.time_base
        if job.options.mode.kind == "alpha":
            stream.codec_context.color_range = _FULL_RANGE
        else:
            source = video_in.codec_context
            for tag in ("color_range", "colorspace", "color_primaries", "color_trc"):
                with contextlib.suppress(AttributeError, ValueError):
                    setattr(stream.codec_context, tag, getattr(source, tag))
        if first.rotation:
            stream.set_display_rotation(first.rotation)
        self.video_out = stream
        for audio in job.audio:
            if audio.codec_context.name in self.output.supported_codecs:
                self.audio_out[audio.index] = (self.output.add_stream_from_template(audio), None)
                continue
            codec = self.output.default_audio_codec
            rate = audio.codec_context.sample_rate
            rates = av.Codec(codec, "w").audio_rates
            if rates and rate not in rates:  # Opus takes 48 kHz, not 44.1
                rate = 48000 if 48000 in rates else max(rates)
            out = self.output.add_stream(codec, rate=rate)
            out.layout = audio.codec_context.layout
            resampler = av.AudioResampler(format=out.format, layout=out.layout, rate=rate)
            self.audio_out[audio.index] = (out, resampler)

    def _mux_audio(self, packets: list[av.Packet]) -> None:
        """Mux (copy or re-encode) audio packets."""
        for packet in packets:
            stream, resampler = self.audio_out[packet.stream.index]
            if resampler is None:
                packet.stream = stream
                self.output.mux(packet)
                continue
            for frame in packet.decode():
                for converted in resampler.resample(frame):
                    converted.pts = None  # the encoder numbers samples itself
                    self._mux(stream.encode(converted))

    def _mux(self, packets: list[av.Packet]) -> None:
        for packet in packets:
            self.output.mux(packet)

    def _output_frame(self, source: av.VideoFrame, rgb: np.ndarray, alpha: np.ndarray) -> av.VideoFrame:
        """The frame to encode for ``source``, its RGB (H,W,3) and alpha (H,W) uint8, timed as the source."""
        job, encoding, mode = self.job, self.job.encoding, self.job.options.mode
        decontaminate = job.options.quality.decontaminate
        if mode.kind == "rgba" and encoding.pix_fmt.startswith("yuva") and source.format.name.startswith("yuv") \
                and not decontaminate:
            frame = self._to_output.reformat(source, format=encoding.pix_fmt, interpolation="BICUBIC")  # YUV kept
            bits = frame.format.components[3].bits
            scaled = alpha if bits == 8 else ((alpha.astype(np.uint32) * ((1 << bits) - 1) + 127) // 255)
            fill_plane(frame.planes[3], scaled.astype(np.uint8 if bits == 8 else np.uint16))
        elif mode.kind == "alpha":
            frame = av.VideoFrame.from_ndarray(alpha, format="gray")
            frame.color_range = _FULL_RANGE
            frame = self._to_output.reformat(frame, format=encoding.pix_fmt, src_color_range=_FULL_RANGE,
                                             dst_color_range=_FULL_RANGE)
        else:
            picture = composite(rgb, alpha, mode, job.background, decontaminate=decontaminate)
            frame = av.VideoFrame.from_ndarray(picture, format="rgba" if picture.shape[2] == 4 else "rgb24")
            frame = self._to_output.reformat(frame, format=encoding.pix_fmt, dst_colorspace=source.colorspace,
                                             dst_color_range=source.color_range, interpolation="BICUBIC")
        if mode.kind != "alpha":
            frame.colorspace = source.colorspace
            frame.color_range = source.color_range
        frame.pts = source.pts
        frame.time_base = source.time_base
        return frame
