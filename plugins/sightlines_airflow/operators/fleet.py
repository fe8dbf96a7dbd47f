"""The fleet DAG's two operators: watch storage for the day's predictions of every client, then report.

``FleetWatchOperator`` defers at once to
:class:`~sightlines_airflow.triggers.fleet.FleetPredictionsTrigger` (one
trigger for the whole fleet, so no worker slot is held and no task is mapped
per client); it fails, listing the late clients, if some have not published
by its deadline. ``FleetReportOperator`` (run with ``trigger_rule=ALL_DONE``)
computes each client's status with :func:`sightlines.fleet.fleet_status`,
writes it to ``fleet/{date}/status.json`` and prints the table in its log.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowException, AirflowFailException

if TYPE_CHECKING:
    from airflow.sdk import Context

__all__ = ["FleetReportOperator", "FleetWatchOperator"]


def _root(root: str | None, task_id: str) -> str:
    value = root or os.environ.get("SIGHTLINES_ROOT")
    if not value:
        raise AirflowFailException(f"{task_id}: no storage root; pass root= or set $SIGHTLINES_ROOT on the workers "
                                   "and the triggerer")
    return value


def _day(value: str) -> str:
    try:
        return dt.date.fromisoformat(str(value)).isoformat()
    except ValueError:
        raise AirflowFailException(f"run_date rendered to {value!r}, not a date; use YYYY-MM-DD") from None


class FleetWatchOperator(BaseOperator):
    """Wait (deferred) until every client has published its predictions of ``run_date``, or a deadline.

    Parameters
    ----------
    run_date : str, default="{{ ds }}"
        The date to watch. (templated)
    root : str, optional
        Storage root; default ``$SIGHTLINES_ROOT``. (templated)
    clients : sequence of str, optional
        The clients to watch; None watches every client of the registry under ``root``.
    max_wait : datetime.timedelta, default=20 hours
        How long to wait from the moment the task starts.
    poll_interval : float, default=300
        Seconds between two polls of storage.
    aws_conn_id : str, optional
        Airflow AWS connection for an ``s3://`` root.
    """

    template_fields: Sequence[str] = ("root", "run_date")
    ui_color = "#fdf2e0"

    def __init__(self, *, run_date: str = "{{ ds }}", root: str | None = None, clients: Sequence[str] | None = None,
                 max_wait: dt.timedelta = dt.timedelta(hours=20), poll_interval: float = 300.0,
                 aws_conn_id: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.run_date = run_date
        self.root = root
        self.clients = list(clients) if clients is not None else None
        self.max_wait = max_wait
        self.poll_interval = poll_interval
        self.aws_conn_id = aws_conn_id

    def execute(self, context: Context) -> None:
        """Defer to the fleet trigger straight away (its first poll is immediate)."""
        from ..triggers.fleet import FleetPredictionsTrigger

        deadline = dt.datetime.now(dt.timezone.utc) + self.max_wait
        day = _day(self.run_date)
        root = _root(self.root, self.task_id)
        self.log.info("watching %s client(s) of %s for their predictions of %s until %s",
                      "all" if self.clients is None else len(self.clients), root, day,
                      deadline.isoformat(timespec="seconds"))
        self.defer(
            trigger=FleetPredictionsTrigger(root=root, date=day, deadline=deadline.isoformat(), clients=self.clients,
                                            poll_interval=self.poll_interval, aws_conn_id=self.aws_conn_id),
            method_name="execute_complete",
            # the trigger fires at its own deadline; this is only a safety net
            timeout=self.max_wait + dt.timedelta(minutes=30),
        )

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        """Succeed when every client published; fail listing the late ones otherwise."""
        if not event:
            raise AirflowException(f"{self.task_id}: resumed without a trigger event; clear the task to watch again")
        status = event.get("status")
        self.log.info("%s", event.get("message"))
        if status == "complete":
            return {k: event.get(k) for k in ("date", "expected", "published")}
        if status == "deadline":
            names = ", ".join(event.get("missing") or ())
            more = event.get("n_missing", 0) - len(event.get("missing") or ())
            raise AirflowException(f"{event.get('message')}: {names}{f' and {more} more' if more > 0 else ''}; "
                                   "the report task lists why for each client")
        raise AirflowException(f"{self.task_id}: {event.get('message') or event!r}")


class FleetReportOperator(BaseOperator):
    """Write the fleet's per-client status of ``run_date`` to ``fleet/{date}/status.json`` and log it as a table.

    Parameters
    ----------
    run_date : str, default="{{ ds }}"
        The date to report on. (templated)
    root : str, optional
        Storage root; default ``$SIGHTLINES_ROOT``. (templated)
    clients : sequence of str, optional
        The clients to report on; None reports on every client of the registry under ``root``.
    aws_conn_id : str, optional
        Airflow AWS connection for an ``s3://`` root.
    log_limit : int, default=500
        Client lines printed in the log (problems first); the stored JSON always has every client.
    """

    template_fields: Sequence[str] = ("root", "run_date")
    ui_color = "#e9f7ec"

    def __init__(self, *, run_date: str = "{{ ds }}", root: str | None = None, clients: Sequence[str] | None = None,
                 aws_conn_id: str | None = None, log_limit: int = 500, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.run_date = run_date
        self.root = root
        self.clients = list(clients) if clients is not None else None
        self.aws_conn_id = aws_conn_id
        self.log_limit = log_limit

    def execute(self, context: Context) -> dict[str, Any]:
        """Compute, store and print the fleet status; return the counts and where it was written."""
        from sightlines.fleet import fleet_status, format_fleet_status, write_fleet_status
        from sightlines.registry import load_registry
        from sightlines.storage import Storage

        day = _day(self.run_date)
        root = _root(self.root, self.task_id)
        options: dict[str, Any] = {}
        if self.aws_conn_id and root.startswith("s3://"):
            from ..hooks.storage import SightlinesStorageHook

            options = SightlinesStorageHook(self.aws_conn_id).storage_options()
        storage = Storage(root, storage_options=options)
        names = self.clients if self.clients is not None else load_registry(storage).names()
        status = fleet_status(storage, day, names)
        key = write_fleet_status(storage, status)
        for line in format_fleet_status(status, limit=self.log_limit).splitlines():
            self.log.info("%s", line)
        self.log.info("fleet status written to %s", storage.url_of(key))
        return {"date": day, "counts": status["counts"], "n_clients": status["n_clients"], "key": key}
