"""The ``train`` step: one sightline's model from the day's training frames."""

from __future__ import annotations

import datetime as dt
import logging
import time
import zlib
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ..catalog import get_sightline
from ..config import ClientConfig
from ..errors import NotFoundError, UnavailableError
from ..models import CONTEXT_WEEKDAY, save_model
from ..result import STATUS_OK, StepResult
from ..sampling import uniform_hash, user_hashes
from ..schema import load_schema
from ..storage import ClientStore, Storage, date_str

log = logging.getLogger(__name__)

__all__ = ["train", "read_frames", "weekday_of_window"]


def weekday_of_window(cutoff: dt.date) -> int:
    """Weekday (0 = Monday) of the first day of the window that follows ``cutoff``."""
    return (cutoff + dt.timedelta(days=1)).weekday()


def read_frames(store: ClientStore, date: str, sightline: str, cutoffs: list[str], columns: list[str]) -> pa.Table:
    """The sampled examples of one sightline (rows with ``pi__{sightline} > 0``) from the day's frames."""
    prefix = store.training(date)
    files = store.dataset_files(prefix, ".parquet")
    tables = []
    y, w, pi = f"y__{sightline}", f"w__{sightline}", f"pi__{sightline}"
    for c in cutoffs:
        for key in (k for k in files if f"/c={c}/" in f"/{k}"):
            with store.open_parquet(key) as pf:
                have = set(pf.schema_arrow.names)
                cols = ["user_id", "_u", y, w, pi] + [x for x in columns if x in have]
                t = pf.read(columns=cols)
            t = t.filter(pc.greater(t.column(pi), 0.0))
            for x in columns:  # a feature missing from a stored table: all missing
                if x not in have:
                    t = t.append_column(x, pa.nulls(t.num_rows, pa.float32()))
            t = t.append_column("_cutoff", pa.array([c] * t.num_rows, pa.string()))
            tables.append(t.select(["user_id", "_u", "_cutoff", y, w, pi] + columns))
    if not tables:
        return pa.table({})
    # cutoffs of different days (or versions) may declare a column nullable or not: the permissive union
    return pa.concat_tables(tables, promote_options="permissive")


def train(client: str, date: dt.date | str, storage: Storage, *, sightline: str,
          config: ClientConfig | None = None) -> StepResult:
    """Train one sightline's model for ``(client, date)`` and save it under ``models/{date}/``.

    Parameters
    ----------
    client : str
    date : datetime.date or str
    storage : Storage
    sightline : str
        A name from the client's catalogue.
    config : ClientConfig, optional

    Returns
    -------
    StepResult
        ``details`` holds the chosen parameters, CV and holdout metrics.

    Raises
    ------
    NotFoundError
        The day's training frames (``sample`` step) are missing.
    UnavailableError
        The sightline has no usable data for this client (not enough history,
        too few examples, no positives, all-zero labels); the CLI exits 99.
    """
    t0 = time.perf_counter()
    date = date_str(date)
    day = dt.date.fromisoformat(date)
    config = config or ClientConfig()
    store = storage.client(client)
    s = get_sightline(sightline, config)
    tman = store.manifest(store.training(date))
    if tman is None:
        raise NotFoundError(f"client {client}: no training frames for {date}; run `sightlines step sample` first",
                            record_id=client, path=store.training(date))
    info = tman["sightlines"].get(sightline)
    if info is None:
        raise NotFoundError(f"the training frames of {client} {date} do not cover {sightline}; re-run the sample step",
                            record_id=sightline)
    if not info["available"]:
        raise UnavailableError(f"{sightline} is unavailable for {client}: {info['reason']}", record_id=sightline)
    schema = load_schema(store, int(tman["schema_version"]))
    assert schema is not None
    features = schema.column_names()
    table = read_frames(store, date, sightline, info["cutoffs"], features)
    n = table.num_rows
    tr = config.training
    q = 1.0
    if n > tr.sample_size:  # more examples than wanted: thin uniformly, and reweight
        q = tr.sample_size / n
        u2 = uniform_hash(user_hashes(table.column("user_id").to_pylist()),
                          zlib.crc32(f"thin:{sightline}:{tr.seed}".encode()))
        table = table.filter(pa.array(u2 < q))
    cut = table.column("_cutoff").to_numpy(zero_copy_only=False).astype(str)
    X = pd.DataFrame({c: table.column(c).to_numpy(zero_copy_only=False) for c in features})
    X = X.astype(np.float32)
    X[CONTEXT_WEEKDAY] = np.array([weekday_of_window(dt.date.fromisoformat(c)) for c in cut], dtype=np.float32)
    y = table.column(f"y__{sightline}").to_numpy(zero_copy_only=False).astype(np.float64)
    w = table.column(f"w__{sightline}").to_numpy(zero_copy_only=False) / (
        table.column(f"pi__{sightline}").to_numpy(zero_copy_only=False) * q)
    from ..train import Grid, TrainSet, train_sightline  # LightGBM: imported by the steps that train only

    ts = TrainSet(X=X, y=y, w=w.astype(np.float64), cutoff=cut, categorical=schema.categorical_columns())
    grid = Grid(depths=tuple(tr.depths), learning_rates=tuple(tr.learning_rates), folds=tr.folds,
                max_trees=tr.max_trees, early_stopping=tr.early_stopping, seed=tr.seed, min_users=tr.min_users,
                min_positives=tr.min_positives, cv_sample_size=tr.cv_sample_size)
    log.info("train %s %s %s: %d examples from %d cutoff(s), grid %dx%d, %d-fold CV", client, date, sightline,
             len(y), len(info["cutoffs"]), len(grid.depths), len(grid.learning_rates), grid.folds)
    bundle = train_sightline(s, ts, grid=grid)
    meta: dict[str, Any] = dict(bundle.meta)
    meta.update({
        "client": client, "schema_version": schema.version, "schema_fingerprint": schema.fingerprint(),
        "data_window": {
            "cutoffs": info["cutoffs"], "horizon_days": s.horizon,
            "label_windows": [[c, (dt.date.fromisoformat(c) + dt.timedelta(days=s.horizon)).isoformat()]
                              for c in info["cutoffs"]],
            "features": {c: tman["cutoffs"][c]["features"] for c in info["cutoffs"]},
        },
        "frame_examples": int(n), "thinning": q,
    })
    outputs = save_model(store, day, sightline, bundle.booster, meta)
    ho = meta["holdout"]
    seconds = time.perf_counter() - t0
    details = {
        "examples": meta["examples"], "positives": meta["positives"], "trees": meta["trees"],
        "chosen": meta["chosen"], "holdout": {k: ho.get(k) for k in ("kind", "cutoff", "n", "loss", "baseline_loss",
                                                                      "loss_ratio", "auc", "spearman")},
        "seconds": round(seconds, 2),
    }
    summary = f"holdout {ho.get('kind')}: loss {ho.get('loss', float('nan')):.5g} vs baseline " \
              f"{ho.get('baseline_loss', float('nan')):.5g}" + (f", AUC {ho['auc']:.3f}" if "auc" in ho else "")
    log.info("train %s %s %s: %d trees, %s, %.1f s", client, date, sightline, meta["trees"], summary, seconds)
    return StepResult(step="train", client=client, date=day, status=STATUS_OK, sightline=sightline,
                      outputs=outputs, n_records=meta["examples"], details=details)
