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


# ---------------------------------------------------------------------------
# the compiled window aggregates against the numpy reference
# ---------------------------------------------------------------------------


def test_the_compiled_window_aggregates_are_built():
    from sightlines._native import features as native

    assert native is not None, "sightlines._native._features is not built (is a C compiler installed?)"


def _assert_bitwise_equal(ref: dict, fast: dict) -> None:
    assert list(ref) == list(fast)
    for name, a in ref.items():
        b = fast[name]
        assert a.dtype == b.dtype == np.float32 and a.shape == b.shape, name
        same = (np.isnan(a) & np.isnan(b)) | (a.view(np.int32) == b.view(np.int32))
        bad = np.flatnonzero(~same)[:5]
        assert same.all(), f"{name} differs at rows {bad.tolist()}: {a[bad].tolist()} vs {b[bad].tolist()}"


def _odd_chunk(rng: np.random.Generator, n: int, schema, chunk):
    """``chunk``'s columns with random events: unsorted gaps, NaN and future times, missing values, odd codes."""
    from sightlines.features import Chunk, EventBlock

    events = {}
    for path, b in chunk.events.items():
        m = int(rng.integers(0, 6 * n + 1))
        uidx = np.sort(rng.integers(0, max(n, 1), m)).astype(np.int64) if n else np.zeros(0, np.int64)
        t = end_of_day(T) - rng.exponential(60, m) * 86400
        t[rng.random(m) < 0.05] = np.nan
        t[rng.random(m) < 0.05] += 30 * 86400  # after the as-of instant
        eb = EventBlock(uidx=uidx, t=t)
        for k in b.values:
            v = rng.normal(50, 40, m)
            v[rng.random(m) < 0.1] = np.nan
            v[rng.random(m) < 0.02] = -0.0
            eb.values[k] = v
        for k in b.flag_times:
            ft = t + rng.exponential(2, m) * 86400
            ft[rng.random(m) < 0.5] = np.nan
            eb.flag_times[k] = ft
        for k in b.codes:
            eb.codes[k] = rng.integers(-1, 5, m).astype(np.int16)
        events[path] = eb
    created = end_of_day(T) - rng.uniform(-5, 400, n) * 86400
    created[rng.random(n) < 0.1] = np.nan
    return Chunk(user_ids=[f"u{i}" for i in range(n)],
                 scalars={k: rng.normal(0, 1, n) for k in chunk.scalars},
                 lists={k: rng.integers(0, 4, n).astype(np.float64) for k in chunk.lists},
                 events=events, created=created, optout=np.full(n, np.nan))


@pytest.mark.parametrize("seed", range(4))
def test_compiled_window_aggregates_match_the_reference_bit_for_bit(seed):
    from sightlines.features import _compiled_feature_columns, _reference_feature_columns

    schema, chunk = build(USERS)
    rng = np.random.default_rng(seed)
    for n in (0, 1, 7, 400):
        odd = _odd_chunk(rng, n, schema, chunk)
        for as_of, travel in ((end_of_day(T), False), (end_of_day(T) - 20 * 86400, True),
                              (end_of_day(T) - 500 * 86400, True)):
            _assert_bitwise_equal(_reference_feature_columns(odd, schema, as_of=as_of, time_travel=travel),
                                  _compiled_feature_columns(odd, schema, as_of=as_of, time_travel=travel))


def test_compiled_window_aggregates_match_on_a_generated_snapshot(tmp_path):
    from sightlines._fastdecode import decode_to_chunk
    from sightlines.config import ClientConfig
    from sightlines.features import _compiled_feature_columns, _reference_feature_columns
    from sightlines.pipeline._extract import learn_client_schema
    from sightlines.profiles import RawBlocks, raw_files
    from sightlines.storage import Storage
    from sightlines.synth import generate_client

    store = Storage(str(tmp_path)).client("acme")
    generate_client(store, users=2000, date=T.isoformat(), seed=5, bad_fraction=0.01, workers=1)
    schema = learn_client_schema(store, T.isoformat(), ClientConfig(), save=False)
    plan = build_plan(schema, schema.roles, labels=True)
    latest = end_of_day(T) + 86400
    for key in raw_files(store, T.isoformat()):
        for _, first, buf in RawBlocks(store, key, block_bytes=128 << 10):
            _, chunk = decode_to_chunk(buf, first, "f", plan, schema, {}, latest=latest, roles=schema.roles)
            for days, travel in ((0, False), (7, True), (90, True), (365, True)):
                as_of = end_of_day(T) - days * 86400
                _assert_bitwise_equal(_reference_feature_columns(chunk, schema, as_of=as_of, time_travel=travel),
                                      _compiled_feature_columns(chunk, schema, as_of=as_of, time_travel=travel))
