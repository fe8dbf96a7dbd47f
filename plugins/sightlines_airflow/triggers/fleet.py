"""A trigger that watches storage until every client of the fleet has published a date's predictions.

One trigger covers the whole fleet, however many clients it has (no task
mapping, so no ``max_map_length`` ceiling): each poll checks the clients that
have not published yet (one manifest existence check each) and the trigger
fires once when all have, or when its deadline passes. It only reads storage,
so it may safely run twice.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

__all__ = ["FleetPredictionsTrigger"]

#: missing clients listed by name in the event (the count is always exact)
EVENT_MISSING_NAMES = 50


class FleetPredictionsTrigger(BaseTrigger):
    """Wait until ``clients/{c}/predictions/{date}/`` is committed for every client, or a deadline.

    Parameters
    ----------
    root : str
        Storage root (directory or ``s3://bucket/prefix``).
    date : str
        The run date, ``YYYY-MM-DD``.
    deadline : str
        ISO 8601 timestamp with a zone; the trigger fires with status
        ``deadline`` when it passes.
    clients : list of str, optional
        The clients to watch; None watches the clients of the registry under ``root``.
    poll_interval : float, default=300
        Seconds between two polls.
    aws_conn_id : str, optional
        Airflow AWS connection for an ``s3://`` root (None: the triggerer's own credentials).

    Notes
    -----
    Event payload: ``{"status": "complete" | "deadline" | "error", "date", "expected",
    "published", "n_missing", "missing": [first 50 names], "message"}``.
    """

    def __init__(self, root: str, date: str, deadline: str, clients: list[str] | None = None,
                 poll_interval: float = 300.0, aws_conn_id: str | None = None) -> None:
        super().__init__()
        self.root = root
        self.date = date
        self.deadline = deadline
        self.clients = list(clients) if clients is not None else None
        self.poll_interval = float(poll_interval)
        self.aws_conn_id = aws_conn_id

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Classpath and kwargs that rebuild this trigger in the triggerer."""
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "root": self.root,
                "date": self.date,
                "deadline": self.deadline,
                "clients": self.clients,
                "poll_interval": self.poll_interval,
                "aws_conn_id": self.aws_conn_id,
            },
        )

    def _storage(self) -> Any:
        from sightlines.storage import Storage

        options: dict[str, Any] = {}
        if self.aws_conn_id and self.root.startswith("s3://"):
            from ..hooks.storage import SightlinesStorageHook

            options = SightlinesStorageHook(self.aws_conn_id).storage_options()
        return Storage(self.root, storage_options=options)

    def _names(self, storage: Any) -> list[str]:
        """The clients to wait for: valid ids only (an invalid one never publishes; the report shows it failed)."""
        from sightlines.fleet import invalid_client_ids
        from sightlines.registry import load_registry

        names = sorted(set(self.clients)) if self.clients is not None else load_registry(storage).names()
        invalid = invalid_client_ids(names)
        if invalid:
            self.log.warning("not waiting for %d invalid client id(s) of the registry: %s", len(invalid),
                             "; ".join(sorted(invalid.values())[:5]))
        return [n for n in names if n not in invalid]

    def _event(self, status: str, expected: int, missing: list[str], message: str) -> TriggerEvent:
        return TriggerEvent({"status": status, "date": self.date, "expected": expected,
                             "published": expected - len(missing), "n_missing": len(missing),
                             "missing": sorted(missing)[:EVENT_MISSING_NAMES], "message": message})

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Poll until every client has published, or the deadline passes."""
        from sightlines.fleet import published_clients

        try:
            deadline = dt.datetime.fromisoformat(self.deadline)
            storage = await asyncio.to_thread(self._storage)
            names = await asyncio.to_thread(self._names, storage)
        except Exception as exc:  # noqa: BLE001 - reported to the task, which fails with the message
            yield self._event("error", 0, [], f"cannot watch the fleet of {self.root} for {self.date}: {exc}")
            return
        remaining = set(names)
        self.log.info("watching %d client(s) of %s for their predictions of %s until %s", len(names), self.root,
                      self.date, self.deadline)
        while True:
            try:
                done = await asyncio.to_thread(published_clients, storage, self.date, sorted(remaining))
            except Exception as exc:  # noqa: BLE001 - a storage hiccup: try again at the next poll
                self.log.warning("fleet poll of %s failed: %s", self.date, exc)
                done = set()
            remaining -= done
            if done:
                self.log.info("%d/%d client(s) have published %s", len(names) - len(remaining), len(names),
                              self.date)
            if not remaining:
                yield self._event("complete", len(names), [], f"all {len(names)} client(s) published {self.date}")
                return
            now = dt.datetime.now(dt.timezone.utc)
            if now >= deadline:
                yield self._event("deadline", len(names), sorted(remaining),
                                  f"{len(remaining)} of {len(names)} client(s) had not published {self.date} "
                                  f"by {self.deadline}")
                return
            await asyncio.sleep(max(0.0, min(self.poll_interval, (deadline - now).total_seconds())))
