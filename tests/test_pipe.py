"""``rmbg-filter pipe`` in-process: pixel formats, output modes, y4m framing, bad streams."""

from __future__ import annotations

import io

import numpy as np
import pytest

from rmbg_filter.cli.pipe import PipeOptions, parse_size, run_pipe
from rmbg_filter.cli.y4m import read_header
from rmbg_filter.compositing import parse_output
from rmbg_filter.errors import InputError

RNG = np.random.default_rng(9)
FRAMES = RNG.integers(0, 256, (3, 23, 31, 3), dtype=np.uint8)


def pipe(remover, data: bytes, *, size=(31, 23), pix_fmt=None, output="alpha", y4m_out=False,
         loads: list[int] | None = None) -> bytes:
    """Run the pipe in-process on ``data``; each model load is counted in ``loads``."""
    out = io.BytesIO()

    def load():
        if loads is not None:
            loads.append(1)
        return remover

    run_pipe(load, PipeOptions(size, pix_fmt, parse_output(output), y4m_out), io.BytesIO(data), out)
    return out.getvalue()


def test_every_pixel_format_gives_the_alpha_of_its_rgb(remover_small) -> None:
    expected = remover_small(FRAMES).tobytes()
    alpha = np.ones((3, 23, 31, 1), np.uint8)
    layouts = {"rgb24": FRAMES, "bgr24": FRAMES[..., ::-1], "rgba": np.concatenate([FRAMES, alpha], axis=3),
               "bgra": np.concatenate([FRAMES[..., ::-1], alpha], axis=3)}
    for pix_fmt, frames in layouts.items():
        assert pipe(remover_small, frames.tobytes(), pix_fmt=pix_fmt) == expected, pix_fmt
    gray = FRAMES[..., 0]
    assert pipe(remover_small, gray.tobytes(), pix_fmt="gray") == remover_small(gray[..., None]).tobytes()


def test_output_modes_have_their_frame_sizes(remover_small) -> None:
    data = FRAMES.tobytes()
    rgba = np.frombuffer(pipe(remover_small, data, output="rgba"), np.uint8).reshape(3, 23, 31, 4)
    np.testing.assert_array_equal(rgba[..., :3], FRAMES)
    np.testing.assert_array_equal(rgba[..., 3], remover_small(FRAMES))
    for word in ("green", "color:#102030", "blur"):
        assert len(pipe(remover_small, data, output=word)) == FRAMES.size, word


def test_cut_last_frame_writes_the_complete_ones_then_says_where(remover_small) -> None:
    out = io.BytesIO()
    data = FRAMES.tobytes()[:-100]
    options = PipeOptions((31, 23), None, parse_output("alpha"), False)
    with pytest.raises(InputError, match=r"stdin ended inside frame 2: got 2039 of 2139 bytes"):
        run_pipe(lambda: remover_small, options, io.BytesIO(data), out)
    assert out.getvalue() == remover_small(FRAMES[:2]).tobytes()


@pytest.mark.parametrize("width", [1, 2, 3, 4])
def test_frames_smaller_than_the_signature_probe(width: int, remover_small) -> None:
    """The first 10 bytes are read to look for a y4m signature: raw frames of 1x1 to 3x1 are shorter."""
    frames = np.random.default_rng(width).integers(0, 256, (5, 1, width, 3), dtype=np.uint8)
    out = io.BytesIO()
    options = PipeOptions((width, 1), None, parse_output("alpha"), False)
    assert run_pipe(lambda: remover_small, options, io.BytesIO(frames.tobytes()), out) == 5
    assert out.getvalue() == remover_small(frames).tobytes()


def test_empty_input_writes_nothing(remover_small) -> None:
    assert pipe(remover_small, b"") == b""


