"""The ``score`` step: every user of the day's feature table, every available sightline -> value and k-tile.

Each sightline is scored with today's model if it trained, else with its last
good model (a *fallback*, recorded with the model's age); a sightline with no
model at all is listed as unavailable with the reason. Users are streamed one
row group at a time, so memory holds the predictions, not the features.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import tempfile
import time
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .._resources import cpu_budget
from ..catalog import Sightline, catalog
from ..config import ClientConfig
from ..errors import NotFoundError
from ..models import CONTEXT_WEEKDAY, StoredModel, last_good_model, load_model
from ..result import STATUS_FALLBACK, STATUS_OK, StepResult
from ..schema import column_name
from ..score import ktiles, predict_values
from ..storage import Storage, date_str
from ._extract import PARQUET_OPTIONS
from ._records import read_records
from ._train import weekday_of_window

log = logging.getLogger(__name__)

__all__ = ["score", "choose_models"]

_ROW_GROUP = 262_144


def choose_models(store: Any, date: str, sightlines: list[Sightline]) -> tuple[dict[str, StoredModel], dict[str, str]]:
    """For each sightline: today's model, else the last good one; or the reason there is none."""
    records = read_records(store, date)
    tman = store.manifest(store.training(date)) or {}
    chosen: dict[str, StoredModel] = {}
    missing: dict[str, str] = {}
    for s in sightlines:
        m = load_model(store, date, s.name) or last_good_model(store, date, s.name)
        if m is not None:
            chosen[s.name] = m
            continue
        rec = records.get(f"train-{s.name}")
        info = (tman.get("sightlines") or {}).get(s.name) or {}
        if rec is not None and rec.details.get("reason"):
            missing[s.name] = rec.details["reason"]
        elif info.get("reason"):
            missing[s.name] = info["reason"]
        else:
            missing[s.name] = "no model has been trained yet"
    return chosen, missing


def _column_getter(t: pa.Table, cache: dict[str, np.ndarray], weekday: float) -> Any:
    """Feature columns of one row group by name (cached): the context column, stored columns, or missing."""
    have = set(t.column_names)

    def col(name: str) -> np.ndarray:
        if name not in cache:
            if name == CONTEXT_WEEKDAY:
                cache[name] = np.full(t.num_rows, weekday, dtype=np.float32)
            elif name in have:
                cache[name] = t.column(name).to_numpy(zero_copy_only=False)
            else:  # a column the model knows but today's schema lacks: missing
                cache[name] = np.full(t.num_rows, np.nan, dtype=np.float32)
        return cache[name]

    return col


