"""The --output words and what each makes of a frame and its alpha."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rmbg_filter.compositing import GREEN, OutputMode, box_blur, composite, parse_output
from rmbg_filter.errors import OptionError

RNG = np.random.default_rng(3)
FRAME = RNG.integers(0, 256, (12, 17, 3), dtype=np.uint8)
ALPHA = RNG.integers(0, 256, (12, 17), dtype=np.uint8)


@pytest.mark.parametrize(
    ("word", "mode"),
    [("rgba", OutputMode("rgba")), ("alpha", OutputMode("alpha")), ("blur", OutputMode("blur")),
     ("green", OutputMode("color", color=GREEN)), ("color:#FF8000", OutputMode("color", color=(255, 128, 0))),
     ("color:0a0B0c", OutputMode("color", color=(10, 11, 12))),
     ("image:bg.jpg", OutputMode("image", image=Path("bg.jpg")))],
)
def test_words(word: str, mode: OutputMode) -> None:
    assert parse_output(word) == mode


@pytest.mark.parametrize("word", ["", "RGBA", "color:#12345", "color:red", "image:", "mask", "blur:3"])
def test_unknown_words_list_the_accepted_ones(word: str) -> None:
    with pytest.raises(OptionError, match=r"output= must be rgba, alpha, green, color:#RRGGBB, blur or image:PATH") \
            as refused:
        parse_output(word)
    assert refused.value.option == "output" and isinstance(refused.value, ValueError)


def test_rgba_and_alpha_keep_the_values() -> None:
    rgba = composite(FRAME, ALPHA, parse_output("rgba"))
    assert rgba.shape == (12, 17, 4)
    np.testing.assert_array_equal(rgba[..., :3], FRAME)
    np.testing.assert_array_equal(rgba[..., 3], ALPHA)
    np.testing.assert_array_equal(composite(FRAME, ALPHA, parse_output("alpha")), ALPHA)
    assert parse_output("rgba").channels == 4 and parse_output("alpha").channels == 1
    assert parse_output("green").channels == 3


def test_colour_composite_is_the_alpha_blend() -> None:
    out = composite(FRAME, ALPHA, parse_output("color:#204060"))
    weight = ALPHA[..., None] / 255.0
    expected = np.rint(FRAME * weight + np.array([32, 64, 96]) * (1 - weight))
    assert np.abs(out.astype(int) - expected).max() <= 1
    opaque = np.full_like(ALPHA, 255)
    np.testing.assert_array_equal(composite(FRAME, opaque, parse_output("green")), FRAME)
    clear = np.zeros_like(ALPHA)
    assert (composite(FRAME, clear, parse_output("green")) == np.array(GREEN, np.uint8)).all()


def test_the_blend_is_the_rounded_float_blend_for_every_value() -> None:
    """Every (frame, alpha, background) triple of uint8 values: integer arithmetic, float32's result."""
    values = np.arange(256, dtype=np.uint8)
    front, alpha, behind = (grid.reshape(4096, 4096) for grid in np.meshgrid(values, values, values, indexing="ij"))
    out = composite(np.repeat(front[..., None], 3, axis=2), alpha, parse_output("image:x.png"),
                    np.repeat(behind[..., None], 3, axis=2))
    weight = alpha.astype(np.float32) / 255.0
    expected = np.rint(front.astype(np.float32) * weight + behind.astype(np.float32) * (1.0 - weight))
    for channel in range(3):
        np.testing.assert_array_equal(out[..., channel], expected.astype(np.uint8))


def test_image_composite_uses_the_background_and_needs_it() -> None:
    background = RNG.integers(0, 256, FRAME.shape, dtype=np.uint8)
    clear = np.zeros_like(ALPHA)
    np.testing.assert_array_equal(composite(FRAME, clear, parse_output("image:x.png"), background), background)
    with pytest.raises(ValueError, match="the image mode needs its background"):
        composite(FRAME, clear, parse_output("image:x.png"))


def test_blur_smooths_and_keeps_flat_areas() -> None:
    flat = np.full((20, 30, 3), 77, np.uint8)
    np.testing.assert_allclose(box_blur(flat, 3), 77, atol=1e-3)
    noisy = RNG.integers(0, 256, (40, 40, 3), dtype=np.uint8)
    assert box_blur(noisy, 2).std() < noisy.std() / 3
    clear = np.zeros((40, 40), np.uint8)
    assert composite(noisy, clear, parse_output("blur")).std() < noisy.std() / 3


def test_decontamination_changes_the_subject_not_what_lies_behind_it() -> None:
    """Under a soft alpha the subject's colours are estimated; the blurred background is still the frame's."""
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)
    alpha = np.zeros((60, 80), np.uint8)
    alpha[:, 30:50] = 128
    plain = composite(frame, alpha, parse_output("blur"))
    cleaned = composite(frame, alpha, parse_output("blur"), decontaminate=True)
    np.testing.assert_array_equal(cleaned[alpha == 0], plain[alpha == 0])
    assert np.abs(cleaned.astype(int) - plain)[alpha == 128].mean() > 1
    rgba = composite(frame, alpha, parse_output("rgba"), decontaminate=True)
    np.testing.assert_array_equal(rgba[..., 3], alpha)
    assert not np.array_equal(rgba[..., :3], frame)
