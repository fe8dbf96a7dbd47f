"""Fleet status: for one date, which clients published fresh predictions, which are stale, failed or missing.

This is the library behind the Airflow fleet DAG's ``report`` task and the
Sightlines UI plugin; it reads only what the steps leave in storage
(``predictions/{date}/_manifest.json`` and the run records under
``runs/{date}/``), so it works the same with or without Airflow.

A client's status for a date is one of

``fresh``
    predictions for the date were published from the day's own scores
    (``stale_days`` 0). Sightlines scored with an older model, and failed
    training steps, are listed but do not make a client stale.
``stale``
    the last good predictions were republished for the date, ``stale_days``
    old, with the reason (DESIGN §3, the fallback ladder).
``failed``
    nothing was published for the date and at least one step failed; the
    reasons come from the run records.
``missing``
    nothing was published and no step failed (the client's day has not run,
    or is still running).

The status of a date is written to ``fleet/{date}/status.json`` under the
storage root (:func:`fleet_status_key`).

Examples
--------
>>> from sightlines.storage import Storage
>>> root = Storage("memory://doctest-fleet")
>>> status = fleet_status(root, "2026-11-24", ["acme", "globex"])
>>> status["counts"]
{'fresh': 0, 'stale': 0, 'failed': 0, 'missing': 2}
>>> status["clients"]["acme"]["status"]
'missing'
>>> print(format_fleet_status(status).splitlines()[0])
fleet 2026-11-24: 2 client(s): 0 fresh, 0 stale, 0 failed, 2 missing
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

from .errors import ClientIdError, NotFoundError, StorageError
from .result import STATUS_FAILED, StepResult
from .storage import MANIFEST, ClientStore, Storage, date_str, validate_client_id

__all__ = [
    "FAILED",
    "FRESH",
    "MISSING",
    "STALE",
    "STATUSES",
    "ClientStatus",
    "client_status",
    "fleet_dates",
    "fleet_status",
    "fleet_status_key",
    "format_fleet_status",
    "published_clients",
    "read_fleet_status",
    "write_fleet_status",
]

log = logging.getLogger(__name__)

FRESH = "fresh"
STALE = "stale"
FAILED = "failed"
MISSING = "missing"
#: every client status, in report order (problems last in counts, first in tables)
STATUSES = (FRESH, STALE, FAILED, MISSING)
_PROBLEM_ORDER = {FAILED: 0, MISSING: 1, STALE: 2, FRESH: 3}


def fleet_status_key(date: dt.date | str) -> str:
    """Root-relative key of the fleet status of ``date``: ``fleet/{date}/status.json``."""
    return f"fleet/{date_str(date)}/status.json"


@dataclass(frozen=True)
class ClientStatus:
    """What happened to one client on one date.

    Parameters
    ----------
    client : str
    status : str
        ``fresh``, ``stale``, ``failed`` or ``missing``.
    stale_days : int or None
        Age of the published predictions (0 = fresh); None when nothing was published.
    source_date : str or None
        The date whose scores the published predictions come from.
    reason : str or None
        Why the client is stale, failed or missing.
    failed_steps : dict
        Step id (``train-rev_30``) -> reason, from the run records.
    skipped_steps : dict
        Step id -> reason for steps that had nothing to do (e.g. not enough history).
    fallback_sightlines : dict
        Sightline -> date of the older model it was scored with.
    unavailable : dict
        Sightline -> why it has no prediction at all.
    """

    client: str
    status: str
    stale_days: int | None = None
    source_date: str | None = None
    reason: str | None = None
    failed_steps: dict[str, str] = field(default_factory=dict)
    skipped_steps: dict[str, str] = field(default_factory=dict)
    fallback_sightlines: dict[str, str] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The status as plain JSON data."""
        return asdict(self)

    def detail(self) -> str:
        """The most useful detail of the status, without the status word ('' if there is nothing to add)."""
        if self.status == FRESH:
            notes = []
            if self.fallback_sightlines:
                notes.append(f"{len(self.fallback_sightlines)} sightline(s) on older models")
            if self.failed_steps:
                notes.append(f"{len(self.failed_steps)} step(s) failed: {', '.join(sorted(self.failed_steps))}")
            if self.unavailable:
                notes.append(f"{len(self.unavailable)} sightline(s) unavailable")
            return "; ".join(notes)
        if self.status == STALE:
            return f"{self.stale_days} day(s) old (from {self.source_date}): {self.reason}"
        return self.reason or ""

    def summary(self) -> str:
        """One short line: the status and its most useful detail."""
        detail = self.detail()
        return f"{self.status}: {detail}" if detail else self.status


