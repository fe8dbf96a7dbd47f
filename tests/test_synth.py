"""Tests of the synthetic client generator (sightlines.synth): small worlds, a few seconds in all."""

from __future__ import annotations

import datetime as dt
import doctest
import gzip
import json
import re

import numpy as np
import pytest

from sightlines.errors import ConfigError, NotFoundError
from sightlines.storage import Storage
from sightlines.synth import generate_client, load_truth, oracle_expected_count, oracle_probability

D1 = dt.date(2026, 11, 24)
D2 = dt.date(2026, 12, 24)
TRUTH_KEYS = {"purchase_rate", "pv_rate", "churn_at", "optout_prob", "open_prob", "mail_rate", "aov_mean", "one_off"}


# -- helpers ---------------------------------------------------------------
def raw_lines(store, date):
    """(file, 1-based line, bytes) of every line of a snapshot, files in name order."""
    out = []
    prefix = f"raw/{date}"
    for name in store.list(prefix):
        data = gzip.decompress(store.read_bytes(f"{prefix}/{name}"))
        assert data.endswith(b"\n")
        for i, line in enumerate(data[:-1].split(b"\n"), start=1):
            out.append((name, i, line))
    return out


def profiles(store, date):
    """Good profiles by id (first occurrence), parsed leniently (NaN allowed)."""
    users = {}
    for _, _, line in raw_lines(store, date):
        try:
            d = json.loads(line.removeprefix(b"\xef\xbb\xbf"))
        except ValueError:
            continue
        if isinstance(d, dict) and isinstance(d.get("id"), str) and d["id"] and d["id"] not in users:
            users[d["id"]] = d
    return users


def epoch(value):
    """Epoch seconds of a profile timestamp (ISO 8601 with zone, or epoch seconds)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    t = dt.datetime.fromisoformat(value)
    assert t.tzinfo is not None, value
    return t.timestamp()


def cut_of(date):
    return dt.datetime.combine(date + dt.timedelta(days=1), dt.time(), dt.timezone.utc).timestamp()


def events(d, role):
    v = d.get(role, [])
    return v if isinstance(v, list) else []


def auc(score, y):
    order = np.argsort(score, kind="mergesort")
    ranks = np.empty(len(score))
    ranks[order] = np.arange(1, len(score) + 1)
    n1 = y.sum()
    return (ranks[y].sum() - n1 * (n1 + 1) / 2) / (n1 * (len(y) - n1))


# -- fixtures --------------------------------------------------------------
@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    """A clean world of 2,500 users, with snapshots at D1 (anchor) and D2 = D1 + 30."""
    store = Storage(tmp_path_factory.mktemp("synth-clean")).client("acme")
    r1 = generate_client(store, users=2500, date=D1, seed=11, users_per_file=1000, workers=1)
    r2 = generate_client(store, users=2500, date=D2, seed=11, users_per_file=1000, workers=1)
    return store, r1, r2


@pytest.fixture(scope="module")
def parsed(clean):
    """The clean world's profiles (by id) at D1 and D2."""
    store = clean[0]
    return profiles(store, D1), profiles(store, D2)


@pytest.fixture(scope="module")
def dirty(tmp_path_factory):
    store = Storage(tmp_path_factory.mktemp("synth-dirty")).client("globex")
    result = generate_client(store, users=1500, date=D1, seed=5, bad_fraction=0.03, users_per_file=500, workers=1)
    return store, result


