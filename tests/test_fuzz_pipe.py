"""Fuzzing ``rmbg-filter pipe``: its words and its stdin, through the command line's own ``main``.

Each case runs ``main(argv, stdin=..., stdout=...)`` in this process with the real
engine (the deterministic weights at model size 32, loaded once per distinct model
options). A case must end in exit status 0 with every complete frame written, or 2
with one line on stderr; never 1 ("unexpected ..." is how ``main`` reports a bug), a
traceback, a hang, or a peak of memory beyond what its frames need.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import fuzzing
import pytest
from hypothesis import assume, event, given
from hypothesis import strategies as st
from PIL import Image

from rmbg_filter import engine
from rmbg_filter.cli.main import main
from rmbg_filter.cli.pipe import PIXEL_FORMATS

#: most a case may raise this process's peak memory (VmHWM): frames are tiny, the engines are loaded before
PEAK_GROWTH_BYTES = 600 << 20
COLOR_SPACES = {"420jpeg": (1, 1, 1), "420paldv": (1, 1, 1), "420mpeg2": (1, 1, 1), "420": (1, 1, 1),
                "422": (1, 1, 0), "444": (1, 0, 0), "mono": (1, None, None), "420p10": (2, 1, 1),
                "422p10": (2, 1, 0), "444p10": (2, 0, 0)}


def _reset_peak() -> None:
    """Start measuring this process's peak resident memory (VmHWM) afresh."""
    Path("/proc/self/clear_refs").write_text("5")


def _memory(field: str) -> int:
    """A /proc/self/status memory field in bytes."""
    line = next(line for line in Path("/proc/self/status").read_text().splitlines() if line.startswith(field))
    return int(line.split()[1]) * 1024


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory, checkpoints: dict[str, Path]) -> dict[str, str]:
    """Paths a fuzzed ``--output image:PATH`` may name: a picture, a corrupt one, a bomb; and the model."""
    root = tmp_path_factory.mktemp("fuzz-pipe")
    Image.new("RGB", (7, 5), (10, 200, 30)).save(root / "background.png")
    (root / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(40))
    Image.new("1", (20000, 9000)).save(root / "bomb.png")  # 180 megapixels in a small file
    return {"background": str(root / "background.png"), "corrupt": str(root / "corrupt.png"),
            "bomb": str(root / "bomb.png"), "missing": str(root / "missing.png"),
            "model": str(checkpoints["safetensors"])}


def run(argv: list[str], stdin: bytes, capsys: pytest.CaptureFixture[str]) -> tuple[int, bytes, str]:
    """``main(argv)`` on ``stdin``, bounded in time and in memory: (status, stdout, stderr)."""
    out = io.BytesIO()
    engines = len(engine._SHARED)
    _reset_peak()
    before = _memory("VmRSS")
    with fuzzing.at_most(60):
        try:
            status = main(argv, stdin=io.BytesIO(stdin), stdout=out)
        except SystemExit as usage:  # argparse's own exit: its usage errors
            status = usage.code
    grew = _memory("VmHWM") - before
    err = capsys.readouterr().err
    event(f"exit status {status}")
    if len(engine._SHARED) == engines:  # loading an engine for new model options is no leak
        assert grew < PEAK_GROWTH_BYTES, f"peak memory grew {grew >> 20} MB for {argv}"
    assert "Traceback" not in err and "unexpected" not in err, err
    assert status in (0, 2), (status, err)
    if status == 2:
        assert err.count("\n") == 1 and err.startswith("rmbg-filter"), err
    return status, out.getvalue(), err


def engine_words(model: str) -> list[str]:
    """The fixed model options of every case: the weights, on the CPU, at model size 32."""
    return ["--model", model, "--device", "cpu", "--runtime", "torch", "--model-size", "32"]


numbers = st.one_of(st.integers(-3, 12).map(str), st.sampled_from(["", "1e400", "nan", "inf", "-0", "0x10", "9" * 30]),
                    st.floats(allow_nan=True).map(str), st.text(max_size=6))
