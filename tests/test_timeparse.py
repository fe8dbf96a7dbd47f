"""Timestamps: the fast vectorised path agrees with the general parser on every spelling."""

import datetime as dt

import numpy as np
import pytest

from sightlines._timeparse import end_of_day, parse_time, parse_times

SPELLINGS = [
    "2026-11-24T00:00:00Z", "2026-11-24T02:00:00+02:00", "2026-11-23T22:00:00-02:00", "2026-11-24T00:00:00.5Z",
    "2026-11-24T00:00:00.123456+00:00", "2026-11-24 00:00:00", "2026-11-24T00:00:00", 1764000000, 1764000000.5,
    "2024-02-29T12:00:00Z", "2023-02-29T12:00:00Z", "2026-13-01T00:00:00Z", "2026-02-30T00:00:00Z", "soon", "",
    None, True, [1], {"a": 1}, "ü", "2026-11-24T25:00:00Z", float("nan"), -5,
]


def test_vectorised_matches_scalar_parser():
    fast = parse_times(SPELLINGS)
    slow = np.array([parse_time(v) for v in SPELLINGS])
    slow[slow < 0] = np.nan
    np.testing.assert_array_equal(fast, slow)
    assert fast[0] == fast[1] == fast[2] == dt.datetime(2026, 11, 24, tzinfo=dt.timezone.utc).timestamp()
    assert np.isnan(fast[10]) and np.isnan(fast[12])  # impossible dates


@pytest.mark.parametrize("nulls", [0, 5, 500])
def test_mostly_null_columns(nulls):
    values = ["2026-11-24T00:00:00Z"] * 10 + [None] * nulls
    out = parse_times(values)
    assert np.isfinite(out[:10]).all() and np.isnan(out[10:]).all()


def test_far_future_is_missing():
    latest = end_of_day(dt.date(2026, 11, 24)) + 86400
    out = parse_times(["2026-11-24T12:00:00Z", "2027-01-01T00:00:00Z"], latest=latest)
    assert np.isfinite(out[0]) and np.isnan(out[1])