# -- tests -----------------------------------------------------------------
def test_same_arguments_same_bytes_whatever_the_workers(tmp_path):
    roots = []
    for name, workers in (("a", 1), ("b", 2)):
        store = Storage(tmp_path / name).client("acme")
        generate_client(store, users=700, date=D1, seed=3, bad_fraction=0.01, users_per_file=250, workers=workers)
        roots.append(store)
    files = roots[0].list(f"raw/{D1}")
    assert files == ["part-00000.ndjson.gz", "part-00001.ndjson.gz", "part-00002.ndjson.gz"]
    for other in roots[1:]:
        assert other.list(f"raw/{D1}") == files
        for name in files:
            assert other.read_bytes(f"raw/{D1}/{name}") == roots[0].read_bytes(f"raw/{D1}/{name}")
        assert other.read_bytes(f"truth/{D1}/bad_lines.json") == roots[0].read_bytes(f"truth/{D1}/bad_lines.json")
        assert load_truth(other, D1).equals(load_truth(roots[0], D1))
    # gzip header carries no timestamp or file name
    assert roots[0].read_bytes(f"raw/{D1}/{files[0]}")[4:8] == b"\0\0\0\0"
    # a different seed is a different world
    store = Storage(tmp_path / "d").client("acme")
    generate_client(store, users=700, date=D1, seed=4, bad_fraction=0.01, users_per_file=250, workers=1)
    assert store.read_bytes(f"raw/{D1}/{files[0]}") != roots[0].read_bytes(f"raw/{D1}/{files[0]}")


def test_rerun_replaces_the_snapshot():
    store = Storage("memory://synth-rerun").client("acme")
    generate_client(store, users=500, date=D1, seed=2, users_per_file=100, workers=1)
    first = store.read_bytes(f"raw/{D1}/part-00000.ndjson.gz")
    assert len(store.list(f"raw/{D1}")) == 5
    generate_client(store, users=500, date=D1, seed=2, users_per_file=300, workers=1)
    assert store.list(f"raw/{D1}") == ["part-00000.ndjson.gz", "part-00001.ndjson.gz"]
    generate_client(store, users=500, date=D1, seed=2, users_per_file=100, workers=1)
    assert store.read_bytes(f"raw/{D1}/part-00000.ndjson.gz") == first


def test_result_and_layout(clean):
    store, r1, r2 = clean
    assert r1.step == "generate" and r1.client == "acme" and r1.date == D1
    assert r1.n_records == 2500 and r1.details["files"] == 3 and r1.details["new_world"]
    assert r2.n_records > r1.n_records and not r2.details["new_world"]
    assert r1.outputs == {
        "raw": f"raw/{D1}", "truth": f"truth/{D1}/users.parquet",
        "bad_lines": f"truth/{D1}/bad_lines.json", "world": "truth/world.json",
    }
    world = store.read_json("truth/world.json")
    assert world["anchor"] == D1.isoformat() and world["seed"] == 11 and world["users_at_anchor"] == 2500
    assert world["world_start"] == (D1 - dt.timedelta(days=800)).isoformat()
    assert 200 <= len(world["catalogue"]) <= 500 and len(world["categories"]) == 10
    assert store.read_json(f"truth/{D1}/bad_lines.json") == []


def test_format_follows_design(clean):
    store, r1, _ = clean
    cut = cut_of(D1)
    lines = raw_lines(store, D1)
    assert len(lines) == r1.n_records
    channels = set()
    for _, _, line in lines:
        d = json.loads(line)
        assert re.fullmatch(r"u-\d{6,}", d["id"])
        assert epoch(d["created"]) < cut
        for p in events(d, "purchases"):
            assert isinstance(p["total"], float | int) and p["items"]
            assert abs(sum(i["price"] * i["qty"] for i in p["items"]) - p["total"]) < 0.01
            for item in p["items"]:
                assert set(item) == {"sku", "title", "price", "qty"} and item["qty"] >= 1
        for m in events(d, "messages"):
            channels.add(m["channel"])
            for key in ("opened", "clicked"):
                assert m[key] is None or epoch(m[key]) >= epoch(m["time"])
            if m["clicked"] is not None:
                assert m["opened"] is not None
        for pv in events(d, "pageviews"):
            assert pv["url"].startswith("/")
        if "optout" in d:
            assert set(d["optout"]) == {"time"}
    assert channels == {"email", "sms", "push"}