def _records(store: ClientStore, date: str) -> dict[str, StepResult]:
    """The run records of a client's day, by step id (like ``pipeline.read_records``, without
    importing the pipeline and its numeric stack)."""
    out: dict[str, StepResult] = {}
    prefix = store.runs(date)
    for name in store.list(prefix):
        if not name.endswith(".json"):
            continue
        try:
            out[name[:-5]] = StepResult.from_dict(store.read_json(f"{prefix}/{name}"))
        except Exception as exc:  # noqa: BLE001 - a damaged record is reported, not fatal
            log.warning("unreadable run record %s: %s", store.url_of(f"{prefix}/{name}"), exc)
    return out


def _step_reasons(records: dict[str, StepResult], status: str) -> dict[str, str]:
    out = {}
    for step_id, rec in sorted(records.items()):
        if rec.status == status:
            out[step_id] = str(rec.details.get("reason") or (rec.warnings[0] if rec.warnings else "no reason recorded"))
    return out


def client_status(storage: Storage, client: str, date: dt.date | str) -> ClientStatus:
    """The status of ``client`` on ``date`` (see the module docstring for the four statuses).

    Parameters
    ----------
    storage : Storage
        The storage root.
    client : str
        Client id.
    date : datetime.date or str
        The run date.

    Returns
    -------
    ClientStatus

    Raises
    ------
    ClientIdError
        ``client`` is not a valid client id.

    Examples
    --------
    >>> from sightlines.storage import Storage
    >>> client_status(Storage("memory://doctest-client-status"), "acme", "2026-11-24").summary()
    'missing: no run records for 2026-11-24: the daily run of acme has not started'
    """
    day = date_str(date)
    store = storage.client(validate_client_id(client))
    try:
        records = _records(store, day)
    except StorageError as exc:
        log.warning("could not read the run records of %s %s: %s", client, day, exc)
        records = {}
    failed = _step_reasons(records, STATUS_FAILED)
    skipped = _step_reasons(records, "skipped")
    try:
        manifest = store.manifest(store.predictions(day))
    except StorageError as exc:
        manifest = None
        failed.setdefault("predictions", f"the manifest of predictions/{day} is unreadable: {exc}")
    if manifest is not None:
        stale = int(manifest.get("stale_days") or 0)
        sightlines = manifest.get("sightlines") or {}
        fallbacks = {k: str(v.get("model_date")) for k, v in sorted(sightlines.items())
                     if isinstance(v, dict) and v.get("fallback")}
        unavailable = {k: str(v) for k, v in sorted((manifest.get("unavailable") or {}).items())}
        common = {"client": client, "stale_days": stale, "source_date": manifest.get("source_date", day),
                  "failed_steps": failed, "skipped_steps": skipped, "unavailable": unavailable}
        if stale == 0:
            return ClientStatus(status=FRESH, fallback_sightlines=fallbacks, **common)
        return ClientStatus(status=STALE, reason=str(manifest.get("reason") or "today's predictions could not be "
                                                                                 "produced"), **common)
    if failed:
        reason = "; ".join(f"{k} failed: {v}" for k, v in failed.items())
        return ClientStatus(client=client, status=FAILED, reason=reason, failed_steps=failed, skipped_steps=skipped)
    if not records:
        return ClientStatus(client=client, status=MISSING,
                            reason=f"no run records for {day}: the daily run of {client} has not started")
    done = ", ".join(sorted(records))
    return ClientStatus(client=client, status=MISSING, skipped_steps=skipped,
                        reason=f"not published yet (steps recorded so far: {done})")


def fleet_status(storage: Storage, date: dt.date | str, clients: Iterable[str], *, workers: int = 8,
                 generated_at: str | None = None) -> dict[str, Any]:
    """The status of every client of the fleet on ``date``, as JSON-friendly data.

    Parameters
    ----------
    storage : Storage
        The storage root.
    date : datetime.date or str
        The run date.
    clients : iterable of str
        The clients to cover (usually ``load_registry(storage).names()``).
    workers : int, default=8
        Threads reading storage (object stores are latency-bound; local disk barely benefits).
    generated_at : str, optional
        ISO timestamp to record; defaults to now (UTC).

    Returns
    -------
    dict
        ``{"date", "generated_at", "n_clients", "counts": {status: n}, "clients": {client: ClientStatus dict}}``;
        clients are in sorted order.

    Examples
    --------
    >>> from sightlines.storage import Storage
    >>> fleet_status(Storage("memory://doctest-fleet-2"), "2026-11-24", ["b", "a"])["clients"].keys()
    dict_keys(['a', 'b'])
    """
    day = date_str(date)
    names = sorted(set(clients))
    invalid = invalid_client_ids(names)

    def one(name: str) -> ClientStatus:
        if name in invalid:  # a bad registry entry is this client's failure, not the whole fleet's
            return ClientStatus(client=name, status=FAILED, reason=f"invalid registry entry: {invalid[name]}")
        return client_status(storage, name, day)

    if workers > 1 and len(names) > 1:
        with ThreadPoolExecutor(max_workers=min(workers, len(names)), thread_name_prefix="fleet-status") as pool:
            statuses = list(pool.map(one, names))
    else:
        statuses = [one(n) for n in names]
    counts = {s: 0 for s in STATUSES}
    for st in statuses:
        counts[st.status] += 1
    return {
        "date": day,
        "generated_at": generated_at or dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "n_clients": len(names),
        "counts": counts,
        "clients": {st.client: st.to_dict() for st in statuses},
    }


