"""Find and load RMBG-1.4 weights into this project's own network, safely.

A model is named by a Hub repo id, a local directory in the Hub layout
(``config.json`` + ``model.safetensors`` or ``pytorch_model.bin``), or one
weights file (``.safetensors``, ``.pth``, ``.bin``, or an ONNX export ``.onnx``
whose folded convolutions are read as weights, see ``onnx_weights``). No code
from a model repository is ever run: ``auto_map`` entries are ignored, pickles
are read with ``weights_only=True``, and ONNX graphs are only read. Every failure is a ModelLoadError whose message is
one line that says what to do.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import re
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path

import torch

from .errors import Mention, ModelLoadError, ModelNotFoundError, first_line
from .network import RMBGNetwork, meta_network
from .options import MODEL_ENV

__all__ = ["DEFAULT_MODEL", "MODEL_ENV", "load_network", "resolve_model"]

DEFAULT_MODEL = "briaai/RMBG-1.4"
WEIGHT_SUFFIXES = (".safetensors", ".pth", ".bin", ".pt", ".onnx")
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.pth")
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
#: what RMBG-1.4's config.json says of the network's shape
_CHANNELS = {"in_ch": 3, "out_ch": 1}
#: the hint of every "cannot find it" error
_HOW = ("pass a local directory or weights file with ", Mention("model", "PATH", literal=False), " or RMBG_MODEL=PATH")


def resolve_model(model: str | os.PathLike[str] | None) -> str | Path:
    """Turn the user's ``model`` into a Path (local) or a Hub repo id (str).

    ``None`` means ``$RMBG_MODEL``, else ``briaai/RMBG-1.4``. A name that exists
    on disk, or that looks like a path, is a Path; ``owner/name`` is a repo id.
    """
    if model is None:
        model = os.environ.get(MODEL_ENV) or DEFAULT_MODEL
    text = os.fspath(model)
    if not text:  # Path("") is the working directory: never load whatever lies there unasked
        raise ModelLoadError("model is empty; ", *_HOW)
    try:
        path = Path(text).expanduser()
    except RuntimeError:  # ~name of no such user: the word as it is (not found, below)
        path = Path(text)
    looks_local = text.startswith(("/", ".", "~")) or text.lower().endswith(WEIGHT_SUFFIXES)
    exists = _exists(path)
    if isinstance(model, os.PathLike) or exists or looks_local or not _REPO_ID.match(text):
        if not exists:
            raise ModelNotFoundError(f"model not found: {text} is neither a file, a directory nor a Hub repo id; ",
                                     *_HOW)
        return path
    return text


def _exists(path: Path) -> bool:
    """Whether ``path`` exists; False for a name no file can have (too long, a NUL byte in it)."""
    try:
        return path.exists()
    except (OSError, ValueError):
        return False


def load_network(
    model: str | os.PathLike[str] | None = None, *, revision: str | None = None
) -> RMBGNetwork:
    """Load RMBG-1.4 in float32 on the CPU, in eval mode, every tensor matched by name and shape."""
    source = resolve_model(model)
    if isinstance(source, str):
        source = _download(source, revision)
    if not source.is_dir():
        return _from_file(source)
    weights = _weights_in(source)
    if weights is None:
        raise ModelLoadError(f"{source} holds none of {', '.join(WEIGHT_FILES)}; point ", Mention("model"),
                             " at an RMBG-1.4 directory or weights file")
    if (source / "config.json").is_file() and weights.name != "model.pth":
        return _from_directory(source, weights)
    return _from_file(weights)  # its config is RMBG-1.4's own: a config.json beside model.pth adds nothing


def _weights_in(directory: Path) -> Path | None:
    """The first of WEIGHT_FILES present in ``directory``, or None."""
    return next((directory / n for n in WEIGHT_FILES if (directory / n).is_file()), None)


def _download(repo_id: str, revision: str | None) -> Path:
    """The local snapshot of a Hub repo (config.json and one weights file), from the cache or the network.

    Honours the Hub client's cache and ``HF_HUB_OFFLINE``; no code file is fetched.
    """
    from huggingface_hub import snapshot_download

    try:
        with _quiet_loggers():
            folder = Path(snapshot_download(repo_id, revision=revision,
                                            allow_patterns=["config.json", "model.safetensors"]))
            if not (folder / "model.safetensors").is_file():
                folder = Path(snapshot_download(repo_id, revision=revision,
                                                allow_patterns=["config.json", "pytorch_model.bin"]))
    except Exception as error:  # offline, unknown repo, revision or host: all told the same way
        raise ModelLoadError(f"cannot load model '{repo_id}' from the Hugging Face Hub ({first_line(error)}); ",
                             *_HOW) from error
    return folder


def _from_file(path: Path) -> RMBGNetwork:
    """Read one weights file, check it, and load it into a new network strictly."""
    state = _read_state(path)
    _check_tensors(path, {name: tuple(tensor.shape) for name, tensor in state.items()})
    network = RMBGNetwork()
    network.load_state_dict(state, strict=True)
    return network.eval()


def _read_state(path: Path) -> dict[str, torch.Tensor]:
    """Read a weights file as a state dict on the CPU; pickles with ``weights_only=True``."""
    suffix = path.suffix.lower()
    if not path.is_file():  # a FIFO or a device would be read until it ends, perhaps never
        raise ModelLoadError(f"{path} is not a regular file; ", *_HOW)
    if suffix not in WEIGHT_SUFFIXES:
        raise ModelLoadError(
            f"{path}: unsupported weights file type {suffix or '(none)'}; expected .safetensors, .pth, .bin or .onnx"
        )
    if suffix == ".onnx":
        from .onnx_weights import kept_onnx_state

        return kept_onnx_state(path)
    try:
        if suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(path, device="cpu")
        else:
            with warnings.catch_warnings():  # a damaged pickle makes torch warn before it fails: one line is ours
                warnings.simplefilter("ignore")
                state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as error:  # every reader fails differently on a bad file
        raise ModelLoadError(
            f"{path}: not a readable weights file ({first_line(error)}); re-download the RMBG-1.4 checkpoint"
        ) from error
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelLoadError(f"{path}: holds no plain state dict of tensors; expected an RMBG-1.4 checkpoint")
    return dict(state)


def _from_directory(directory: Path, weights: Path) -> RMBGNetwork:
    """Load a Hub-layout directory: its ``config.json`` must shape RMBG-1.4 (``in_ch`` 3 and ``out_ch`` 1 where it
    names them; its other keys, ``auto_map`` included, are not read), then ``weights`` load as one file."""
    try:
        config = json.loads((directory / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:  # unreadable, not UTF-8 or not JSON (both ValueErrors)
        raise ModelLoadError(f"{directory}: not a usable RMBG-1.4 checkpoint (config.json: {first_line(error)})"
                             ) from error
    shape = {key: config.get(key, value) for key, value in _CHANNELS.items()} if isinstance(config, dict) else None
    if shape != _CHANNELS:
        raise ModelLoadError(f"{directory}: not an RMBG-1.4 checkpoint: its config.json is not RMBG-1.4's (it has "
                             f"{shape or type(config).__name__}, RMBG-1.4 has {_CHANNELS})")
    return _from_file(weights)


@functools.cache
def _network_shapes() -> dict[str, tuple[int, ...]]:
    """Name -> shape of every tensor of RMBG-1.4 (read from the meta-device network)."""
    return {name: tuple(tensor.shape) for name, tensor in meta_network().state_dict().items()}


def _check_tensors(source: Path | str, shapes: Mapping[str, tuple[int, ...]]) -> None:
    """Raise unless ``shapes`` (name -> shape) are exactly RMBG-1.4's tensors, before any network is made.

    Batch-norm counters (``num_batches_tracked``) may be missing.
    """
    expected = _network_shapes()
    missing = sorted(n for n in expected.keys() - shapes.keys() if not n.endswith("num_batches_tracked"))
    unexpected = sorted(shapes.keys() - expected.keys())
    if missing or unexpected:
        parts = [f"{word} {names[0]}" + (f" and {len(names) - 1} more" if len(names) > 1 else "")
                 for word, names in (("missing", missing), ("unexpected", unexpected)) if names]
        raise ModelLoadError(f"{source}: not an RMBG-1.4 checkpoint: {'; '.join(parts)}")
    for name, shape in shapes.items():
        if shape != expected[name]:
            raise ModelLoadError(f"{source}: not an RMBG-1.4 checkpoint: {name} has shape {list(shape)}, "
                                 f"RMBG-1.4 has {list(expected[name])}")


@contextlib.contextmanager
def _quiet_loggers() -> Iterator[None]:
    """Silence the Hub client's retry chatter (a download keeps its progress bar); the error we raise says what
    matters in one line."""
    logger = logging.getLogger("huggingface_hub")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)