#: quality and batching options that are all valid: half the cases, so that most of those run frames through
valid_quality_words = st.lists(st.one_of(
    st.tuples(st.just("--temporal-radius"), st.integers(0, 3).map(str)),
    st.tuples(st.just("--refine"), st.sampled_from(["none", "guided"])),
    st.tuples(st.just("--refine-radius"), st.integers(1, 4).map(str)),
    st.tuples(st.just("--refine-eps"), st.sampled_from(["1e-5", "0.01", "1"])),
    st.tuples(st.just("--normalize"), st.sampled_from(["minmax", "none"])),
    st.tuples(st.just("--reuse-threshold"), st.sampled_from(["0", "30", "60"])),
    st.tuples(st.just("--batch-size"), st.integers(1, 3).map(str)),
    st.tuples(st.just("--dtype"), st.sampled_from(["float32", "bfloat16"])),
    st.just(("--decontaminate",)),
), max_size=4).map(lambda pairs: [word for pair in pairs for word in pair])
fuzzed_quality_words = st.lists(st.one_of(
    st.tuples(st.just("--temporal-radius"), numbers),
    st.tuples(st.just("--refine"), st.sampled_from(["none", "guided", "Guided", "", "bilateral"])),
    st.tuples(st.just("--refine-radius"), numbers),
    st.tuples(st.just("--refine-eps"), numbers),
    st.tuples(st.just("--normalize"), st.sampled_from(["minmax", "none", "max", ""])),
    st.tuples(st.just("--reuse-threshold"), numbers),
    st.tuples(st.just("--batch-size"), st.one_of(st.integers(1, 3).map(str), numbers)),
    st.tuples(st.just("--dtype"), st.sampled_from(["float32", "bfloat16", "float64", "auto"])),
    st.just(("--decontaminate",)),
), max_size=4).map(lambda pairs: [word for pair in pairs for word in pair])
#: (words, True when every one is valid: the case must then succeed)
quality_words = st.one_of(valid_quality_words.map(lambda words: (words, True)),
                          fuzzed_quality_words.map(lambda words: (words, False)))


def output_words(files: dict[str, str]) -> st.SearchStrategy[str]:
    """``--output`` words: each mode, colours good and bad, backgrounds readable or not, and any text."""
    return st.one_of(
        st.sampled_from(["rgba", "alpha", "green", "blur", "RGBA", "color", "color:", "image:", "image"]),
        st.text("0123456789abcdefABCDEFG#", max_size=9).map(lambda hex_: f"color:{hex_}"),
        st.sampled_from([files[name] for name in ("background", "corrupt", "bomb", "missing")]).map(
            lambda path: f"image:{path}"),
        st.text(max_size=12),
    )


@st.composite
def well_formed_y4m(draw: st.DrawFn) -> tuple[bytes, int, int, int | None]:
    """A y4m stream as ffmpeg writes it (any colour space and range, odd sizes, 1 to 3 whole frames), its
    width, height and frame count."""
    width, height = draw(st.integers(1, 40)), draw(st.integers(1, 40))
    space = draw(st.sampled_from(sorted(COLOR_SPACES)))
    color_range = draw(st.sampled_from(["", " XCOLORRANGE=FULL", " XCOLORRANGE=LIMITED"]))
    stream = f"YUV4MPEG2 W{width} H{height} F25:1 Ip A1:1 C{space}{color_range}\n".encode()
    sample, shift_x, shift_y = COLOR_SPACES[space]
    chroma = 0 if shift_x is None else 2 * -(-width >> shift_x) * -(-height >> shift_y)
    size = (width * height + chroma) * sample
    count = draw(st.integers(1, 3))
    for _ in range(count):
        stream += b"FRAME\n" + draw(st.binary(min_size=size, max_size=size))
    return stream, width, height, count


