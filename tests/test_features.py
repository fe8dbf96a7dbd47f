"""Feature columns from chunks: windows, sums and means, flags, time travel."""

from __future__ import annotations

import datetime as dt

import numpy as np
import orjson
import pytest

from sightlines._decode import build_plan
from sightlines._timeparse import end_of_day
from sightlines.features import chunk_from_users, feature_columns
from sightlines.profiles import decode_block
from sightlines.schema import learn_schema

T = dt.date(2026, 11, 24)


def build(users):
    schema = learn_schema(users, min_support=0.0, min_level_count=1)
    plan = build_plan(schema, schema.roles)
    block = decode_block([orjson.dumps(u) for u in users], 1, "f", plan, {})
    chunk = chunk_from_users(block.users, block.ids, plan, schema, latest=end_of_day(T) + 86400)
    return schema, chunk


USERS = [
    {"id": "a", "created": "2026-01-01T00:00:00Z", "vars": {"tier": "gold", "score": 3},
     "purchases": [{"time": "2026-11-24T10:00:00Z", "total": 10, "items": [{"qty": 2}, {"qty": 1}]},
                   {"time": "2026-11-20T10:00:00Z", "total": 20, "items": [{"qty": 1}]},
                   {"time": "2026-06-01T10:00:00Z", "total": 40, "items": []}],
     "messages": [{"time": "2026-11-10T08:00:00Z", "channel": "email", "opened": "2026-11-23T09:00:00Z"},
                  {"time": "2026-11-01T08:00:00Z", "channel": "sms", "opened": None}]},
    {"id": "b", "created": "2026-11-20T00:00:00Z", "vars": {"tier": "silver", "score": 1}, "purchases": [],
     "messages": []},
]


def test_windows_sums_means_and_recency():
    schema, chunk = build(USERS)
    cols = feature_columns(chunk, schema, as_of=end_of_day(T))
    a = {k: v[0] for k, v in cols.items()}
    assert a["purchases.n"] == 3
    assert [a[f"purchases.n_{w}d"] for w in (1, 7, 30, 90, 365)] == [1, 2, 2, 2, 3]
    assert a["purchases.total.sum_7d"] == 30 and a["purchases.total.mean_7d"] == 15
    assert a["purchases.total.sum_365d"] == 70
    assert a["purchases.items_n.sum_365d"] == 3  # lengths of the nested item lists
    assert a["purchases.days_since_last"] == pytest.approx(14 / 24)
    assert a["purchases.days_since_first"] == pytest.approx((dt.date(2026, 11, 25) - dt.date(2026, 6, 1)).days - 10 / 24)
    assert a["messages.opened.sum_30d"] == 1 and a["messages.opened.mean_30d"] == 0.5
    assert a["messages.opened.days_since_last"] == pytest.approx(1 + 15 / 24)
    assert a["messages.channel=email.n_30d"] == 1 and a["messages.channel=sms.n_30d"] == 1
    b = {k: v[1] for k, v in cols.items()}
    assert b["purchases.n"] == 0 and np.isnan(b["purchases.days_since_last"]) and np.isnan(b["purchases.total.mean_7d"])
    assert list(cols) == schema.column_names()
    assert all(v.dtype == np.float32 for v in cols.values())


def test_time_travel_ignores_later_events_and_state():
    schema, chunk = build(USERS)
    past = end_of_day(dt.date(2026, 11, 15))
    cols = feature_columns(chunk, schema, as_of=past, time_travel=True)
    a = {k: v[0] for k, v in cols.items()}
    assert a["purchases.n"] == 1  # only the June purchase existed on Nov 15
    assert a["purchases.total.sum_365d"] == 40 and a["purchases.n_30d"] == 0
    assert a["purchases.days_since_last"] == pytest.approx((dt.date(2026, 11, 16) - dt.date(2026, 6, 1)).days - 10 / 24)
    # a message sent before the cutoff but opened after it was not opened yet
    assert a["messages.n"] == 2 and a["messages.opened.sum_365d"] == 0
    assert np.isnan(a["messages.opened.days_since_last"])
    # state columns are unknowable in the past; timestamps are time-travelled
    assert np.isnan(a["vars.score"]) and np.isnan(a["vars.tier"])
    assert a["created"] == pytest.approx((dt.date(2026, 11, 16) - dt.date(2026, 1, 1)).days)
    # a user created after the cutoff has no age yet
    b = {k: v[1] for k, v in cols.items()}
    assert np.isnan(b["created"])
    # without time travel, the same instant still ignores later events but keeps state
    now = feature_columns(chunk, schema, as_of=past)
    assert now["purchases.n"][0] == 1 and now["vars.score"][0] == 3


def test_take_keeps_the_events_of_the_chosen_users():
    schema, chunk = build(USERS)
    sub = chunk.take(np.array([0]))
    cols = feature_columns(sub, schema, as_of=end_of_day(T))
    assert sub.user_ids == ["a"] and cols["purchases.n"].tolist() == [3]
