"""The demo behind the README's first command: a few synthetic brands, their daily job, one user's sightlines."""

from __future__ import annotations

import datetime as dt
import logging
import time

import numpy as np

from .pipeline import read_predictions, run_daily
from .registry import add_clients, load_registry
from .show import format_table, user_sightlines
from .storage import Storage

log = logging.getLogger(__name__)

__all__ = ["run_demo", "DEMO_CLIENTS"]

#: (client id, seed, share of --users) of the demo brands
DEMO_CLIENTS = [("acme-outdoor", 11, 1.0), ("globex-beauty", 23, 0.6), ("initech-books", 37, 1.4),
                ("umbrella-home", 41, 0.8), ("hooli-sports", 53, 1.2)]


def _demo_names(n: int) -> list[tuple[str, int, float]]:
    out = list(DEMO_CLIENTS[:n])
    for i in range(len(out), n):
        out.append((f"demo-{i + 1:03d}", 100 + i, 1.0))
    return out


def run_demo(*, root: str | None = None, clients: int = 3, users: int = 5000, date: dt.date | None = None,
             run: bool = True, days: int = 1) -> int:
    """Generate ``clients`` synthetic brands (if not there yet), run their day, and show one user.

    ``days`` snapshots are generated per brand, ending on the run date (the
    same users, their history up to each day), so that earlier days can be
    backfilled; only the run date is run. With ``run=False`` the brands are
    only generated and registered (what ``./dev.sh airflow`` does before
    Airflow runs their days). Returns the process exit code: 0 when every
    client published fresh predictions.
    """
    if days < 1:
        raise ValueError(f"days is {days}; expected at least 1")
    from .synth import generate_client

    storage = Storage(root)
    day = date or (dt.datetime.now(dt.timezone.utc).date() - dt.timedelta(days=1))
    names = _demo_names(clients)
    print(f"Sightlines demo: {len(names)} synthetic client(s) in {storage.url}, run date {day}", flush=True)
    for name, seed, share in names:
        store = storage.client(name)
        n = max(500, int(users * share))
        # the run date first: the first snapshot anchors the brand's synthetic world, earlier ones reuse it
        for back in range(days):
            snapshot = day - dt.timedelta(days=back)
            if not store.list(store.raw(snapshot)):
                t = time.perf_counter()
                generate_client(store, users=n, date=snapshot, seed=seed, bad_fraction=0.002)
                print(f"  generated {name} {snapshot}: {n:,} users in {time.perf_counter() - t:.1f} s", flush=True)
    registered = set(load_registry(storage).names())
    new = [n for n, _, _ in names if n not in registered]
    if new:
        add_clients(storage, new)
        print(f"  registered {', '.join(new)} in {storage.url_of('registry.json')}", flush=True)
    if not run:
        return 0
    code = 0
    for name, _, _ in names:
        print(f"\n== {name}: extract -> sample -> train x13 -> score -> publish", flush=True)
        out = run_daily(name, day, storage, config=load_registry(storage).config(name))
        print(out.summary(), flush=True)
        if out.published is None or out.stale_days:
            code = 1
    first = names[0][0]
    store = storage.client(first)
    if store.manifest(store.predictions(day)) is None:
        return code or 1
    table = read_predictions(store, day.isoformat(), columns=["user_id", "purchase_7"])
    values = table.column("purchase_7").to_numpy()
    pick = int(np.argsort(values, kind="stable")[int(0.9 * (len(values) - 1))])  # an engaged, not extreme, user
    user = table.column("user_id")[pick].as_py()
    date_s, manifest, rows = user_sightlines(store, user, day.isoformat())
    print()
    print(format_table(first, user, date_s, manifest, rows))
    print(f"\nNext: `sightlines show --client {first} --user <id> --root {storage.url}`, "
          f"the model report in {store.url_of(store.reports(day))}/report.html, "
          "and `./dev.sh airflow` for the Airflow UI.")
    return code
