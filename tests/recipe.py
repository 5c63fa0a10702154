"""The deterministic RMBG-1.4 weights of ``tests/fixtures/README.md``'s recipe.

Every tensor gets its own generator seeded with the CRC-32 of its name, so the
weights do not depend on the order of the tensors.
"""

from __future__ import annotations

import json
import math
import zlib
from pathlib import Path

import numpy as np
import torch

FIXTURES = Path(__file__).parent / "fixtures"

# config.json as published with RMBG-1.4 (auto_map names remote code we never run)
PUBLISHED_CONFIG = {
    "_name_or_path": "briaai/RMBG-1.4",
    "architectures": ["BriaRMBG"],
    "auto_map": {"AutoConfig": "MyConfig.RMBGConfig", "AutoModelForImageSegmentation": "briarmbg.BriaRMBG"},
    "custom_pipelines": {"image-segmentation": {"impl": "MyPipe.RMBGPipe", "pt": ["AutoModelForImageSegmentation"]}},
    "in_ch": 3,
    "model_type": "SegformerForSemanticSegmentation",
    "out_ch": 1,
    "torch_dtype": "float32",
    "transformers_version": "4.38.0.dev0",
}


def checkpoint_shapes() -> dict[str, list[int]]:
    """Every tensor name of the published checkpoint mapped to its shape."""
    return json.loads((FIXTURES / "rmbg14_state_dict.json").read_text())["tensors"]


def recipe_tensor(name: str, shape: list[int]) -> np.ndarray:
    """One tensor of the recipe: float32 of ``shape`` (int64 0 for counters)."""
    if name.endswith("num_batches_tracked"):
        return np.zeros(shape, dtype=np.int64)
    rs = np.random.RandomState(zlib.crc32(name.encode("utf-8")))
    if name.endswith("running_var"):
        values = 0.5 + rs.random_sample(shape)
    elif name.endswith("running_mean") or name.endswith("bias"):
        values = 0.1 * rs.standard_normal(shape)
    elif len(shape) == 4:
        fan_in = shape[1] * shape[2] * shape[3]
        values = rs.standard_normal(shape) * math.sqrt(1 / fan_in)
        if name.startswith("side"):
            values = values * 4
    elif len(shape) == 1:
        values = 1 + 0.1 * rs.standard_normal(shape)
    else:
        raise ValueError(f"the recipe has no rule for {name} {shape}")
    return values.astype(np.float32)


def recipe_state_dict() -> dict[str, torch.Tensor]:
    """The whole deterministic checkpoint, in the published names."""
    return {
        name: torch.from_numpy(recipe_tensor(name, shape))
        for name, shape in checkpoint_shapes().items()
    }
