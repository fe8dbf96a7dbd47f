"""Run records: every step leaves ``runs/{date}/{step}[-{sightline}].json`` behind.

The record is the step's :class:`~sightlines.result.StepResult` (or, for a
failed step, the error) so that the fleet report, the Airflow UI plugin and a
human can tell what happened to a client on a day without reading logs.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
import traceback
from collections.abc import Callable
from typing import Any

from ..errors import SightlinesError, UnavailableError
from ..result import STATUS_FAILED, STATUS_SKIPPED, StepResult
from ..storage import ClientStore, Storage, date_str

log = logging.getLogger(__name__)

__all__ = ["recorded", "read_records"]


def _write(store: ClientStore, result: StepResult) -> None:
    try:
        store.write_json(store.run_record(result.date, result.step_id), result.to_dict())
    except Exception as exc:  # noqa: BLE001 - a record must never hide the step's own outcome
        log.warning("could not write the run record of %s: %s", result.step_id, exc)


def recorded(step: str, fn: Callable[..., StepResult], client: str, date: dt.date | str, storage: Storage, *,
             sightline: str | None = None, **kwargs: Any) -> StepResult:
    """Run a step function and record its outcome (success, skip or failure) under ``runs/``.

    Exceptions are re-raised after the failure is recorded; an
    :class:`~sightlines.errors.UnavailableError` is recorded as ``skipped``.
    """
    store = storage.client(client)
    day = dt.date.fromisoformat(date_str(date))
    t0 = time.perf_counter()
    try:
        if sightline is not None:
            result = fn(client, day, storage, sightline=sightline, **kwargs)
        else:
            result = fn(client, day, storage, **kwargs)
    except UnavailableError as exc:
        _write(store, StepResult(step=step, client=client, date=day, status=STATUS_SKIPPED, sightline=sightline,
                                 warnings=(exc.message,), details={"reason": exc.message,
                                                                   "seconds": round(time.perf_counter() - t0, 3)}))
        raise
    except Exception as exc:
        reason = exc.message if isinstance(exc, SightlinesError) else f"{type(exc).__name__}: {exc}"
        details = {"reason": reason, "error": type(exc).__name__, "seconds": round(time.perf_counter() - t0, 3)}
        if not isinstance(exc, SightlinesError):
            details["traceback"] = traceback.format_exc(limit=8)
        _write(store, StepResult(step=step, client=client, date=day, status=STATUS_FAILED, sightline=sightline,
                                 warnings=(reason,), details=details))
        raise
    _write(store, result)
    return result


def read_records(store: ClientStore, date: dt.date | str) -> dict[str, StepResult]:
    """All run records of a client's day, by step id."""
    out = {}
    prefix = store.runs(date)
    for name in store.list(prefix):
        if name.endswith(".json"):
            try:
                out[name[:-5]] = StepResult.from_dict(store.read_json(f"{prefix}/{name}"))
            except Exception as exc:  # noqa: BLE001 - a damaged record is reported, not fatal
                log.warning("unreadable run record %s/%s: %s", prefix, name, exc)
    return out
