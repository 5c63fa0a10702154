"""``rmbg-filter video`` on generated clips with real ffmpeg and PyAV: what is kept, what is refused."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import av
import numpy as np
import pytest
from cli_helpers import CLI, ffmpeg, one_error_line, run_cli

from rmbg_filter import InputError, load

FAST = ("--model-size", "64", "-q")


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Odd-sized 8-bit with audio, 10-bit, variable frame rate, and an audio-only file."""
    root = tmp_path_factory.mktemp("clips")
    source = "testsrc2=size=320x240:rate=25,scale=321:241"
    ffmpeg("-f", "lavfi", "-i", source, "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
           "-frames:v", "6", "-c:v", "ffv1", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest",
           str(root / "odd_audio.mkv"))
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30000/1001", "-frames:v", "4", "-c:v", "ffv1",
           "-pix_fmt", "yuv420p10le", str(root / "ten_bit.mkv"))
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25", "-frames:v", "6",
           "-vf", "setpts='(N+N*N/4)/25/TB'", "-fps_mode", "passthrough", "-c:v", "ffv1", str(root / "vfr.mkv"))
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=440", "-t", "0.5", "-c:a", "aac", str(root / "audio_only.m4a"))
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25", "-frames:v", "50", "-c:v", "libx264",
           "-pix_fmt", "yuv420p", str(root / "long.mp4"))
    return {path.stem: path for path in root.iterdir()}


@pytest.fixture(scope="module")
def small(checkpoints: dict[str, Path]):
    return load(checkpoints["safetensors"], device="cpu", model_size=64)


def decoded(path: Path, codec: str | None = None) -> tuple[list[av.VideoFrame], list[float]]:
    """Every video frame of ``path`` (through decoder ``codec`` if given) and its time in seconds."""
    frames = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        context = av.CodecContext.create(codec, "r") if codec else stream.codec_context
        if codec:
            context.extradata = stream.codec_context.extradata
        for packet in container.demux(stream):
            frames.extend(context.decode(packet))
    return frames, [float(f.pts * f.time_base) for f in frames]


def source_rgb(path: Path) -> np.ndarray:
    frames, _ = decoded(path)
    return np.stack([f.to_ndarray(format="rgb24", interpolation="BICUBIC") for f in frames])


def alpha_of(frame: av.VideoFrame) -> np.ndarray:
    """The alpha plane of a decoded frame as 8 bits."""
    rgba = frame.to_ndarray(format="rgba")
    return rgba[..., 3]


@pytest.mark.parametrize(("name", "decoder", "tolerance"),
                         [("out.mkv", None, 1), ("out.mov", None, 1), ("out.webm", "libvpx-vp9", 3)])
def test_alpha_codecs_keep_frames_times_size_and_the_alpha(
    name: str, decoder: str | None, tolerance: int, clips, tmp_path: Path, checkpoints, small
) -> None:
    out = tmp_path / name
    done = run_cli("video", clips["odd_audio"], out, *FAST, model=checkpoints["safetensors"])
    assert done.returncode == 0, done.stderr
    source_frames, source_times = decoded(clips["odd_audio"])
    frames, times = decoded(out, decoder)
    assert len(frames) == len(source_frames) == 6
    assert times == pytest.approx(source_times, abs=1e-3)
    assert (frames[0].width, frames[0].height) == (321, 241)
    expected = small(source_rgb(clips["odd_audio"]))
    worst = max(np.abs(alpha_of(f).astype(int) - a).max() for f, a in zip(frames, expected, strict=True))
    assert worst <= tolerance, worst