def test_no_event_after_the_snapshot(parsed):
    cut = cut_of(D1)
    times = []
    for d in parsed[0].values():
        times.append(epoch(d["created"]))
        for role in ("purchases", "messages", "pageviews"):
            for e in events(d, role):
                times.append(epoch(e["time"]))
                times.extend(epoch(e[k]) for k in ("opened", "clicked") if e.get(k) is not None)
        if d.get("optout", {}).get("time") is not None:
            times.append(epoch(d["optout"]["time"]))
    assert max(times) < cut
    assert max(times) > cut - 86400  # the last day does have events


def test_users_differ_in_shape(parsed):
    users = list(parsed[0].values())
    var_shapes = {json.dumps(sorted(d.get("vars", {}) or {})) for d in users}
    top_keys = {frozenset(d) for d in users}
    n_events = np.array([sum(len(events(d, r)) for r in ("purchases", "messages", "pageviews")) for d in users])
    sizes = np.array([len(json.dumps(d)) for d in users])
    assert len(var_shapes) > 50 and len(top_keys) > 10
    assert any("vars" not in d for d in users) and any(d.get("vars") == {} for d in users)
    assert any(k.startswith("x_") for d in users for k in d.get("vars", {}) or {})  # rare custom keys
    assert any(k in d for d in users for k in ("devices", "addresses", "tags"))
    assert any("pageviews" not in d for d in users) and any(d.get("pageviews") == [] for d in users)
    assert (n_events == 0).mean() > 0.02 and n_events.max() > 20 * max(np.median(n_events), 1)
    assert 500 < sizes.mean() < 3000 and sizes.max() > 10 * np.median(sizes)

    def depth(x):
        if isinstance(x, dict):
            return 1 + max(map(depth, x.values()), default=0)
        if isinstance(x, list):
            return 1 + max(map(depth, x), default=0)
        return 0

    assert max(depth(d.get("vars")) for d in users) >= 6
    created = [d["created"] for d in users]
    assert any(isinstance(c, str) and c.endswith("Z") for c in created)
    assert any(isinstance(c, str) and re.search(r"[+-]\d\d:\d\d$", c) for c in created)
    assert any(isinstance(c, int) for c in created) and any(isinstance(c, float) for c in created)


def test_same_world_across_dates(clean, parsed):
    store, r1, r2 = clean
    cut = cut_of(D1)
    before, after = parsed
    assert set(before) < set(after) and len(after) == r2.n_records

    def upto(d, role):
        return [(epoch(e["time"]), e.get("channel"), e.get("url"), e.get("total")) for e in events(d, role) if epoch(e["time"]) < cut]

    for uid, d in before.items():
        later = after[uid]
        assert later["created"] == d["created"] and later.get("vars", {}).keys() == d.get("vars", {}).keys()
        for role in ("purchases", "messages", "pageviews"):
            assert upto(later, role) == upto(d, role), (uid, role)
        # opens known on D1 stay; opens after D1 only appear later
        for m1, m2 in zip(events(d, "messages"), events(later, "messages")):
            if m1["opened"] is not None:
                assert m2["opened"] == m1["opened"]
    t1, t2 = load_truth(store, D1), load_truth(store, D2)
    same = t2.set_index("user_id").loc[t1["user_id"]].reset_index()
    for col in ("created", "churn_at", "purchase_rate", "mail_rate", "optout_at"):
        assert same[col].equals(t1[col]), col


def test_truth_is_beside_the_data_not_in_it(clean, parsed):
    store, _, _ = clean
    assert store.list(f"raw/{D1}") == ["part-00000.ndjson.gz", "part-00001.ndjson.gz", "part-00002.ndjson.gz"]
    text = b"".join(line for _, _, line in raw_lines(store, D1))
    for key in TRUTH_KEYS:
        assert f'"{key}"'.encode() not in text
    truth = load_truth(store, D1)
    assert list(truth["user_id"]) == sorted(parsed[0])
    assert TRUTH_KEYS <= set(truth.columns)
    assert truth.attrs["world"]["seed"] == 11


