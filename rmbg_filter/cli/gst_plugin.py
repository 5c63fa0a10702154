"""``rmbg-filter gst-plugin-path``: the folder that holds the GStreamer element, for ``GST_PLUGIN_PATH``."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from ..errors import InputError

#: the installed package that is the element's plugin folder (``python/rmbg.py`` and the package ``rmbg_gst``);
#: in the repository, plugins/gstreamer
PLUGIN_PACKAGE = "rmbg_gstreamer"


def plugin_folder() -> Path:
    """The plugin folder, found without importing it (nor GStreamer); InputError when it is not installed."""
    spec = importlib.util.find_spec(PLUGIN_PACKAGE)
    folders = [Path(folder) for folder in (spec.submodule_search_locations or [])] if spec else []
    found = [folder for folder in folders if (folder / "python" / "rmbg.py").is_file()]
    if not found:
        raise InputError(f"the GStreamer element is not installed with this rmbg-filter (no package "
                         f"{PLUGIN_PACKAGE} with python/rmbg.py); reinstall it: pip install rmbg-filter")
    return found[0]
