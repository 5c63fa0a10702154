"""The CUDA path: side-stream uploads and downloads, float16, batches, CUDA graphs.

These need a CUDA GPU and are skipped without one (the CPU machine this
project is built on has none; see the README's speed section).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from pictures import picture

from rmbg_filter import load

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    """Seven frames in two sizes, so batches of 3 split on the size change and end short."""
    return [np.roll(picture(48, 80), i, axis=1) for i in range(4)] + [
        np.roll(picture(37, 61), i, axis=0) for i in range(3)]


@pytest.fixture(scope="module")
def cpu_alphas(checkpoints: dict[str, Path], frames: list[np.ndarray]) -> list[np.ndarray]:
    cpu = load(checkpoints["safetensors"], device="cpu", runtime="torch", model_size=64)
    return [cpu(frame) for frame in frames]


@pytest.mark.parametrize(("dtype", "tolerance"), [("float32", 2), ("float16", 3)])
def test_cuda_stream_in_batches_matches_the_cpu(dtype: str, tolerance: int, checkpoints: dict[str, Path],
                                                 frames: list[np.ndarray], cpu_alphas: list[np.ndarray]) -> None:
    # float32 convolutions may run in TF32 on the GPU, hence a level more than the CPU's exact mode
    gpu = load(checkpoints["safetensors"], device="cuda", dtype=dtype, model_size=64, batch_size=3)
    streamed = list(gpu.stream(iter(frames)))
    assert len(streamed) == len(frames)
    for alpha, expected in zip(streamed, cpu_alphas, strict=True):
        assert alpha.shape == expected.shape
        assert np.abs(alpha.astype(int) - expected).max() <= tolerance
    # alone or in a batch of 3: cuDNN picks kernels per shape, which moved 16 of 3,840 pixels by one level on an H100
    assert np.abs(gpu(frames[0]).astype(int) - streamed[0]).max() <= 1


def test_cuda_graphs_match_eager(checkpoints: dict[str, Path], frames: list[np.ndarray]) -> None:
    eager = load(checkpoints["safetensors"], device="cuda", model_size=64, batch_size=3)
    compiled = load(checkpoints["safetensors"], device="cuda", model_size=64, batch_size=3, compile=True)
    same_size = frames[:4]
    for got, expected in zip(compiled.stream(iter(same_size)), eager.stream(iter(same_size)), strict=True):
        assert np.abs(got.astype(int) - expected).max() <= 1


def test_frames_already_on_the_gpu_give_the_same_alpha(checkpoints: dict[str, Path],
                                                       frames: list[np.ndarray]) -> None:
    gpu = load(checkpoints["safetensors"], device="cuda", model_size=64)
    on_device = torch.from_numpy(frames[0]).cuda()
    np.testing.assert_array_equal(gpu(on_device), gpu(frames[0]))
