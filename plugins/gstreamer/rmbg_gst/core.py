"""The core (``rmbg_filter``, numpy with it): made importable if it can be, else the ImportError that says why.

Every module of this package imports from the core only ``if IMPORT_ERROR is None``: without
the core the element still registers (with its ``output`` and ``qos`` properties only) and
fails its start with an element error that names ``IMPORT_ERROR``. torch is not imported
here: it waits for the element's first start.
"""

from __future__ import annotations

import importlib
import os
import site
import sys


def _find_core() -> ImportError | None:
    """Make the core importable; the ImportError when it cannot be found.

    GStreamer's plugin loader runs the system Python, which does not see a venv.
    The core is found through PYTHONPATH, or in the venv that ``VIRTUAL_ENV`` names
    (set by ``source .venv/bin/activate``), whose site directory is then added.
    """
    try:
        importlib.import_module("rmbg_filter.compositing")  # numpy too
    except ImportError as error:
        venv = os.environ.get("VIRTUAL_ENV")
        if not venv:
            return error
        site.addsitedir(f"{venv}/lib/python{sys.version_info[0]}.{sys.version_info[1]}/site-packages")
        try:
            importlib.import_module("rmbg_filter.compositing")  # numpy too
        except ImportError as second:
            return second
    return None


#: None when the core imports (numpy too comes from the venv); else the ImportError
IMPORT_ERROR = _find_core()

__all__ = ["IMPORT_ERROR"]