@st.composite
def y4m_streams(draw: st.DrawFn) -> tuple[bytes, int, int, int | None]:
    """A y4m stream (a header of valid and invalid tags in any order, frames of the right size or not,
    cut anywhere, sometimes with bytes changed), its width and height as declared, and its frame count
    when it is well formed (half are), else None."""
    if draw(st.booleans()):
        return draw(well_formed_y4m())
    width = draw(st.one_of(st.integers(1, 40), st.sampled_from([0, -4, 16384, 16385, 10 ** 12])))
    height = draw(st.one_of(st.integers(1, 40), st.sampled_from([0, -4, 16384, 16385, 10 ** 12])))
    space = draw(st.one_of(st.sampled_from(sorted(COLOR_SPACES)), st.text(max_size=6)))
    tags = [f"W{width}", f"H{height}", f"C{space}",
            draw(st.sampled_from(["F25:1", "F30000:1001", "F0:0", "F", "Fx:y"])),
            draw(st.sampled_from(["Ip", "I?", "It", "Ib", "Im", "I"])),
            draw(st.sampled_from(["A1:1", "A0:0", "A", "A128:117"])),
            draw(st.sampled_from(["XCOLORRANGE=FULL", "XCOLORRANGE=LIMITED", "XCOLORRANGE=", "XYSCSS=420JPEG"])),
            *draw(st.lists(st.text(st.characters(codec="ascii", exclude_characters="\n "), max_size=8), max_size=2))]
    tags = draw(st.permutations(tags))
    tags = tags[:len(tags) - draw(st.integers(0, 2))]  # some tags left out
    stream = b"YUV4MPEG2 " + " ".join(tags).encode() + b"\n"
    sample, shift_x, shift_y = COLOR_SPACES.get(space, (1, 1, 1))
    luma = max(width, 0) * max(height, 0) if width <= 40 and height <= 40 else 64
    chroma = 0 if shift_x is None else 2 * -(-max(width, 0) >> shift_x) * -(-max(height, 0) >> shift_y)
    frame_bytes = (luma + (chroma if luma != 64 else 0)) * sample
    for _ in range(draw(st.integers(0, 3))):
        stream += draw(st.sampled_from([b"FRAME\n", b"FRAME Ixyz\n", b"FRAMX\n", b"FRAME"]))
        stream += draw(st.binary(min_size=frame_bytes, max_size=frame_bytes))
    stream = stream[:draw(st.integers(0, len(stream)))] if draw(st.booleans()) else stream
    if stream and draw(st.integers(0, 9)) == 0:
        at = draw(st.integers(0, len(stream) - 1))
        stream = stream[:at] + bytes([draw(st.integers(0, 255))]) + stream[at + 1:]
    return stream, width, height, None


@fuzzing.cases(full=3000, slice=60)
@given(y4m=y4m_streams(), out_format=st.sampled_from(["raw", "y4m"]), mode=st.sampled_from(["alpha", "rgba"]),
       words=quality_words)
