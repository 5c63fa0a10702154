"""The ``rmbg-filter`` command line and its file and stream I/O, over the core in ``rmbg_filter``.

Nothing in the core imports this package; see ``main`` for the exit statuses.
"""

from .main import main

__all__ = ["main"]