def y4m_stream(frames_yuv444: np.ndarray, extra: str = "") -> bytes:
    """A y4m 4:4:4 stream of (N,H,W,3) planar-able YUV frames."""
    _, h, w, _ = frames_yuv444.shape
    parts = [f"YUV4MPEG2 W{w} H{h} F30000:1001 Ip A1:1 C444{extra}\n".encode()]
    for frame in frames_yuv444:
        parts.append(b"FRAME\n" + np.ascontiguousarray(frame.transpose(2, 0, 1)).tobytes())
    return b"".join(parts)


def test_y4m_in_and_mono_y4m_out_keep_rate_and_size(remover_small) -> None:
    out = pipe(remover_small, y4m_stream(FRAMES, " XCOLORRANGE=FULL"), size=None, y4m_out=True)
    header, _, body = out.partition(b"\n")
    assert header == b"YUV4MPEG2 W31 H23 F30000:1001 Ip A1:1 Cmono XCOLORRANGE=FULL"
    frames = body.split(b"FRAME\n")
    assert frames[0] == b"" and len(frames) == 4 and all(len(f) == 23 * 31 for f in frames[1:])


@pytest.mark.parametrize(
    ("data", "options", "message", "before_model"),
    [
        (b"YUV4MPEG2 W10 H10 C444\n", {"size": (8, 8)}, r"--size disagrees with the y4m header \(10x10\)", True),
        (b"YUV4MPEG2 W10 H10 C444\n", {"pix_fmt": "bgr24"}, r"--pix-fmt does not apply to y4m input", True),
        (b"YUV4MPEG2 W10 H10 C411\n", {}, r"colour space C411 is not supported", True),
        (b"YUV4MPEG2 W10 H10 It C420\n", {}, r"interlacing It is not supported", True),
        (b"YUV4MPEG2 W99999 H10\n", {}, r"frame size 99999x10 is out of range", True),
        (b"YUV4MPEG2 Wx H10\n", {}, r"lacks a valid width and height", True),
        (b"YUV4MPEG2 W10 H10", {}, r"header is cut short", True),
        (b"YUV4MPEG2 W4 H2 C444\nFRAMX\n" + bytes(24), {}, r"frame 0 does not start with FRAME", False),
        (b"YUV4MPEG2 W4 H2 C444\nFRAME\n" + bytes(20), {}, r"stdin ended inside frame 0: got 20 of 24 bytes", False),
        (bytes(100), {}, r"raw input needs --size WxH", True),
        (bytes(100), {"size": (4, 4), "y4m_out": True, "output": "rgba"}, r"--out-format y4m carries --output alpha",
         True),
    ],
)
def test_bad_streams_are_refused_in_one_line(remover_small, data: bytes, options: dict, message: str,
                                            before_model: bool) -> None:
    """Header and option errors come before the model is loaded; errors in a frame come after it."""
    settings = {"size": None, "pix_fmt": None, "output": "alpha", "y4m_out": False, **options}
    loads = []
    with pytest.raises(InputError, match=message) as caught:
        pipe(remover_small, data, loads=loads, **settings)
    assert "\n" not in str(caught.value)
    assert (loads == []) == before_model, f"the model was loaded {len(loads)} times"


@pytest.mark.parametrize("text", ["1280", "1280x", "x720", "12.5x4", "0x10", "20000x10", "-5x5"])
def test_bad_sizes(text: str) -> None:
    with pytest.raises(ValueError, match="size"):
        parse_size(text)


def test_y4m_header_fields() -> None:
    header = read_header(io.BytesIO(b"YUV4MPEG2 W321 H241 F25:1 Ip A1:1 C420mpeg2 XYSCSS=420MPEG2\n"))
    assert (header.width, header.height, header.rate, header.color_space) == (321, 241, "25:1", "420mpeg2")
    assert header.color_range == 1  # limited unless the header says FULL
    assert header.plane_sizes == [(241, 321), (121, 161), (121, 161)]
    assert header.frame_bytes == 321 * 241 + 2 * 121 * 161
