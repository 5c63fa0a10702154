"""The exported network quantized to int8 (ONNX Runtime's static quantizer), calibrated on real photos; cached.

Static post-training quantization: weights int8 per output channel, activations uint8 per tensor,
in QDQ form, which ONNX Runtime's CPU provider fuses into integer convolutions (VNNI where the
CPU has it). Activation ranges are calibrated on four photos shipped in ``calibration/``
(scikit-image's chelsea, coffee, rocket, hubble_deep_field; CC0 or public domain), with ranges at
the 99.999th percentile of each tensor's histogram: min-max ranges, set by rare outliers, put
max errors of 250 levels in the alpha.

What it costs in accuracy is measured by ``make bench`` (scripts/int8_error.py) on photos kept
out of calibration: on IS-Net, int8 is outside the 16-level budget that ``dtype="fast"`` keeps, so
``fast`` never picks it; it is the explicit choice of a user who trades accuracy for speed.

The graph is built once per float export (weights, model size, batch) and quantizer settings,
and kept beside the export with a sha256 file written last: a graph whose digest does not match
(a cut-short or damaged cache) is built again, with one warning.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from .digests import sha256_of
from .errors import Mention, OptionError, system_reason
from .transforms import network_input, view

__all__ = ["CALIBRATION", "SETTINGS", "int8_graph"]

_LOG = logging.getLogger(__name__)

#: the calibration photos, shipped with the package (see calibration/README.md)
CALIBRATION = tuple(Path(__file__).with_name("calibration") / name
                    for name in ("chelsea.jpg", "coffee.jpg", "rocket.jpg", "hubble_deep_field.jpg"))
#: the quantizer's settings; a change makes a new cache entry
SETTINGS = {"format": "QDQ", "per_channel": True, "weights": "QInt8", "activations": "QUInt8",
            "calibration": "Percentile", "percentile": 99.999}


def int8_graph(float_graph: Path, shape: tuple[int, int, int, int]) -> Path:
    """The int8 graph of ``float_graph`` (an export of ``matte`` for inputs of ``shape`` (N,3,H,W)), built on
    first use and kept beside it; a damaged cache is built again. An OptionError naming ``dtype`` when the
    cache cannot be written."""
    import onnxruntime

    digest = hashlib.sha256(json.dumps([SETTINGS, onnxruntime.__version__, shape]).encode())
    for photo in CALIBRATION:
        digest.update(photo.read_bytes())
    path = float_graph.with_name(f"matte-int8-{digest.hexdigest()[:16]}.onnx")
    check = path.with_suffix(".sha256")
    damage = _damage(path, check)
    if damage is None:
        return path
    if damage:
        _LOG.warning("rmbg-filter: the int8 cache %s is damaged (%s); building it again", path, damage)
    else:
        _LOG.warning("rmbg-filter: building the int8 network for these weights at %dx%d, once (a minute or "
                     "more); it is kept in %s", shape[2], shape[3], path.parent)
    try:
        with tempfile.TemporaryDirectory(prefix="partial-", dir=path.parent) as partial:
            built = Path(partial) / path.name
            _quantize(float_graph, built, shape)
            (Path(partial) / check.name).write_text(sha256_of(built) + "\n")
            os.replace(built, path)
            os.replace(Path(partial) / check.name, check)  # last: the graph is complete
    except OSError as error:
        raise OptionError("dtype", f"cannot write the int8 cache {path.parent} ({system_reason(error)}); set "
                          "RMBG_CACHE to a writable folder, or use ", Mention("dtype", "float32")) from error
    return path


def _damage(path: Path, check: Path) -> str | None:
    """None if the cached graph is whole; "" if there is none; else what is wrong with it."""
    if not path.exists() and not check.exists():
        return ""
    if not check.is_file():
        return "its sha256 file is missing"
    if not path.is_file():
        return "the graph is missing"
    if sha256_of(path) != check.read_text().strip():
        return "its sha256 does not match"
    return None


def _batches(shape: tuple[int, int, int, int]) -> Iterator[dict[str, np.ndarray]]:
    """The calibration photos as network inputs (N,3,H,W) float32 in [-0.5, 0.5], N photos a batch (cycled)."""
    from PIL import Image

    count = shape[0]
    photos = [np.asarray(Image.open(photo).convert("RGB")) for photo in CALIBRATION]
    for start in range(0, len(photos), count):
        views = [view(torch.from_numpy(photos[(start + index) % len(photos)])[None], shape[2:])
                 for index in range(count)]
        yield {"pixel_values": network_input(torch.cat(views), torch.float32).contiguous().numpy()}


class _Reader:
    """ONNX Runtime's CalibrationDataReader protocol over ``_batches``."""

    def __init__(self, shape: tuple[int, int, int, int]) -> None:
        self._batches = _batches(shape)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._batches, None)


def _quantize(source: Path, destination: Path, shape: tuple[int, int, int, int]) -> None:
    """Quantize ``source`` to ``destination`` with SETTINGS, calibrated on CALIBRATION at ``shape``."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    # the quantizer prints its progress on stdout (which can be a pipe of frames) and logs advice on the root logger
    quiet = _FromQuantizer()
    logging.getLogger().addFilter(quiet)
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            quantize_static(str(source), str(destination), _Reader(shape), quant_format=QuantFormat.QDQ,
                            per_channel=SETTINGS["per_channel"], weight_type=QuantType.QInt8,
                            activation_type=QuantType.QUInt8, calibrate_method=CalibrationMethod.Percentile,
                            extra_options={"CalibPercentile": SETTINGS["percentile"]})
    finally:
        logging.getLogger().removeFilter(quiet)


class _FromQuantizer(logging.Filter):
    """Drops the records ONNX Runtime's quantizer logs (advice meant for its own command line)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return f"onnxruntime{os.sep}quantization" not in record.pathname
