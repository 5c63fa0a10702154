"""How the tests reach the host programs as a user would: VapourSynth's Python and GStreamer's plugin path."""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "scripts"


def vs_python() -> Path:
    """The Python that has vapoursynth and vsrmbg installed.

    VapourSynth's wheels need Python 3.12+: ``$RMBG_VS_PYTHON``, else this Python when it is
    3.12+, else the ``.venv-vs`` that ``make setup`` makes.
    """
    configured = os.environ.get("RMBG_VS_PYTHON")
    if configured:
        return Path(configured)
    if sys.version_info >= (3, 12):
        return Path(sys.executable)
    return ROOT / ".venv-vs" / "bin" / "python"


def gst_environment(registry: Path, model: Path) -> dict[str, str]:
    """The environment of a user who followed the README, with a registry of its own and RMBG_MODEL set."""
    env = {name: value for name, value in os.environ.items() if name != "PYTHONPATH"}
    return {**env, "HF_HUB_OFFLINE": "1", "VIRTUAL_ENV": sys.prefix,
            "GST_PLUGIN_PATH": str(ROOT / "plugins" / "gstreamer"),
            "GST_REGISTRY": str(registry / "registry.bin"), "RMBG_MODEL": str(model)}