def test_lossless_rgba_keeps_the_source_colour_planes(clips, tmp_path: Path, checkpoints) -> None:
    out = tmp_path / "out.mkv"
    assert run_cli("video", clips["odd_audio"], out, *FAST, model=checkpoints["safetensors"]).returncode == 0
    frames, _ = decoded(out)
    assert frames[0].format.name == "yuva420p"
    source, _ = decoded(clips["odd_audio"])
    for ours, theirs in zip(frames, source, strict=True):
        for index in range(3):
            np.testing.assert_array_equal(np.frombuffer(ours.planes[index], np.uint8),
                                          np.frombuffer(theirs.planes[index], np.uint8))


def test_audio_is_copied_or_reencoded(clips, tmp_path: Path, checkpoints) -> None:
    for name, codec in (("copy.mkv", "aac"), ("copy.mov", "aac"), ("opus.webm", "opus")):
        out = tmp_path / name
        assert run_cli("video", clips["odd_audio"], out, *FAST, model=checkpoints["safetensors"]).returncode == 0
        with av.open(str(out)) as container:
            (audio,) = container.streams.audio
            assert audio.codec_context.name == codec
            assert sum(1 for _ in container.demux(audio)) > 5


def test_ten_bit_and_variable_frame_rate_sources(clips, tmp_path: Path, checkpoints) -> None:
    for clip in ("ten_bit", "vfr"):
        out = tmp_path / f"{clip}.mov"
        done = run_cli("video", clips[clip], out, *FAST, model=checkpoints["safetensors"])
        assert done.returncode == 0, done.stderr
        assert decoded(out)[1] == pytest.approx(decoded(clips[clip])[1], abs=1e-3)


def test_mask_and_composites(clips, tmp_path: Path, checkpoints, small) -> None:
    expected = small(source_rgb(clips["odd_audio"]))
    mask = tmp_path / "mask.mkv"
    assert run_cli("video", clips["odd_audio"], mask, "--output", "alpha", *FAST,
                   model=checkpoints["safetensors"]).returncode == 0
    frames, _ = decoded(mask)
    assert frames[0].format.name == "gray"
    np.testing.assert_array_equal(np.stack([f.to_ndarray() for f in frames]), expected)
    green = tmp_path / "green.mp4"
    done = run_cli("video", clips["odd_audio"], green, "--output", "green", *FAST, model=checkpoints["safetensors"])
    assert done.returncode == 0, done.stderr
    frames, _ = decoded(green)
    assert len(frames) == 6 and frames[0].width == 321


def test_progress_is_quiet_off_a_terminal(clips, tmp_path: Path, checkpoints) -> None:
    done = run_cli("video", clips["odd_audio"], tmp_path / "o.mkv", "--model-size", "64",
                   model=checkpoints["safetensors"])
    assert done.stderr.strip().splitlines() == [f"wrote {tmp_path / 'o.mkv'} (6 frames, ffv1 yuva420p)"]