def invalid_client_ids(clients: Iterable[str]) -> dict[str, str]:
    """The ids among ``clients`` that are not valid client ids, each with the reason.

    Examples
    --------
    >>> invalid_client_ids(["acme", "../x"])
    {'../x': "client id '../x' is not allowed: use 1-64 letters, digits, '-' or '_', starting with a letter or digit (no '/', '.', spaces)"}
    """
    out = {}
    for name in clients:
        try:
            validate_client_id(name)
        except ClientIdError as exc:
            out[name] = str(exc)
    return out


def published_clients(storage: Storage, date: dt.date | str, clients: Iterable[str], *,
                      workers: int = 8) -> set[str]:
    """The clients among ``clients`` that have predictions (fresh or stale) committed for ``date``.

    One existence check per client (the dataset manifest), so polling the fleet is cheap.

    Examples
    --------
    >>> from sightlines.storage import Storage
    >>> published_clients(Storage("memory://doctest-published"), "2026-11-24", ["acme"])
    set()
    """
    day = date_str(date)
    names = list(clients)
    invalid = invalid_client_ids(names)
    if invalid:  # never published: they are reported as failed by fleet_status
        log.warning("not watching %d invalid client id(s): %s", len(invalid), sorted(invalid)[:10])
        names = [n for n in names if n not in invalid]

    def has(name: str) -> bool:
        store = storage.client(name)
        try:
            return store.exists(f"{store.predictions(day)}/{MANIFEST}")
        except StorageError as exc:
            log.warning("could not check the predictions of %s %s: %s", name, day, exc)
            return False

    if workers > 1 and len(names) > 1:
        with ThreadPoolExecutor(max_workers=min(workers, len(names)), thread_name_prefix="fleet-watch") as pool:
            flags = list(pool.map(has, names))
    else:
        flags = [has(n) for n in names]
    return {n for n, ok in zip(names, flags) if ok}


def format_fleet_status(status: dict[str, Any], *, limit: int | None = None, width: int = 100) -> str:
    """A plain-text table of a fleet status: a headline, then one line per client, problems first.

    Parameters
    ----------
    status : dict
        The output of :func:`fleet_status` (or a stored ``status.json``).
    limit : int, optional
        Show at most this many client lines (the headline always counts all of them).
    width : int, default=100
        Truncate each detail to fit this many characters per line.

    Returns
    -------
    str
    """
    counts = status.get("counts") or {}
    head = (f"fleet {status.get('date')}: {status.get('n_clients', len(status.get('clients') or {}))} client(s): "
            + ", ".join(f"{counts.get(s, 0)} {s}" for s in STATUSES))
    rows = []
    for name, st in (status.get("clients") or {}).items():
        cs = ClientStatus(**st)
        rows.append((_PROBLEM_ORDER.get(cs.status, 9), name, cs))
    rows.sort(key=lambda r: (r[0], r[1]))
    if not rows:
        return head
    cw = max(6, min(40, max(len(r[1]) for r in rows)))
    lines = [head, f"{'client':{cw}s}  {'status':8s}  {'stale':>5s}  detail"]
    shown = rows if limit is None else rows[:limit]
    for _, name, cs in shown:
        stale = "-" if cs.stale_days is None else str(cs.stale_days)
        detail = cs.detail() or "-"
        room = max(10, width - cw - 21)
        if len(detail) > room:
            detail = detail[: room - 3] + "..."
        lines.append(f"{name:{cw}s}  {cs.status:8s}  {stale:>5s}  {detail}")
    if len(shown) < len(rows):
        lines.append(f"... and {len(rows) - len(shown)} more client(s)")
    return "\n".join(lines)


def write_fleet_status(storage: Storage, status: dict[str, Any]) -> str:
    """Write a fleet status to ``fleet/{date}/status.json`` (atomically); returns the key."""
    key = fleet_status_key(status["date"])
    storage.write_json(key, status)
    return key


def read_fleet_status(storage: Storage, date: dt.date | str) -> dict[str, Any] | None:
    """The stored fleet status of ``date``, or None if the fleet report has not run for it."""
    try:
        return storage.read_json(fleet_status_key(date))
    except NotFoundError:
        return None


def fleet_dates(storage: Storage) -> list[str]:
    """Dates that have a stored fleet status, sorted."""
    out = []
    for name in storage.list("fleet"):
        try:
            out.append(dt.date.fromisoformat(name).isoformat())
        except ValueError:
            continue
    return sorted(out)
