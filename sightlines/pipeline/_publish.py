"""The ``publish`` step: validated predictions under ``predictions/{date}/``, or yesterday's, marked stale.

The fallback ladder ends here. If today's scores exist and pass validation,
they are published fresh (``stale_days`` 0; sightlines scored with an older
model say so in the manifest). If not (the snapshot was missing or garbage,
scoring failed, validation failed), the last published predictions are
republished for today with ``stale_days`` counting up and the reason. Nothing
older is ever deleted, and ``predictions/latest`` only moves forward.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from typing import Any


from ..config import ClientConfig
from ..errors import NotFoundError, StorageError
from ..models import load_model
from ..publish import distribution_shift, render_report, validate_predictions
from ..result import STATUS_FALLBACK, STATUS_OK, StepResult
from ..storage import ClientStore, Storage, date_str
from ._records import read_records

log = logging.getLogger(__name__)

__all__ = ["publish", "latest_predictions", "read_predictions"]


def latest_predictions(store: ClientStore, before: str | None = None) -> tuple[str, dict[str, Any]] | None:
    """The newest published predictions (strictly before ``before`` if given): ``(date, manifest)``."""
    for d in reversed(store.dates("predictions")):
        if before is not None and d >= before:
            continue
        m = store.manifest(store.predictions(d))
        if m is not None:
            return d, m
    return None


def read_predictions(store: ClientStore, date: str, columns: list[str] | None = None) -> Any:
    """The published predictions table of ``date`` (a pyarrow Table)."""
    return store.read_parquet(store.dataset_file(store.predictions(date), "predictions.parquet"), columns)


def _failure_reasons(store: ClientStore, date: str) -> list[str]:
    out = []
    for step_id, rec in sorted(read_records(store, date).items()):
        if rec.status == "failed" and not step_id.startswith("publish"):
            out.append(f"{step_id} failed: {rec.details.get('reason', 'unknown error')}")
    return out


def _move_latest(store: ClientStore, date: str) -> bool:
    current = None
    if store.exists(store.PREDICTIONS_LATEST):
        try:
            pointer = store.read_json(store.PREDICTIONS_LATEST)
            current = pointer.get("date") if isinstance(pointer, dict) else None
        except StorageError as exc:  # not JSON, or gone meanwhile: a damaged pointer is replaced
            log.warning("replacing the damaged pointer %s: %s", store.PREDICTIONS_LATEST, exc)
            current = None
        # any other error (a timeout, no permission) fails the step: guessing could move `latest` backwards
    if current is None or date >= current:
        store.write_json(store.PREDICTIONS_LATEST, {"date": date})
        return True
    return False


def publish(client: str, date: dt.date | str, storage: Storage, *, config: ClientConfig | None = None) -> StepResult:
    """Publish ``(client, date)``: today's validated scores, else the last predictions marked stale.

    Parameters
    ----------
    client : str
    date : datetime.date or str
    storage : Storage
    config : ClientConfig, optional

    Returns
    -------
    StepResult
        Status ``ok`` (fresh), or ``fallback`` (fresh but some sightlines on
        older models, or stale predictions republished); ``details["stale_days"]``.

    Raises
    ------
    NotFoundError
        Neither today's scores nor any earlier predictions exist: nothing can be published.
    """
    t0 = time.perf_counter()
    date = date_str(date)
    day = dt.date.fromisoformat(date)
    config = config or ClientConfig()
    store = storage.client(client)
    sman = store.manifest(store.scores(date))
    fman = store.manifest(store.features(date))
    problems: list[str] = []
    if sman is not None and fman is not None:
        key = store.dataset_file(store.scores(date), "scores.parquet")
        table = store.read_parquet(key)
        units = {k: v["unit"] for k, v in sman["sightlines"].items()}
        problems = validate_predictions(table, expected_rows=int(fman["n_users"]), units=units)
        if not problems:
            return _publish_fresh(store, client, date, day, table, key, sman, t0)
    reasons = _failure_reasons(store, date)
    if sman is None:
        reasons.append("no scores for today")
    if problems:
        reasons.append("today's scores failed validation: " + "; ".join(problems))
    return _publish_stale(store, client, date, day, reasons, t0)


def _publish_fresh(store: ClientStore, client: str, date: str, day: dt.date, table: Any, key: str,
                   sman: dict[str, Any], t0: float) -> StepResult:
    prev = latest_predictions(store, before=date)
    shift: dict[str, Any] = {}
    if prev is not None:
        prev_table = read_predictions(store, prev[0])
        for name in sman["sightlines"]:
            if name in prev_table.column_names:
                shift[name] = distribution_shift(table.column(name).to_numpy(), prev_table.column(name).to_numpy())
                shift[name]["previous_date"] = prev[0]
    sightlines = sman["sightlines"]
    with store.dataset(store.predictions(date)) as ds:
        with store.open(key) as src, ds.open("predictions.parquet") as dst:
            for block in iter(lambda: src.read(1 << 22), b""):
                dst.write(block)
        ds.meta.update({
            "kind": "predictions", "client": client, "date": date, "row_count": table.num_rows,
            "columns": table.column_names, "sightlines": sightlines, "unavailable": sman.get("unavailable", {}),
            "stale_days": 0, "source_date": date, "shift": shift,
        })
    metrics = _report_metrics(store, date, sightlines, sman.get("unavailable", {}), table.num_rows, 0)
    _write_report(store, client, date, metrics)
    moved = _move_latest(store, date)
    fallbacks = sorted(k for k, v in sightlines.items() if v.get("fallback"))
    warnings = [f"{k} uses its model of {sightlines[k]['model_date']} ({sightlines[k]['model_age_days']} day(s) old)"
                for k in fallbacks]
    warnings += [f"{k} shifted since {v['previous_date']} (PSI {v['psi']:.2f})" for k, v in sorted(shift.items())
                 if v.get("verdict") == "shifted"]
    if not moved:
        warnings.append("predictions/latest left on a newer date (this was a backfill)")
    seconds = time.perf_counter() - t0
    log.info("publish %s %s: %d users, %d sightlines, fresh%s", client, date, table.num_rows, len(sightlines),
             f" ({len(fallbacks)} on older models)" if fallbacks else "")
    return StepResult(step="publish", client=client, date=day, status=STATUS_FALLBACK if fallbacks else STATUS_OK,
                      outputs={"predictions": store.predictions(date), "report": store.reports(date)},
                      n_records=table.num_rows, warnings=tuple(warnings),
                      details={"stale_days": 0, "source_date": date, "fallback_sightlines": fallbacks,
                               "shift": {k: {kk: v.get(kk) for kk in ("psi", "verdict", "mean", "previous_mean")}
                                         for k, v in shift.items()}, "seconds": round(seconds, 2)})


def _publish_stale(store: ClientStore, client: str, date: str, day: dt.date, reasons: list[str],
                   t0: float) -> StepResult:
    prev = latest_predictions(store, before=date)
    why = "; ".join(reasons) or "today's predictions could not be produced"
    existing = store.manifest(store.predictions(date))
    if existing is not None and (prev is None or str(existing.get("source_date") or date) >= prev[0]):
        # a rerun that failed must not replace what an earlier run published for today with something older
        stale = int(existing.get("stale_days", 0))
        warning = (f"kept the predictions already published for {date} (stale_days={stale}, from "
                   f"{existing.get('source_date', date)}); this rerun could not do better because {why}")
        log.warning("publish %s %s: %s", client, date, warning)
        return StepResult(step="publish", client=client, date=day, status=STATUS_FALLBACK,
                          outputs={"predictions": store.predictions(date)}, n_records=int(existing["row_count"]),
                          warnings=(warning,),
                          details={"stale_days": stale, "source_date": existing.get("source_date", date),
                                   "kept_existing": True, "reason": why,
                                   "seconds": round(time.perf_counter() - t0, 2)})
    if prev is None:
        raise NotFoundError(f"client {client}: nothing to publish for {date} ({why}) and no earlier predictions "
                            "to fall back to", record_id=client)
    src_date, src = prev
    stale = int(src.get("stale_days", 0)) + (day - dt.date.fromisoformat(src_date)).days
    key = store.dataset_file(store.predictions(src_date), "predictions.parquet")
    with store.dataset(store.predictions(date)) as ds:
        with store.open(key) as f, ds.open("predictions.parquet") as dst:
            for block in iter(lambda: f.read(1 << 22), b""):
                dst.write(block)
        ds.meta.update({
            "kind": "predictions", "client": client, "date": date, "row_count": src["row_count"],
            "columns": src["columns"], "sightlines": src["sightlines"], "unavailable": src.get("unavailable", {}),
            "stale_days": stale, "source_date": src.get("source_date", src_date), "republished_from": src_date,
            "reason": why, "shift": {},
        })
    metrics = {"sightlines": {}, "unavailable": {}, "row_count": src["row_count"], "stale_days": stale, "reason": why}
    _write_report(store, client, date, metrics)
    _move_latest(store, date)
    log.warning("publish %s %s: STALE: republished the predictions of %s (stale_days=%d) because %s",
                client, date, src_date, stale, why)
    return StepResult(step="publish", client=client, date=day, status=STATUS_FALLBACK,
                      outputs={"predictions": store.predictions(date)}, n_records=int(src["row_count"]),
                      warnings=(f"STALE: republished the predictions of {src_date} (stale_days={stale}) because {why}",),
                      details={"stale_days": stale, "source_date": src.get("source_date", src_date),
                               "republished_from": src_date, "reason": why,
                               "seconds": round(time.perf_counter() - t0, 2)})


def _report_metrics(store: ClientStore, date: str, sightlines: dict[str, Any], unavailable: dict[str, str],
                    rows: int, stale: int) -> dict[str, Any]:
    out: dict[str, Any] = {"sightlines": {}, "unavailable": unavailable, "row_count": rows, "stale_days": stale}
    for name, info in sightlines.items():
        m = load_model(store, info["model_date"], name)
        meta = m.meta if m is not None else {}
        out["sightlines"][name] = {
            **info, "holdout": meta.get("holdout"), "chosen": meta.get("chosen"), "grid": meta.get("grid"),
            "importance": meta.get("importance"), "examples": meta.get("examples"),
            "positives": meta.get("positives"), "data_window": meta.get("data_window"),
        }
    return out


def _write_report(store: ClientStore, client: str, date: str, metrics: dict[str, Any]) -> None:
    with store.dataset(store.reports(date)) as ds:
        ds.write_json("metrics.json", metrics)
        ds.write_bytes("report.html", render_report(client, date, metrics).encode())
        ds.meta.update({"kind": "report", "client": client, "date": date})