def test_bad_records_match_bad_lines_json(dirty):
    store, result = dirty
    entries = store.read_json(f"truth/{D1}/bad_lines.json")
    recorded = {(e["file"], e["line"]): e for e in entries}
    seen, good, found = set(), [], {}
    for name, i, line in raw_lines(store, D1):
        if i == 1 and line.startswith(b"\xef\xbb\xbf"):
            found[(name, i)] = "bom"
            line = line[3:]
        if not line.strip():
            found[(name, i)] = "blank"
            continue
        try:
            d = json.loads(line)  # lenient: NaN is allowed
        except ValueError:
            found[(name, i)] = "not_json"
            continue
        if not isinstance(d, dict):
            found[(name, i)] = "not_object"
        elif "id" not in d:
            found[(name, i)] = "no_id"
        elif d["id"] == "":
            found[(name, i)] = "empty_id"
        elif not isinstance(d["id"], str):
            found[(name, i)] = "id_object"
        elif d["id"] in seen:
            found[(name, i)] = "duplicate_id"
        else:
            seen.add(d["id"])
            good.append(d["id"])
    structural = {k: e["kind"] for k, e in recorded.items() if not e["kind"].startswith("field:")}
    assert found == structural
    bad = [e for e in entries if e["bad"]]
    assert len(bad) == result.details["bad_records"] > 0.5 * 0.03 * 1500
    assert {e["kind"] for e in bad} == {"not_json", "not_object", "no_id", "empty_id", "id_object", "duplicate_id"}
    assert all(not e["bad"] for e in entries if e["kind"] in ("blank", "bom") or e["kind"].startswith("field:"))
    # field problems sit in good users, which stay in the truth
    fields = [e for e in entries if e["kind"].startswith("field:")]
    assert {e["kind"] for e in fields} >= {"field:nan", "field:string_for_list", "field:bad_timestamp", "field:future_time"}
    lines = {(n, i): line for n, i, line in raw_lines(store, D1)}
    for e in fields:
        line = lines[(e["file"], e["line"])].removeprefix(b"\xef\xbb\xbf")
        assert json.loads(line)["id"] == e["id"]
        if e["kind"] == "field:nan":
            assert b"NaN" in line
    assert list(load_truth(store, D1)["user_id"]) == good
    assert len(good) == result.n_records == 1500