def written(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    ("make", "out", "message"),
    [
        (lambda d, c: d / "missing.mp4", "o.mkv", r"input not found: .*missing\.mp4"),
        (lambda d, c: written(d / "empty.mp4", b""), "o.mkv", r"empty\.mp4 is empty"),
        (lambda d, c: written(d / "junk.mp4", bytes(range(256)) * 20), "o.mkv", r"cannot read .*junk\.mp4 as a video"),
        (lambda d, c: c["audio_only"], "o.mkv", r"has no video stream \(audio only\?\)"),
        (lambda d, c: c["odd_audio"], "o.mp4", r"\.mp4 cannot carry an alpha channel"),
        (lambda d, c: c["odd_audio"], "o.avi", r"unknown output container \.avi"),
        (lambda d, c: c["odd_audio"], "o.png", r"must be a numbered pattern such as out_%05d\.png"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(make, out: str, message: str, clips, tmp_path: Path,
                                                         checkpoints) -> None:
    source = make(tmp_path, clips)
    before = set(tmp_path.iterdir())
    done = run_cli("video", source, tmp_path / out, *FAST, model=checkpoints["safetensors"])
    assert done.returncode == 2, done.stderr
    assert re.search(message, one_error_line(done))
    assert set(tmp_path.iterdir()) == before


def test_existing_output_is_kept_unless_overwrite(clips, tmp_path: Path, checkpoints) -> None:
    out = tmp_path / "o.mkv"
    out.write_bytes(b"precious")
    done = run_cli("video", clips["odd_audio"], out, *FAST, model=checkpoints["safetensors"])
    assert done.returncode == 2 and "already exists" in one_error_line(done)
    assert out.read_bytes() == b"precious"
    assert run_cli("video", clips["odd_audio"], out, "-y", *FAST, model=checkpoints["safetensors"]).returncode == 0
    assert len(decoded(out)[0]) == 6


def test_outputs_get_a_new_files_mode_and_a_percent_sign_is_just_a_name(clips, tmp_path: Path,
                                                                        checkpoints) -> None:
    out = tmp_path / "100%.mkv"  # not a numbered pattern: a file whose name has a % in it
    old_mask = os.umask(0o027)
    try:
        done = run_cli("video", clips["odd_audio"], out, *FAST, model=checkpoints["safetensors"])
    finally:
        os.umask(old_mask)
    assert done.returncode == 0, done.stderr
    assert len(decoded(out)[0]) == 6
    assert out.stat().st_mode & 0o777 == 0o640  # as any new file under umask 027, not mkstemp's private 0600


def test_decode_error_in_the_middle_exits_1_with_no_output(clips, tmp_path: Path, checkpoints) -> None:
    data = bytearray(clips["long"].read_bytes())
    rng = np.random.default_rng(1)
    data[len(data) // 3: len(data) // 3 + 3000] = rng.integers(0, 256, 3000, dtype=np.uint8).tobytes()
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(bytes(data))
    done = run_cli("video", broken, tmp_path / "o.mkv", *FAST, model=checkpoints["safetensors"])
    assert done.returncode == 1
    assert re.search(r"decoding .*broken\.mp4 failed after \d+ frames .*nothing was written", one_error_line(done))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.mp4"]


@pytest.mark.parametrize(("signum", "status", "word"),
                         [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")])
def test_ctrl_c_or_sigterm_leaves_no_output(signum: int, status: int, word: str, clips, tmp_path: Path,
                                            checkpoints) -> None:
    env = {**os.environ, "RMBG_MODEL": str(checkpoints["safetensors"])}
    # a parent started in the background may ignore SIGINT, and children inherit that: undo it
    process = subprocess.Popen([str(CLI), "video", str(clips["long"]), str(tmp_path / "o.mov"), "-q"],
                               env=env, stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 60
    partial = []
    while time.monotonic() < deadline and not partial:
        partial = [p for p in tmp_path.iterdir() if p.name.startswith(".o.")]
        time.sleep(0.1)
    assert partial, "the partial output never appeared: the interrupt would test nothing"
    time.sleep(1)
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == status, stderr
    assert stderr.strip() == f"rmbg-filter video: {word}"
    assert list(tmp_path.iterdir()) == []


def test_png_sequence_output(clips, tmp_path: Path, checkpoints, small) -> None:
    pattern = tmp_path / "out_%05d.png"
    assert run_cli("video", clips["odd_audio"], pattern, *FAST, model=checkpoints["safetensors"]).returncode == 0
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [f"out_{i:05d}.png" for i in range(1, 7)]
    expected = small(source_rgb(clips["odd_audio"]))
    for index, name in enumerate(names):
        with av.open(str(tmp_path / name)) as container:
            (frame,) = container.decode(video=0)
        assert frame.format.name == "rgba" and (frame.width, frame.height) == (321, 241)
        np.testing.assert_array_equal(alpha_of(frame), expected[index])
    done = run_cli("video", clips["odd_audio"], pattern, *FAST, model=checkpoints["safetensors"])
    assert done.returncode == 2 and "out_00001.png already exists" in one_error_line(done)


def test_preview_alone_writes_a_contact_sheet_of_spread_frames(clips, tmp_path: Path, checkpoints) -> None:
    sheet = tmp_path / "sheet.png"
    done = run_cli("video", clips["long"], "--preview", sheet, *FAST, model=checkpoints["safetensors"])
    assert done.returncode == 0, done.stderr
    with av.open(str(sheet)) as container:
        (frame,) = container.decode(video=0)
    assert (frame.width, frame.height) == (3 * 320, 4 * 240)  # 4 rows of original | alpha | cut-out
    picture = frame.to_ndarray(format="rgb24")
    source = source_rgb(clips["long"])
    for row, index in enumerate((0, 16, 33, 49)):  # spread over the 50 frames
        np.testing.assert_array_equal(picture[row * 240:(row + 1) * 240, :320], source[index])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sheet.png"]
    done = run_cli("video", clips["long"], model=checkpoints["safetensors"])
    assert done.returncode == 2 and "give OUT, or --preview FILE.png" in one_error_line(done)


def test_rotation_and_colour_tags_are_kept(tmp_path: Path, checkpoints) -> None:
    source = tmp_path / "rotated.mp4"
    with av.open(str(source), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        stream.codec_context.colorspace = 1  # BT.709
        stream.codec_context.color_primaries = 1
        stream.codec_context.color_trc = 1
        stream.codec_context.color_range = 1  # limited
        stream.set_display_rotation(90)
        for index in range(3):
            picture = np.full((240, 320, 3), index * 40, np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")))
        container.mux(stream.encode(None))
    for name in ("cut.mov", "green.mp4"):
        out = tmp_path / name
        mode = ("--output", "green") if name == "green.mp4" else ()
        done = run_cli("video", source, out, *mode, *FAST, model=checkpoints["safetensors"])
        assert done.returncode == 0, done.stderr
        with av.open(str(out)) as container:
            context = container.streams.video[0].codec_context
            assert (context.colorspace, context.color_primaries, context.color_trc, context.color_range) == (1, 1, 1, 1)
            assert next(container.decode(video=0)).rotation == 90


def test_codec_crf_and_pix_fmt_reach_the_encoder(clips, tmp_path: Path, checkpoints) -> None:
    """--crf survives --codec, and is checked against the encoder chosen (here x264 where .mov would use ProRes)."""
    out = tmp_path / "o.mov"
    done = run_cli("video", clips["odd_audio"], out, "--output", "green", "--codec", "libx264", "--crf", "31",
                   "--pix-fmt", "yuv444p", *FAST, model=checkpoints["safetensors"])
    assert done.returncode == 0, done.stderr
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.name, stream.codec_context.format.name) == ("h264", "yuv444p")
    assert b"crf=31.0" in out.read_bytes()  # x264 writes its settings into the stream
    done = run_cli("video", clips["odd_audio"], tmp_path / "o.mkv", "--codec", "ffv1", "--crf", "20", *FAST,
                   model=checkpoints["safetensors"])
    assert done.returncode == 2
    assert one_error_line(done) == ("rmbg-filter video: error: --crf does not apply to ffv1; "
                                    "it is for libx264 and libvpx-vp9")


def test_a_background_that_cannot_be_read_leaves_no_file_open(clips, tmp_path: Path) -> None:
    from rmbg_filter.cli.video import VideoJob, VideoOptions
    from rmbg_filter.compositing import parse_output

    def open_files() -> set[str]:
        return {os.readlink(f"/proc/self/fd/{fd}") for fd in os.listdir("/proc/self/fd")
                if os.path.exists(f"/proc/self/fd/{fd}")}

    before = open_files()
    options = VideoOptions(parse_output(f"image:{tmp_path / 'missing.png'}"))
    with pytest.raises(InputError, match=r"input not found: .*missing\.png"):
        VideoJob(clips["odd_audio"], tmp_path / "o.mkv", options)
    assert str(clips["odd_audio"]) not in open_files() - before
