"""rmbg-filter: background removal for video with BRIA's RMBG-1.4.

``load()`` returns a callable engine: uint8 frames in, uint8 alphas out.
``BriaRMBG`` is the network itself, a drop-in for the Hub's remote-code class.
"""

from __future__ import annotations

from .engine import Backend, BackgroundRemover, load
from .errors import InputError, ModelLoadError
from .network import BriaRMBG, RMBGConfig

__all__ = ["Backend", "BackgroundRemover", "BriaRMBG", "InputError", "ModelLoadError", "RMBGConfig", "load"]
