"""k-tiles: 1..1000, higher value -> higher k-tile, ties share a k-tile."""

import numpy as np
import pytest

from sightlines.score import ktiles


def test_range_order_and_ties():
    rng = np.random.default_rng(1)
    v = np.round(rng.gamma(0.5, 2.0, size=50_000), 2)  # many ties
    k = ktiles(v)
    assert k.dtype == np.int16 and k.min() >= 1 and k.max() == 1000
    order = np.argsort(v, kind="stable")
    assert np.all(np.diff(k[order]) >= 0)
    for value in np.unique(v)[:50]:
        assert len(np.unique(k[v == value])) == 1
    higher = v[:-1] < v[1:]
    assert np.all(k[:-1][higher] <= k[1:][higher])


def test_uniform_values_fill_the_ktiles_evenly():
    k = ktiles(np.arange(100_000, dtype=float))
    assert np.all(np.bincount(k)[1:] == 100)


@pytest.mark.parametrize("values,expected", [([5.0], [1000]), ([1.0, 1.0, 1.0], [1000, 1000, 1000]),
                                             ([0.1, 0.5, 0.5, 0.9], [250, 750, 750, 1000]), ([], [])])
def test_small_cases(values, expected):
    assert ktiles(np.array(values)).tolist() == expected
