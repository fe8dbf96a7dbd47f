"""The daily job end to end on a small synthetic client: publishing, idempotency, every rung of the fallback ladder."""

from __future__ import annotations

import datetime as dt
import hashlib
import subprocess
import sys

import numpy as np
import pytest

from sightlines.config import ClientConfig
from sightlines.pipeline import publish, read_predictions, read_records, run_daily
from sightlines.storage import Storage
from sightlines.synth import generate_client

D = dt.date(2026, 11, 24)
#: a small grid keeps the suite fast; the defaults are exercised by the quality tests
FAST = {"training": {"depths": [2, 4], "learning_rates": [0.1, 0.3], "folds": 3, "cv_sample_size": 4000,
                     "max_trees": 80, "sample_size": 20000}}


@pytest.fixture(scope="module")
def day_one(tmp_path_factory):
    """A client with 2,500 users, run once on D."""
    storage = Storage(str(tmp_path_factory.mktemp("pipeline") / "root"))
    store = storage.client("acme")
    generate_client(store, users=2500, date=D, seed=5, bad_fraction=0.002)
    config = ClientConfig.from_dict(FAST)
    out = run_daily("acme", D, storage, config=config, workers=2)
    return storage, config, out


def test_a_day_publishes_every_available_sightline(day_one):
    storage, config, out = day_one
    store = storage.client("acme")
    assert out.stale_days == 0, out.summary()
    manifest = store.manifest(store.predictions(D))
    fman = store.manifest(store.features(D))
    assert manifest["row_count"] == fman["n_users"] == 2500
    assert manifest["stale_days"] == 0 and store.read_json(store.PREDICTIONS_LATEST) == {"date": D.isoformat()}
    table = read_predictions(store, D.isoformat())
    names = set(manifest["sightlines"]) | set(manifest["unavailable"])
    assert {"purchase_1", "purchase_7", "purchase_30", "aov_7", "aiv_7", "item_7", "rev_30", "rev_365", "optout_7",
            "msgs_1", "openrate_7", "click_7", "pv_30"} == names
    assert len(manifest["sightlines"]) >= 11, manifest["unavailable"]
    for name, info in manifest["sightlines"].items():
        v = table.column(name).to_numpy()
        k = table.column(f"{name}_ktile").to_numpy()
        assert np.isfinite(v).all() and v.min() >= 0
        assert k.min() >= 1 and k.max() == 1000
        order = np.argsort(v, kind="stable")
        assert np.all(np.diff(k[order]) >= 0), f"{name}: k-tiles must rise with the value"
        assert info["model_date"] == D.isoformat() and not info["fallback"]
    for name in ("purchase_7", "openrate_7"):
        assert table.column(name).to_numpy().max() <= 1.0
    # the report and the run records are there
    assert store.manifest(store.reports(D)) is not None
    records = read_records(store, D)
    assert records["extract"].status == "ok" and records["publish"].status == "ok"


def test_rerunning_the_same_day_gives_byte_identical_predictions(day_one, tmp_path):
    storage, config, _ = day_one
    store = storage.client("acme")
    before = store.manifest(store.predictions(D))["files"]["predictions.parquet"]["sha256"]
    models_before = {n: hashlib.sha256(store.read_bytes(store.model_file(D, n, "txt"))).hexdigest()
                     for n in ("purchase_7", "rev_30")}
    out = run_daily("acme", D, storage, config=config, workers=1)  # another worker count, same bytes
    assert out.stale_days == 0
    assert store.manifest(store.predictions(D))["files"]["predictions.parquet"]["sha256"] == before
    for n, h in models_before.items():
        assert hashlib.sha256(store.read_bytes(store.model_file(D, n, "txt"))).hexdigest() == h


