"""Publish validation: what stops a table from being published."""

from __future__ import annotations

import pyarrow as pa

from sightlines.publish import validate_predictions


def table(**cols) -> pa.Table:
    base = {"user_id": ["a", "b", "c"], "purchase_7": [0.1, 0.5, 0.9], "purchase_7_ktile": [1, 500, 1000]}
    base.update(cols)
    return pa.table({k: v for k, v in base.items() if v is not None})


UNITS = {"purchase_7": "probability"}


def test_a_good_table_has_no_problems():
    assert validate_predictions(table(), expected_rows=3, units=UNITS) == []


def test_each_problem_is_named():
    assert validate_predictions(table(), expected_rows=4, units=UNITS) == ["3 rows but the snapshot has 4 good users"]
    assert validate_predictions(table(user_id=["a", "a", "c"]), expected_rows=3, units=UNITS) == [
        "user ids are not unique"]
    assert validate_predictions(table(purchase_7=[0.1, float("nan"), 1.5]), expected_rows=3, units=UNITS) == [
        "purchase_7: 1 NaN or infinite value(s)", "purchase_7: 1 value(s) outside [0, 1]"]
    assert validate_predictions(table(purchase_7_ktile=None), expected_rows=3, units=UNITS) == [
        "purchase_7_ktile: column missing"]
    assert validate_predictions(table(purchase_7_ktile=pa.array([1, None, 1000], pa.int16())), expected_rows=3,
                                units=UNITS) == ["purchase_7_ktile: 1 missing value(s)"]
    assert validate_predictions(table(purchase_7_ktile=[0, 5, 1001]), expected_rows=3, units=UNITS) == [
        "purchase_7_ktile: outside 1..1000"]
    assert validate_predictions(table(purchase_7=None, purchase_7_ktile=None), expected_rows=3, units=UNITS) == [
        "purchase_7: column missing"]
