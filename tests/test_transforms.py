"""Pre/postprocess against the seed's own formulas, the min-max guard, input checking."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rmbg_filter.transforms import as_frame_batch, network_input, postprocess, view

RNG = np.random.default_rng(7)


def seed_preprocess(frame: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    """The seed's preprocess for one (H,W,3) frame, as published."""
    tensor = torch.tensor(frame, dtype=torch.float32).permute(2, 0, 1)
    tensor = F.interpolate(torch.unsqueeze(tensor, 0), size=size, mode="bilinear")
    return (tensor / 255.0 - 0.5) / 1.0


def seed_postprocess(side: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """The seed's postprocess for one (1,1,h,w) side map."""
    result = torch.squeeze(F.interpolate(side, size=size, mode="bilinear"), 0)
    high, low = torch.max(result), torch.min(result)
    result = (result - low) / (high - low)
    return (result * 255).permute(1, 2, 0).numpy().astype(np.uint8)[:, :, 0]


def preprocess(frames: torch.Tensor, size: tuple[int, int], dtype: torch.dtype) -> torch.Tensor:
    """The engine's preprocess: the view (resize, /255), then the network input (-0.5)."""
    return network_input(view(frames, size), dtype)


def test_preprocess_is_the_seeds() -> None:
    frames = RNG.integers(0, 256, (2, 37, 53, 3), dtype=np.uint8)
    ours = preprocess(torch.from_numpy(frames), (64, 48), torch.float32)
    assert ours.shape == (2, 3, 64, 48) and ours.dtype == torch.float32
    assert ours.is_contiguous(memory_format=torch.channels_last)
    for index, frame in enumerate(frames):
        torch.testing.assert_close(ours[index : index + 1], seed_preprocess(frame, (64, 48)), rtol=0, atol=1e-6)


def test_gray_is_replicated_and_rgba_alpha_is_ignored() -> None:
    rgb = RNG.integers(0, 256, (1, 20, 30, 3), dtype=np.uint8)
    rgba = np.concatenate([rgb, RNG.integers(0, 256, (1, 20, 30, 1), dtype=np.uint8)], axis=3)
    torch.testing.assert_close(preprocess(torch.from_numpy(rgba), (32, 32), torch.float32),
                               preprocess(torch.from_numpy(rgb), (32, 32), torch.float32))
    gray = rgb[..., :1]
    out = preprocess(torch.from_numpy(gray), (32, 32), torch.float32)
    torch.testing.assert_close(out[:, 0], out[:, 1])
    torch.testing.assert_close(out[:, 0], out[:, 2])
    torch.testing.assert_close(out, preprocess(torch.from_numpy(np.repeat(gray, 3, axis=3)), (32, 32), torch.float32))


def test_postprocess_is_the_seeds_per_frame() -> None:
    sides = torch.from_numpy(RNG.random((3, 1, 64, 64), dtype=np.float32))
    sides[1] = sides[1] * 0.2 + 0.4  # a low-contrast frame is stretched on its own
    ours = postprocess(sides, (45, 71)).numpy()
    assert ours.shape == (3, 45, 71) and ours.dtype == np.uint8
    for index in range(3):
        expected = seed_postprocess(sides[index : index + 1], (45, 71))
        assert np.abs(ours[index].astype(int) - expected).max() <= 1
        assert ours[index].min() == 0 and ours[index].max() == 255


def test_constant_output_gives_a_defined_alpha_not_nan() -> None:
    sides = torch.full((2, 1, 16, 16), 0.75)
    sides[1] = 0.0
    alpha = postprocess(sides, (9, 11)).numpy()
    assert (alpha[0] == 191).all()  # 0.75 * 255 truncated, unstretched
    assert (alpha[1] == 0).all()


@pytest.mark.parametrize(
    ("shape", "expected", "batched"),
    [((5, 7), (1, 5, 7, 1), False), ((5, 7, 3), (1, 5, 7, 3), False), ((5, 7, 4), (1, 5, 7, 4), False),
     ((2, 5, 7, 1), (2, 5, 7, 1), True), ((2, 5, 7, 3), (2, 5, 7, 3), True), ((2, 5, 7, 4), (2, 5, 7, 4), True)],
)
def test_accepted_frame_shapes(shape: tuple[int, ...], expected: tuple[int, ...], batched: bool) -> None:
    for frames in (np.zeros(shape, np.uint8), torch.zeros(shape, dtype=torch.uint8)):
        tensor, was_batched = as_frame_batch(frames)
        assert tuple(tensor.shape) == expected and was_batched is batched


@pytest.mark.parametrize(
    ("frames", "error", "message"),
    [
        (np.zeros((5, 7, 3), np.float32), TypeError, r"frames must be uint8, got float32"),
        (torch.zeros(5, 7, 3), TypeError, r"frames must be uint8, got torch.float32"),
        ([[1, 2], [3, 4]], TypeError, r"frames must be a numpy array or torch tensor of uint8, got list"),
        (np.zeros((5, 7, 3, 2, 1), np.uint8), ValueError, r"frames must be shaped .* got \(5, 7, 3, 2, 1\)"),
        (np.zeros((2, 5, 7, 2), np.uint8), ValueError, r"got \(2, 5, 7, 2\)"),
        (np.zeros((10, 10, 5), np.uint8), ValueError, r"got \(10, 10, 5\)"),  # not a batch of gray frames
        (np.zeros((2, 5, 7), np.uint8), ValueError, r"or a batch \(N,H,W,C\) with C in 1, 3, 4; got \(2, 5, 7\)"),
        (np.zeros((0, 7, 3), np.uint8), ValueError, r"frames must not be empty"),
        (np.zeros(5, np.uint8), ValueError, r"got \(5,\)"),
    ],
)
def test_refused_frames_name_the_parameter(frames: object, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        as_frame_batch(frames)
