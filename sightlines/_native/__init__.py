"""Compiled parts of Sightlines (optional accelerators with a pure-Python reference).

``_scanner`` is built from ``_scanner.c`` when the package is installed (see
``setup.py``). Where it could not be built, :data:`scanner` is None and the
pure-Python decoder is used; ``sightlines doctor``-style checks and the test
suite report which one is active.
"""

from __future__ import annotations

from types import ModuleType

scanner: ModuleType | None
try:
    from . import _scanner as scanner
except ImportError:  # not built (no C compiler where the package was installed)
    scanner = None

__all__ = ["scanner"]
