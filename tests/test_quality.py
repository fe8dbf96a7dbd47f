"""Model quality, out of time, against what really happened and against the generator's oracle.

The client's day is run on ``T - 7`` with the default grid; its published
predictions are then compared with the purchases that happened in
``(T - 7, T]`` (read from the snapshot of ``T``) and with the oracle: the true
purchase probabilities the generator used.
"""

from __future__ import annotations

import datetime as dt
import gzip

import numpy as np
import orjson
import pytest
from sklearn.metrics import roc_auc_score

from sightlines._timeparse import end_of_day, parse_times
from sightlines.models import load_model
from sightlines.pipeline import read_predictions, run_daily
from sightlines.storage import Storage
from sightlines.synth import generate_client, load_truth, oracle_probability

T = dt.date(2026, 11, 24)
T0 = T - dt.timedelta(days=7)
USERS = 12_000


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    storage = Storage(str(tmp_path_factory.mktemp("quality") / "root"))
    store = storage.client("acme")
    generate_client(store, users=USERS, date=T, seed=3)  # the world is anchored at T
    generate_client(store, users=USERS, date=T0, seed=3)  # the same world, a week earlier
    out = run_daily("acme", T0, storage, workers=2)  # default training config
    assert out.stale_days == 0, out.summary()
    preds = read_predictions(store, T0.isoformat()).to_pandas().set_index("user_id")
    return storage, store, preds


def _purchased_between(store, start: dt.date, end: dt.date) -> dict[str, bool]:
    """Whether each user of the snapshot of ``end`` bought in (end of ``start``, end of ``end``]: read directly from the JSON."""
    lo, hi = end_of_day(start), end_of_day(end)
    out = {}
    for name in store.list(store.raw(end)):
        for line in gzip.decompress(store.read_bytes(f"{store.raw(end)}/{name}")).splitlines():
            try:
                u = orjson.loads(line.removeprefix(b"\xef\xbb\xbf"))
            except orjson.JSONDecodeError:
                continue
            if not isinstance(u, dict) or not isinstance(u.get("id"), str):
                continue
            p = u.get("purchases")
            times = parse_times([r.get("time") for r in p if isinstance(r, dict)]) if isinstance(p, list) else np.zeros(0)
            out.setdefault(u["id"], bool(np.any((times > lo) & (times <= hi))))
    return out


def test_purchase_7_is_close_to_the_oracle(run):
    storage, store, preds = run
    bought = _purchased_between(store, T0, T)
    truth = load_truth(store, T0.isoformat()).set_index("user_id")
    users = [u for u in preds.index if u in bought and u in truth.index]
    y = np.array([bought[u] for u in users], dtype=float)
    model_auc = roc_auc_score(y, preds.loc[users, "purchase_7"].to_numpy())
    oracle = oracle_probability(truth.loc[users].reset_index(), T0.isoformat(), T.isoformat(), role="purchases")
    oracle_auc = roc_auc_score(y, oracle)
    print(f"purchase_7 out of time: AUC {model_auc:.4f}, oracle AUC {oracle_auc:.4f}, "
          f"{int(y.sum())} buyers of {len(y)} users")
    assert model_auc >= 0.75
    assert model_auc >= oracle_auc - 0.03
    # calibration: the mean predicted probability is close to the realised rate
    assert abs(preds.loc[users, "purchase_7"].mean() - y.mean()) < 0.35 * y.mean()


def test_actual_purchases_rise_across_ktile_deciles(run):
    storage, store, preds = run
    bought = _purchased_between(store, T0, T)
    users = [u for u in preds.index if u in bought]
    k = preds.loc[users, "purchase_7_ktile"].to_numpy()
    y = np.array([bought[u] for u in users], dtype=float)
    decile = (k - 1) // 100
    rates = [y[decile == d].mean() for d in range(10)]
    expected = [preds.loc[users, "purchase_7"].to_numpy()[decile == d].mean() for d in range(10)]
    print("decile  predicted  observed")
    for d in range(10):
        print(f"{d + 1:6d}  {expected[d]:9.4f}  {rates[d]:8.4f}")
    assert rates[9] > 5 * max(rates[0], 1e-3)
    assert all(rates[i + 1] >= rates[i] - 0.01 for i in range(9)), rates


def test_every_available_sightline_beats_a_constant_baseline(run):
    storage, store, preds = run
    manifest = store.manifest(store.predictions(T0))
    assert len(manifest["sightlines"]) >= 12, manifest["unavailable"]
    for name in manifest["sightlines"]:
        meta = load_model(store, T0, name).meta
        ho = meta["holdout"]
        print(f"{name:12s} holdout ({ho['kind']}) loss {ho['loss']:.5g} vs constant {ho['baseline_loss']:.5g}"
              f" -> ratio {ho['loss_ratio']:.3f}" + (f", AUC {ho['auc']:.3f}" if "auc" in ho else ""))
        assert ho["loss_ratio"] < 0.985, f"{name} does not clearly beat the constant baseline: {ho}"
        assert ho["outcome_rises_by_decile"], f"{name}: outcomes do not rise across prediction deciles"
        grid = meta["grid"]
        assert len({(g["max_depth"], g["learning_rate"]) for g in grid}) >= 9 and meta["folds"] == 5
