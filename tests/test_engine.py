"""The engine: parity of the whole pipeline, batching, streaming order and bounded memory."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from rmbg_filter import Backend, OptionError, load

RNG = np.random.default_rng(11)


@pytest.mark.parametrize("runtime", ["torch", "onnxruntime"])
def test_alpha_of_the_fixture_frame_matches_the_seed_within_one_level(
    runtime: str, checkpoints: dict[str, Path], parity: dict[str, np.ndarray]
) -> None:
    remover = load(checkpoints["published"], device="cpu", dtype="float32", runtime=runtime)
    assert remover.backend.runtime == runtime
    alpha = remover(parity["frame_333x500"])
    assert alpha.shape == (333, 500) and alpha.dtype == np.uint8
    difference = np.abs(alpha.astype(int) - parity["alpha_333x500"])
    assert difference.max() <= 1
    with torch.inference_mode():
        pixels = torch.from_numpy(parity["frame_333x500"])[None]
        from rmbg_filter.transforms import network_input, view

        side = remover.network.matte(network_input(view(pixels, (1024, 1024)), torch.float32))
    stats = [float(side.min()), float(side.max()), float(side.mean())]
    np.testing.assert_allclose(stats, parity["side1_1024_stats"], atol=1e-4)


def test_bfloat16_fast_mode_stays_within_two_levels(
    checkpoints: dict[str, Path], parity: dict[str, np.ndarray]
) -> None:
    remover = load(checkpoints["safetensors"], device="cpu", dtype="bfloat16")
    difference = np.abs(remover(parity["frame_333x500"]).astype(int) - parity["alpha_333x500"])
    assert difference.max() <= 2 and difference.mean() < 1


def test_a_batch_gives_what_its_frames_give_one_by_one(remover_small) -> None:
    frames = RNG.integers(0, 256, (5, 41, 67, 3), dtype=np.uint8)
    batch = remover_small(frames)
    assert batch.shape == (5, 41, 67) and batch.dtype == np.uint8
    for frame, alpha in zip(frames, batch, strict=True):
        assert np.abs(remover_small(frame).astype(int) - alpha).max() <= 1


def test_gray_rgba_and_torch_frames(remover_small) -> None:
    rgb = RNG.integers(0, 256, (30, 20, 3), dtype=np.uint8)
    rgba = np.concatenate([rgb, np.zeros((30, 20, 1), np.uint8)], axis=2)
    np.testing.assert_array_equal(remover_small(rgba), remover_small(rgb))
    np.testing.assert_array_equal(remover_small(torch.from_numpy(rgb)), remover_small(rgb))
    gray = rgb[..., 0]
    np.testing.assert_array_equal(remover_small(gray), remover_small(np.repeat(gray[..., None], 3, axis=2)))
    assert remover_small(np.stack([gray, gray])[..., None]).shape == (2, 30, 20)


@pytest.mark.parametrize("shape", [(10, 10, 5), (2, 30, 20), (10, 10, 2), (1, 2, 8, 8, 3)])
def test_shapes_outside_the_contract_are_refused(remover_small, shape: tuple[int, ...]) -> None:
    expected = f"frames must be shaped (H,W), (H,W,3), (H,W,4) or a batch (N,H,W,C) with C in 1, 3, 4; got {shape}"
    with pytest.raises(ValueError, match=re.escape(expected)):
        remover_small(np.zeros(shape, np.uint8))


def test_stream_yields_every_alpha_in_order_across_sizes(remover_small) -> None:
    frames = [RNG.integers(0, 256, (h, w, 3), dtype=np.uint8)
              for h, w in [(17, 23)] * 4 + [(31, 9)] * 2 + [(17, 23)]]
    streamed = list(remover_small.stream(iter(frames)))
    assert len(streamed) == len(frames)
    for frame, alpha in zip(frames, streamed, strict=True):
        np.testing.assert_array_equal(alpha, remover_small(frame))


def test_stream_reads_a_bounded_distance_ahead(remover_small) -> None:
    """However long the source, the engine holds only a few batches: memory is flat."""
    pulled = 0
    lead = []

    def source() -> Iterator[np.ndarray]:
        nonlocal pulled
        for _ in range(60):
            pulled += 1
            yield np.zeros((16, 16, 3), np.uint8)

    for count, _ in enumerate(remover_small.stream(source(), depth=2), start=1):
        lead.append(pulled - count)
    assert count == 60
    # at most: read depth (2) + one being grouped + one inferring + one being yielded, batches of 3
    assert max(lead) <= 5 * remover_small.batch_size


def test_stream_reraises_a_source_error_after_the_frames_before_it(remover_small) -> None:
    def source() -> Iterator[np.ndarray]:
        yield np.zeros((8, 8, 3), np.uint8)
        raise OSError("decoder broke")

    seen = []
    with pytest.raises(OSError, match="decoder broke"):
        for alpha in remover_small.stream(source()):
            seen.append(alpha)
    assert len(seen) == 1


def test_stream_refuses_a_bad_frame_naming_its_index(remover_small) -> None:
    frames = [np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8, 3), np.float32)]
    with pytest.raises(TypeError, match="frame 1 must be uint8, got float32"):
        list(remover_small.stream(frames))
    with pytest.raises(ValueError, match=r"frame 0 must be one frame"):
        list(remover_small.stream([np.zeros((2, 8, 8, 3), np.uint8)]))


def test_closing_a_stream_early_stops_its_threads(remover_small) -> None:
    before = {t for t in threading.enumerate() if t.name.startswith("rmbg-")}

    def endless() -> Iterator[np.ndarray]:
        while True:
            yield np.zeros((8, 8, 3), np.uint8)

    stream = remover_small.stream(endless())
    next(stream)
    stream.close()
    for thread in threading.enumerate():
        if thread.name.startswith("rmbg-") and thread not in before:
            thread.join(timeout=10)
            assert not thread.is_alive(), thread.name


def test_backend_choice_and_refusals() -> None:
    assert Backend.choose("cpu", "auto") == Backend(torch.device("cpu"), torch.float32, "onnxruntime")
    assert Backend.choose("cpu", "auto", "torch").runtime == "torch"
    assert Backend.choose("cpu", "bfloat16") == Backend(torch.device("cpu"), torch.bfloat16, "torch")
    with pytest.raises(OptionError, match="runtime='onnxruntime' runs float32 or int8 on the CPU, not bfloat16") \
            as refused:
        Backend.choose("cpu", "bfloat16", "onnxruntime")
    assert refused.value.option == "runtime"
    if not torch.cuda.is_available():
        assert Backend.choose("auto", "auto").device.type in ("cpu", "mps")
        with pytest.raises(OptionError, match="torch sees no CUDA GPU; use device='cpu'"):
            Backend.choose("cuda", "auto")
    with pytest.raises(OptionError, match="device= must be auto, cpu, cuda, cuda:N or mps, got 'tpu'") as refused:
        Backend.choose("tpu", "auto")
    assert refused.value.option == "device"


def test_load_refuses_bad_options_before_reading_the_model(tmp_path: Path) -> None:
    missing = tmp_path / "missing.safetensors"
    for keywords, option, message in [
        ({"batch_size": 0}, "batch_size", "batch_size= must be from 1 to 256, got 0"),
        ({"model_size": 16}, "model_size", "model_size= must be from 32 to 4096, got 16"),
        ({"model_size": 321}, "model_size", "model_size= must be a multiple of 32, got 321; use 320 or 352"),
        ({"model_size": (64, 64)}, "model_size", "model_size= must be an int, got (64, 64)"),
        ({"dtype": "int4"}, "dtype", "dtype= must be one of auto, fast, float32, float16, bfloat16, int8, got 'int4'"),
        ({"runtime": "tvm"}, "runtime", "runtime= must be one of auto, torch, onnxruntime, openvino, got 'tvm'"),
        ({"compile": True, "runtime": "onnxruntime"}, "compile", "compile= needs runtime='torch'"),
    ]:
        with pytest.raises(OptionError) as refused:
            load(missing, **keywords)
        assert refused.value.option == option and str(refused.value).startswith(message), refused.value
