"""Compiled parts of Sightlines (optional accelerators with a pure-Python reference).

``_scanner`` (the profile decoder) and ``_features`` (the window aggregates)
are built from their ``.c`` files when the package is installed (see
``setup.py``). Where one could not be built, it is None here and its
pure-Python reference is used; ``sightlines doctor``-style checks and the test
suite report which one is active.
"""

from __future__ import annotations

from types import ModuleType

scanner: ModuleType | None
features: ModuleType | None
try:
    from . import _scanner as scanner
except ImportError:  # not built (no C compiler where the package was installed)
    scanner = None
try:
    from . import _features as features
except ImportError:
    features = None

__all__ = ["scanner", "features"]
