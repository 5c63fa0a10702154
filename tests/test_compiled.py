"""``--compile``: torch.compile with static shapes gives the eager network's alphas, short last batch included."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import CLI
from pictures import picture

from rmbg_filter import load


def test_compiled_pipe_equals_eager_with_a_short_last_batch(checkpoints: dict[str, Path]) -> None:
    frames = np.stack([picture(40, 56), picture(40, 56)[::-1], picture(40, 56)[:, ::-1]])
    eager = load(checkpoints["safetensors"], device="cpu", runtime="torch", model_size=64)
    # batch 2 over 3 frames: the last batch is padded, so the one compiled shape serves both
    done = subprocess.run([str(CLI), "pipe", "--size", "56x40", "--output", "alpha", "--compile",
                           "--batch-size", "2", "--model-size", "64", "--model", str(checkpoints["safetensors"])],
                          input=np.ascontiguousarray(frames).tobytes(), capture_output=True, timeout=600,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    alphas = np.frombuffer(done.stdout, np.uint8).reshape(3, 40, 56)
    assert np.abs(alphas.astype(int) - eager(frames)).max() <= 1


def test_compile_needs_the_torch_runtime(checkpoints: dict[str, Path]) -> None:
    with pytest.raises(ValueError, match="compile= needs runtime='torch'"):
        load(checkpoints["safetensors"], device="cpu", runtime="onnxruntime", compile=True)
