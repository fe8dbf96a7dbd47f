"""The examples in the library's docstrings run as written (they use in-memory storage)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import sightlines

MODULES = sorted(m.name for m in pkgutil.walk_packages(sightlines.__path__, "sightlines.")
                 if not m.name.endswith("__main__"))


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0, f"{result.failed} docstring example(s) of {name} failed"