def test_a_failed_sightline_is_scored_with_its_last_good_model(day_one, monkeypatch):
    storage, config, _ = day_one
    store = storage.client("acme")
    d2 = D + dt.timedelta(days=1)
    generate_client(store, users=2500, date=d2, seed=5, bad_fraction=0.002)
    from sightlines import train as training  # the train step imports it when it runs (LightGBM loads lazily)

    real = training.train_sightline

    def breaks_purchase_7(sightline, ts, **kw):
        if sightline.name == "purchase_7":
            raise RuntimeError("simulated: the training node ran out of memory")
        return real(sightline, ts, **kw)

    monkeypatch.setattr(training, "train_sightline", breaks_purchase_7)
    out = run_daily("acme", d2, storage, config=config, workers=1)
    assert out.stale_days == 0
    rec = read_records(store, d2)["train-purchase_7"]
    assert rec.status == "failed" and "ran out of memory" in rec.details["reason"]
    manifest = store.manifest(store.predictions(d2))
    p7 = manifest["sightlines"]["purchase_7"]
    assert p7 == {**p7, "model_date": D.isoformat(), "model_age_days": 1, "fallback": True}
    assert manifest["sightlines"]["rev_30"]["model_date"] == d2.isoformat()
    assert any("purchase_7 uses its model of 2026-11-24" in w for w in out.published.warnings)
    assert not store.exists(store.model_file(d2, "purchase_7", "json"))  # nothing half-written


def test_a_missing_or_garbage_snapshot_republishes_the_last_predictions(day_one, write_snapshot):
    storage, config, _ = day_one
    store = storage.client("acme")
    d2, d3, d4 = (D + dt.timedelta(days=i) for i in (1, 2, 3))
    if store.manifest(store.predictions(d2)) is None:  # when run alone
        generate_client(store, users=2500, date=d2, seed=5)
        run_daily("acme", d2, storage, config=config, workers=2)
    good = store.manifest(store.predictions(d2))
    # day 3: no snapshot at all
    out = run_daily("acme", d3, storage, config=config, workers=1)
    assert out.stale_days == 1 and out.published.status == "fallback"
    m3 = store.manifest(store.predictions(d3))
    assert m3["stale_days"] == 1 and m3["source_date"] == d2.isoformat() and "no snapshot" in m3["reason"]
    assert m3["files"]["predictions.parquet"]["sha256"] == good["files"]["predictions.parquet"]["sha256"]
    assert store.read_json(store.PREDICTIONS_LATEST) == {"date": d3.isoformat()}
    # day 4: a garbage snapshot (every line broken): the CLI says STALE and exits 3
    write_snapshot(store, d4.isoformat(), [b"\x00garbage"] * 50)
    res = subprocess.run([sys.executable, "-m", "sightlines", "run", "--client", "acme", "--date", d4.isoformat(),
                          "--root", storage.url], capture_output=True, text=True, timeout=600)
    assert res.returncode == 3, res.stderr[-2000:]
    assert "STALE predictions republished (stale_days=2)" in res.stdout
    m4 = store.manifest(store.predictions(d4))
    assert m4["stale_days"] == 2 and "50 of 50 records are bad" in m4["reason"]
    # nothing good was deleted to make room
    assert store.manifest(store.predictions(d2)) == good
    assert store.manifest(store.features(d2)) is not None
    # a rerun of day 2 that can only fall back keeps day 2's fresh predictions instead of republishing day 1's
    store.delete(store.scores(d2))
    rerun = publish("acme", d2, storage)
    assert rerun.details["kept_existing"] and rerun.details["stale_days"] == 0 and rerun.status == "fallback"
    assert store.manifest(store.predictions(d2)) == good
    assert store.read_json(store.PREDICTIONS_LATEST) == {"date": d4.isoformat()}


