"""Find and load RMBG-1.4 weights into this project's own network, safely.

A model is named by a Hub repo id, a local directory in the Hub layout
(``config.json`` + ``model.safetensors`` or ``pytorch_model.bin``), or one
weights file (``.safetensors``, ``.pth``, ``.bin``). No code from a model
repository is ever run: ``auto_map`` entries are ignored, and pickles are read
with ``weights_only=True``. Every failure is a ModelLoadError whose message is
one line that says what to do.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path

import torch

from .errors import ModelLoadError, first_line
from .network import BriaRMBG, RMBGConfig

__all__ = ["DEFAULT_MODEL", "MODEL_ENV", "load_network", "resolve_model"]

DEFAULT_MODEL = "briaai/RMBG-1.4"
MODEL_ENV = "RMBG_MODEL"
WEIGHT_SUFFIXES = (".safetensors", ".pth", ".bin", ".pt")
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.pth")
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_HOW = "pass a local directory or weights file with --model PATH or RMBG_MODEL=PATH"


def resolve_model(model: str | os.PathLike[str] | None) -> str | Path:
    """Turn the user's ``model`` into a Path (local) or a Hub repo id (str).

    ``None`` means ``$RMBG_MODEL``, else ``briaai/RMBG-1.4``. A name that exists
    on disk, or that looks like a path, is a Path; ``owner/name`` is a repo id.
    """
    if model is None:
        model = os.environ.get(MODEL_ENV) or DEFAULT_MODEL
    text = os.fspath(model)
    path = Path(text).expanduser()
    if isinstance(model, os.PathLike) or path.exists():
        return path
    looks_local = text.startswith(("/", ".", "~")) or text.lower().endswith(WEIGHT_SUFFIXES)
    if looks_local or not _REPO_ID.match(text):
        raise ModelLoadError(f"model not found: {text} is neither a file, a directory nor a Hub repo id; {_HOW}")
    return text


def load_network(
    model: str | os.PathLike[str] | None = None, *, revision: str | None = None
) -> BriaRMBG:
    """Load RMBG-1.4 in float32 on the CPU, in eval mode, every tensor matched by name and shape."""
    source = resolve_model(model)
    if isinstance(source, str):
        return _from_pretrained(source, revision=revision)
    if not source.exists():
        raise ModelLoadError(f"model path not found: {source}; {_HOW}")
    if source.is_dir():
        if (source / "config.json").is_file():
            return _from_pretrained(str(source), revision=None)
        for name in WEIGHT_FILES:
            if (source / name).is_file():
                return _from_file(source / name)
        raise ModelLoadError(
            f"{source} holds no config.json and none of {', '.join(WEIGHT_FILES)}; "
            "point --model at an RMBG-1.4 directory or weights file"
        )
    return _from_file(source)


def _from_file(path: Path) -> BriaRMBG:
    """Build the network and load one weights file into it strictly."""
    suffix = path.suffix.lower()
    if suffix not in WEIGHT_SUFFIXES:
        raise ModelLoadError(
            f"{path}: unsupported weights file type {suffix or '(none)'}; "
            "expected .safetensors, .pth or .bin"
        )
    try:
        if suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(path, device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # every reader fails differently on a bad file
        raise ModelLoadError(f"{path}: not a readable weights file ({first_line(error)}); "
                             "re-download the RMBG-1.4 checkpoint") from error
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelLoadError(f"{path}: holds no plain state dict of tensors; expected an RMBG-1.4 checkpoint")
    network = BriaRMBG(RMBGConfig())
    _check_names(path, network, set(state))
    try:
        network.load_state_dict(state, strict=False)
    except RuntimeError as error:  # shapes differ
        raise ModelLoadError(f"{path}: tensor shapes do not fit RMBG-1.4 ({first_line(error)})") from error
    return network.eval()


def _check_names(path: Path | str, network: BriaRMBG, names: set[str]) -> None:
    """Raise unless ``names`` are exactly the network's (counters may be missing)."""
    expected = set(network.state_dict())
    missing = sorted(n for n in expected - names if not n.endswith("num_batches_tracked"))
    unexpected = sorted(names - expected)
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {missing[0]}" + (f" and {len(missing) - 1} more" if len(missing) > 1 else ""))
        if unexpected:
            parts.append(f"unexpected {unexpected[0]}"
                         + (f" and {len(unexpected) - 1} more" if len(unexpected) > 1 else ""))
        raise ModelLoadError(f"{path}: not an RMBG-1.4 checkpoint: {'; '.join(parts)}")


def _from_pretrained(name: str, *, revision: str | None) -> BriaRMBG:
    """Load through transformers (Hub id or Hub-layout directory) and check every tensor."""
    try:
        with _quiet_hub():
            network, info = BriaRMBG.from_pretrained(
                name, revision=revision, output_loading_info=True, dtype=torch.float32
            )
    except OSError as error:
        if Path(name).is_dir():
            raise ModelLoadError(f"{name}: cannot load ({first_line(error)}); "
                                 f"expected config.json with {' or '.join(WEIGHT_FILES[:2])}") from error
        raise ModelLoadError(
            f"cannot load model '{name}' from the Hugging Face Hub (offline, or not cached); {_HOW}"
        ) from error
    except Exception as error:  # a corrupt file or mismatched shapes surface as many types
        raise ModelLoadError(f"{name}: not a usable RMBG-1.4 checkpoint ({first_line(error)})") from error
    missing = [n for n in info["missing_keys"] if not n.endswith("num_batches_tracked")]
    if missing or info["unexpected_keys"] or info["mismatched_keys"]:
        loaded = (set(network.state_dict()) - set(missing)) | set(info["unexpected_keys"])
        _check_names(name, network, loaded)
        raise ModelLoadError(f"{name}: tensor shapes do not fit RMBG-1.4: {info['mismatched_keys'][:1]}")
    return network.eval()


@contextlib.contextmanager
def _quiet_hub() -> Iterator[None]:
    """Silence the Hub client's retry chatter: the error we raise says it in one line."""
    loggers = [logging.getLogger(name) for name in ("huggingface_hub", "transformers")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)

