"""``choose_encoding``: the encoder a video output gets, and how --codec, --crf and --pix-fmt change it."""

from __future__ import annotations

from pathlib import Path

import pytest

from rmbg_filter.cli.encodings import choose_encoding
from rmbg_filter.compositing import parse_output
from rmbg_filter.errors import InputError


def chosen(name: str, output: str = "rgba", **overrides):
    return choose_encoding(Path(name), parse_output(output), "yuv420p", (320, 240), **overrides)


def test_the_container_chooses_without_overrides() -> None:
    assert (chosen("o.mov").codec, chosen("o.mov").pix_fmt) == ("prores_ks", "yuva444p10le")
    assert chosen("o.mkv", "green").options == {"crf": "18", "preset": "medium"}
    assert chosen("o.webm").options["crf"] == "20"


def test_crf_is_kept_with_a_codec_and_checked_against_the_chosen_one() -> None:
    assert chosen("o.mkv", "green", crf=30).options["crf"] == "30"
    # .mov rgba is ProRes, which has no CRF; the chosen libx264 has, with its own tuning
    encoding = chosen("o.mov", "green", codec="libx264", crf=25)
    assert (encoding.codec, encoding.options) == ("libx264", {"crf": "25", "preset": "medium"})
    encoding = chosen("o.mkv", "green", codec="libvpx-vp9", crf=33)
    assert encoding.options == {"crf": "33", "b": "0", "row-mt": "1"}
    with pytest.raises(InputError, match="--crf does not apply to prores_ks"):
        chosen("o.mov", crf=20)
    with pytest.raises(InputError, match="--crf does not apply to ffv1"):
        chosen("o.mov", "green", codec="ffv1", crf=20)


def test_a_codec_without_tuning_gets_no_foreign_options_and_pix_fmt_overrides() -> None:
    assert chosen("o.mov", codec="ffv1").options == {}  # not ProRes's profile=4444
    assert chosen("o.mkv", "green", pix_fmt="yuv444p").pix_fmt == "yuv444p"
    assert chosen("o.mkv", "green", codec="libx264").options == {"crf": "18", "preset": "medium"}