def test_show_prints_a_users_sightlines_in_human_units(day_one):
    storage, _, _ = day_one
    store = storage.client("acme")
    uid = read_predictions(store, D.isoformat(), columns=["user_id"]).column(0)[0].as_py()
    res = subprocess.run([sys.executable, "-m", "sightlines", "show", "--client", "acme", "--user", uid,
                          "--date", D.isoformat(), "--root", storage.url], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert f"Sightlines of user {uid} at acme, {D}" in res.stdout
    lines = {ln.split()[0]: ln for ln in res.stdout.splitlines() if ln[:1].isalpha() and "_" in ln.split()[0]}
    assert "%" in lines["purchase_7"] and "$" in lines["rev_30"] and "items" in lines["item_7"]
    missing = subprocess.run([sys.executable, "-m", "sightlines", "show", "--client", "acme", "--user", "nobody",
                              "--root", storage.url], capture_output=True, text=True, timeout=120)
    assert missing.returncode == 1 and "user 'nobody' is not in the predictions" in missing.stderr


def _write_users(write_snapshot, store, date, users):
    write_snapshot(store, date.isoformat(), users)


def test_degenerate_and_short_history_sightlines_are_reported_not_crashed(storage, write_snapshot):
    """A brand with three months of browsing and no purchase at all."""
    store = storage.client("newbrand")
    rng = np.random.default_rng(0)
    users = []
    for i in range(600):
        views = [{"time": (dt.datetime(2026, 11, 24, 12, tzinfo=dt.timezone.utc)
                           - dt.timedelta(days=float(x))).strftime("%Y-%m-%dT%H:%M:%SZ"), "url": "/"}
                 for x in rng.uniform(0, 90, size=rng.poisson(4))]
        users.append({"id": f"n-{i}", "created": "2026-08-20T00:00:00Z", "pageviews": views, "purchases": [],
                      "messages": [], "optout": {"time": None}})
    _write_users(write_snapshot, store, D, users)
    out = run_daily("newbrand", D, storage, config=ClientConfig.from_dict(FAST), workers=1)
    assert out.stale_days == 0, out.summary()
    by = {r.step_id: r for r in out.steps}
    assert by["train-rev_365"].status == "skipped"
    assert "not enough history for a 365-day horizon" in by["train-rev_365"].warnings[0]
    assert by["train-purchase_7"].status == "skipped" and "positive examples" in by["train-purchase_7"].warnings[0]
    assert by["train-rev_30"].status == "skipped" and "every label is zero" in by["train-rev_30"].warnings[0]
    assert by["train-pv_30"].status == "ok"
    manifest = store.manifest(store.predictions(D))
    assert "pv_30" in manifest["sightlines"]
    assert "not enough history" in manifest["unavailable"]["rev_365"]
    table = read_predictions(store, D.isoformat())
    assert "rev_365" not in table.column_names and table.num_rows == 600


def test_a_client_defined_quantile_sightline_trains_and_publishes(storage):
    store = storage.client("beta")
    generate_client(store, users=1500, date=D, seed=9)
    extra = {"name": "rev_30_p90", "description": "Revenue in 30 days, 90th percentile", "role": "purchases",
             "aggregate": "sum", "field": "order_total", "horizon": 30, "objective": "quantile", "alpha": 0.9,
             "unit": "currency"}
    cfg = ClientConfig.from_dict({**FAST, "sightlines": [extra],
                                  "disabled_sightlines": ["purchase_1", "msgs_1", "pv_30", "openrate_7", "click_7"]})
    out = run_daily("beta", D, storage, config=cfg, workers=2)
    assert out.stale_days == 0, out.summary()
    manifest = store.manifest(store.predictions(D))
    assert manifest["sightlines"]["rev_30_p90"]["unit"] == "currency"
    assert "pv_30" not in manifest["sightlines"] and "pv_30" not in manifest["unavailable"]
    from sightlines.models import load_model

    meta = load_model(store, D, "rev_30_p90").meta
    assert meta["params"]["objective"] == "quantile" and meta["params"]["alpha"] == 0.9
    table = read_predictions(store, D.isoformat(), columns=["rev_30", "rev_30_p90"])
    assert np.isfinite(table.column("rev_30_p90").to_numpy()).all()