def test_oracle_matches_realised_behaviour(clean, parsed):
    store, _, _ = clean
    truth = load_truth(store, D1)
    later = parsed[1]
    lo, hi = cut_of(D1), cut_of(D2)
    bought = np.array([any(lo <= epoch(p["time"]) < hi for p in events(later[u], "purchases")) for u in truth["user_id"]])
    n_pv = np.array([sum(lo <= epoch(p["time"]) < hi for p in events(later[u], "pageviews")) for u in truth["user_id"]])
    n_msg = np.array([sum(lo <= epoch(m["time"]) < hi for m in events(later[u], "messages")) for u in truth["user_id"]])
    n_opt = np.array([
        later[u].get("optout", {}).get("time") is not None and lo <= epoch(later[u]["optout"]["time"]) < hi
        for u in truth["user_id"]
    ])
    p = oracle_probability(truth, D1, D2, role="purchases")
    assert p.shape == (len(truth),) and ((p >= 0) & (p <= 1)).all()
    # calibrated on average, and it ranks: top decile buys far more than the bottom one
    assert abs(p.mean() - bought.mean()) < 4 * np.sqrt((p * (1 - p)).sum()) / len(p)
    deciles = np.argsort(p)
    top, bottom = bought[deciles[-len(p) // 10:]].mean(), bought[deciles[: len(p) // 10]].mean()
    assert top > 0.4 and top > 8 * bottom
    assert auc(p, bought) > 0.8
    for role, realised in (("pageviews", n_pv), ("messages", n_msg), ("optout", n_opt)):
        expected = oracle_expected_count(truth, D1, D2, role=role)
        assert abs(expected.sum() - realised.sum()) < 4 * np.sqrt(expected.sum()) + 1, role
    # a longer window is never less likely
    assert (oracle_probability(truth, D1, D1 + dt.timedelta(days=7)) <= p + 1e-12).all()


def test_optouts_follow_heavy_mailing(clean, parsed):
    store, _, _ = clean
    truth = load_truth(store, D2)
    users = parsed[1]
    opted = np.array([users[u].get("optout", {}).get("time") is not None for u in truth["user_id"]])
    emails = np.array([sum(m["channel"] == "email" for m in events(users[u], "messages")) for u in truth["user_id"]])
    heavy = truth["mail_rate"].to_numpy() > np.quantile(truth["mail_rate"], 0.8)
    assert opted[heavy].mean() > 3 * opted[~heavy].mean()
    # after the opt-out no more e-mails
    for u in truth["user_id"][opted]:
        d = users[u]
        t = epoch(d["optout"]["time"])
        assert all(epoch(m["time"]) <= t for m in events(d, "messages") if m["channel"] == "email")
    assert emails.sum() > 0
    p = oracle_probability(truth, D2, D2 + dt.timedelta(days=7), role="optout")
    assert (p[opted] == 0).all() and p[~opted].mean() > 0


def test_message_engagement_rates(parsed):
    msgs = [m for d in parsed[0].values() for m in events(d, "messages")]
    opened = np.mean([m["opened"] is not None for m in msgs])
    clicked = np.mean([m["clicked"] is not None for m in msgs])
    assert 0.15 < opened < 0.35 and 0.02 < clicked < 0.06


def test_existing_world_is_kept(clean):
    store, _, _ = clean
    with pytest.raises(ConfigError, match=r"already has a synthetic world with seed=11 and users=2500"):
        generate_client(store, users=2500, date=D2, seed=12, workers=1)
    with pytest.raises(ConfigError, match=r"already has a synthetic world"):
        generate_client(store, users=999, date=D2, seed=11, workers=1)
    with pytest.raises(ConfigError, match=r"outside the synthetic world .*2024-09-15 \.\. 2027-12-29"):
        generate_client(store, users=2500, date="2028-06-01", seed=11, workers=1)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"users": 0}, "users is 0"),
        ({"users": 10, "bad_fraction": 0.9}, "bad_fraction is 0.9"),
        ({"users": 10, "users_per_file": 0}, "users_per_file is 0"),
        ({"users": 10, "date": "24/11/2026"}, "not a date"),
    ],
)
def test_invalid_arguments(kwargs, match):
    store = Storage("memory://synth-invalid").client("acme")
    with pytest.raises(ConfigError, match=match):
        generate_client(store, **{"date": D1, **kwargs})


def test_oracle_errors(clean):
    store, _, _ = clean
    truth = load_truth(store, D1)
    with pytest.raises(ConfigError, match="unknown role"):
        oracle_probability(truth, D1, D2, role="revenue")
    with pytest.raises(ConfigError, match="after the world's last day"):
        oracle_probability(truth, D1, "2030-01-01")
    bare = truth.copy()
    bare.attrs = {}
    with pytest.raises(ConfigError, match="no world attached"):
        oracle_probability(bare, D1, D2)
    with pytest.raises(NotFoundError, match="run generate_client"):
        load_truth(store, "2026-01-01")


def test_docstring_examples():
    import sightlines.synth as synth
    from sightlines.synth import _generate, _oracle, _truth

    for module in (synth, _generate, _oracle, _truth):
        failures, _ = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
        assert failures == 0, module.__name__