def score(client: str, date: dt.date | str, storage: Storage, *, config: ClientConfig | None = None) -> StepResult:
    """Score every user of ``(client, date)`` for every sightline that has a model; write ``scores/{date}/``.

    Parameters
    ----------
    client : str
    date : datetime.date or str
    storage : Storage
    config : ClientConfig, optional

    Returns
    -------
    StepResult
        Status ``fallback`` when a sightline was scored with an older model.

    Raises
    ------
    NotFoundError
        No feature table for the date, or no sightline has any model.
    """
    t0 = time.perf_counter()
    date = date_str(date)
    day = dt.date.fromisoformat(date)
    config = config or ClientConfig()
    store = storage.client(client)
    fman = store.manifest(store.features(date))
    if fman is None:
        raise NotFoundError(f"client {client}: no features for {date}; run `sightlines step extract` first",
                            record_id=client, path=store.features(date))
    sls = catalog(config)
    models, missing = choose_models(store, date, sls)
    if not models:
        reasons = sorted(set(missing.values()))
        raise NotFoundError(f"client {client}: none of its {len(sls)} sightlines has a model trained on {date} or "
                            f"before ({'; '.join(reasons[:3])}{' ...' if len(reasons) > 3 else ''}); "
                            "train them first (`sightlines run` or `sightlines step train`)", record_id=client)
    by_name = {s.name: s for s in sls}
    order = [s.name for s in sls if s.name in models]
    boosters = {name: models[name].booster() for name in order}
    threads = cpu_budget()
    weekday = float(weekday_of_window(day))
    optout_col = column_name(config.roles.optout.split("."))
    values: dict[str, list[np.ndarray]] = {name: [] for name in order}
    ids: list[pa.Array] = []
    n = 0
    for key in store.dataset_files(store.features(date), ".parquet"):
        with store.open_parquet(key) as pf:
            for rg in range(pf.num_row_groups):
                t = pf.read_row_group(rg)
                ids.append(t.column("user_id").combine_chunks())
                have = set(t.column_names)
                cache: dict[str, np.ndarray] = {}
                col = _column_getter(t, cache, weekday)
                opted_out = ~np.isnan(col(optout_col)) if optout_col in have else np.zeros(t.num_rows, bool)
                for name in order:
                    feats = models[name].meta["features"]
                    X = pd.DataFrame({c: col(c) for c in feats}, copy=False)
                    v = predict_values(boosters[name], X, num_threads=threads)
                    # objectives without a link (quantile, l2) can stray outside what the unit allows
                    v = np.clip(v, 0.0, 1.0) if by_name[name].unit in ("probability", "rate") else np.maximum(v, 0.0)
                    if by_name[name].exclude_happened and by_name[name].role == "optout":
                        v = np.where(opted_out, 0.0, v)
                    values[name].append(v)
                n += t.num_rows
        log.info("score %s %s: %d users scored", client, date, n)
    user_ids = pa.concat_arrays(ids) if ids else pa.array([], pa.string())
    arrays: list[pa.Array] = [user_ids]
    names = ["user_id"]
    model_info: dict[str, Any] = {}
    for name in order:
        v = np.concatenate(values[name]) if values[name] else np.zeros(0)
        arrays += [pa.array(v.astype(np.float32)), pa.array(ktiles(v))]
        names += [name, f"{name}_ktile"]
        m = models[name]
        age = (day - dt.date.fromisoformat(m.date)).days
        model_info[name] = {"model_date": m.date, "model_age_days": age, "fallback": m.date != date,
                            "trees": m.meta.get("trees"), "unit": by_name[name].unit,
                            "description": by_name[name].description}
    table = pa.Table.from_arrays(arrays, names=names)
    fallbacks = sorted(k for k, v in model_info.items() if v["fallback"])
    tmp_parent = os.path.dirname(storage._path(store.key("scores"))) if storage.is_local else None
    if tmp_parent:
        os.makedirs(tmp_parent, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".score-", dir=tmp_parent) as tmp:
        path = os.path.join(tmp, "scores.parquet")
        pq.write_table(table, path, row_group_size=_ROW_GROUP, **PARQUET_OPTIONS)
        with store.dataset(store.scores(date)) as ds:
            ds.add_file("scores.parquet", path)
            ds.meta.update({"kind": "scores", "client": client, "date": date, "n_users": n,
                            "features_users": int(fman["n_users"]), "sightlines": model_info,
                            "unavailable": missing, "schema_version": fman["schema_version"]})
    warnings = [f"{k} scored with its model of {model_info[k]['model_date']} "
                f"({model_info[k]['model_age_days']} day(s) old): today's training did not produce one"
                for k in fallbacks]
    warnings += [f"{k} unavailable: {v}" for k, v in sorted(missing.items())]
    seconds = time.perf_counter() - t0
    log.info("score %s %s: %d users x %d sightlines in %.1f s", client, date, n, len(order), seconds)
    return StepResult(step="score", client=client, date=day, status=STATUS_FALLBACK if fallbacks else STATUS_OK,
                      outputs={"scores": store.scores(date)}, n_records=n, warnings=tuple(warnings),
                      details={"sightlines": model_info, "unavailable": missing, "seconds": round(seconds, 2)})
