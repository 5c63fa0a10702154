"""rmbg-filter: background removal for video with BRIA's RMBG-1.4.

``load()`` returns a callable engine: uint8 frames in, uint8 alphas out.
``BriaRMBG`` is the network itself as a transformers model, a drop-in for the Hub's remote-code class.
``ModelOptions`` and ``QualityOptions`` declare the options every adapter takes.

Names are imported on first use (PEP 562), so ``import rmbg_filter`` and the
light modules (options, errors, compositing) load no torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .backend import Backend
    from .engine import BackgroundRemover, load, shared_engine
    from .errors import InputError, ModelLoadError, OptionError
    from .hub_network import BriaRMBG, RMBGConfig
    from .options import ModelOptions, QualityOptions

#: public name -> the module that defines it
_HOMES = {"Backend": "backend", "BackgroundRemover": "engine", "load": "engine", "shared_engine": "engine",
          "InputError": "errors", "ModelLoadError": "errors", "OptionError": "errors",
          "BriaRMBG": "hub_network", "RMBGConfig": "hub_network", "ModelOptions": "options",
          "QualityOptions": "options"}

__all__ = ["Backend", "BackgroundRemover", "BriaRMBG", "InputError", "ModelLoadError", "ModelOptions", "OptionError",
           "QualityOptions", "RMBGConfig", "load", "shared_engine"]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{home}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_HOMES])
