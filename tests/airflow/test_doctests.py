"""The examples in the docstrings of the Airflow package run as written."""

from __future__ import annotations

import doctest

import pytest

import sightlines_airflow.backends.base
import sightlines_airflow.backends.local
import sightlines_airflow.dag_factory
import sightlines_airflow.operators.step


@pytest.mark.parametrize("module", [sightlines_airflow.backends.base, sightlines_airflow.backends.local,
                                    sightlines_airflow.dag_factory, sightlines_airflow.operators.step],
                         ids=lambda m: m.__name__)
def test_docstring_examples(module):
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0