def test_y4m_stdin(y4m: tuple[bytes, int, int, int | None], out_format: str, mode: str,
                   words: tuple[list[str], bool], files: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    """Any y4m-looking stdin: a whole frame out for each frame in, or one line and status 2; a well-formed
    stream with valid options is never refused, and every frame comes out."""
    stream, width, height, count = y4m
    status, out, err = run(["pipe", *engine_words(files["model"]), "--out-format", out_format, "--output", mode,
                            *words[0]], stream, capsys)
    if count is not None and words[1] and not (out_format == "y4m" and mode != "alpha"):
        assert status == 0, err
    if status == 0:
        header, frames = out.partition(b"\n")[::2] if out_format == "y4m" else (b"", out)
        assert header.startswith(b"YUV4MPEG2 ") or out_format == "raw"
        frame = (6 if out_format == "y4m" else 0) + width * height * (1 if mode == "alpha" else 4)
        assert len(frames) % frame == 0 and len(frames) // frame <= stream.count(b"FRAME")
        assert count is None or len(frames) // frame == count


@st.composite
def raw_streams(draw: st.DrawFn) -> tuple[str, str, bytes, bool]:
    """A ``--size`` word, a ``--pix-fmt`` word and a raw stdin (whole frames, cut frames, any bytes), and
    whether all three are right (half are: whole frames of a valid size and format)."""
    width, height = draw(st.integers(1, 24)), draw(st.integers(1, 24))
    if draw(st.booleans()):
        pix_fmt = draw(st.sampled_from(sorted(PIXEL_FORMATS)))
        frame = width * height * PIXEL_FORMATS[pix_fmt][0]
        data = draw(st.binary(min_size=frame, max_size=frame)) * draw(st.integers(0, 3))
        return f"{width}x{height}", pix_fmt, data, not data.startswith(b"YUV4MPEG2 ")
    size = draw(st.one_of(st.just(f"{width}x{height}"), st.just(f"{width}x{height}"), st.sampled_from(
        ["0x4", "4x0", "-4x4", "4x", "x4", "4X4", "16385x2", "16384x16384", "12000x12000", "4x4x4", " 4x4",
         "\uff14x4"]),
        st.text(max_size=8)))
    pix_fmt = draw(st.one_of(*[st.sampled_from(sorted(PIXEL_FORMATS))] * 3, st.sampled_from(["RGB24", "yuv420p", ""])))
    frame = width * height * PIXEL_FORMATS.get(pix_fmt, (3,))[0]
    count = draw(st.integers(0, 3))
    data = draw(st.binary(min_size=frame * count, max_size=frame * count))
    data = data[:draw(st.integers(0, len(data)))] if draw(st.booleans()) else data
    return size, pix_fmt, data, False


@fuzzing.cases(full=3000, slice=60)
@given(raw=raw_streams(), words=quality_words, out_format=st.sampled_from(["raw", "y4m", "rgb"]))
def test_raw_stdin_and_size_and_pixel_format(raw: tuple[str, str, bytes, bool], words: tuple[list[str], bool],
                                             out_format: str, files: dict[str, str],
                                             capsys: pytest.CaptureFixture[str]) -> None:
    """Raw frames with any ``--size`` and ``--pix-fmt``: whole frames out, or one line and status 2; whole
    frames of a right size and format with valid options are never refused."""
    size, pix_fmt, data, right = raw
    assume(not data.startswith(b"YUV4MPEG2 "))
    status, out, err = run(["pipe", *engine_words(files["model"]), f"--size={size}", f"--pix-fmt={pix_fmt}",
                            f"--out-format={out_format}", *words[0]], data, capsys)
    if right and words[1] and out_format != "rgb":
        assert status == 0, err
    if status == 0:
        width, height = (int(side) for side in size.split("x"))
        header, body = out.partition(b"\n")[::2] if out_format == "y4m" else (b"", out)
        frame = width * height + (6 if out_format == "y4m" else 0)
        assert len(body) == len(data) // (width * height * PIXEL_FORMATS[pix_fmt][0]) * frame, header


@fuzzing.cases(full=1500, slice=40)
@given(words=quality_words, data=st.data())
def test_output_modes_and_quality_options(words: tuple[list[str], bool], data: st.DataObject, files: dict[str, str],
                                          capsys: pytest.CaptureFixture[str]) -> None:
    """``--output`` words (colours, backgrounds readable, corrupt, missing or a bomb) with any quality
    options, on two 9x7 frames: the frames out, or one line and status 2; a valid mode with valid options
    is never refused."""
    mode = data.draw(output_words(files))
    frames = data.draw(st.binary(min_size=2 * 9 * 7 * 3, max_size=2 * 9 * 7 * 3))
    status, out, err = run(["pipe", *engine_words(files["model"]), "--size", "9x7", f"--output={mode}",
                            *words[0]], frames, capsys)
    valid = mode in ("rgba", "alpha", "green", "blur", f"image:{files['background']}") or re.fullmatch(
        r"color:#?[0-9A-Fa-f]{6}", mode)
    if valid and words[1]:
        assert status == 0, err
    if status == 0:
        assert len(out) in (2 * 9 * 7, 2 * 9 * 7 * 3, 2 * 9 * 7 * 4)
    if mode.startswith("image:") and mode.endswith(("bomb.png", "corrupt.png", "missing.png")):
        assert status == 2, err
