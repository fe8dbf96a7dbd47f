"""A trigger that polls one compute-backend job until it finishes (the deferrable path of the step operator).

The trigger imports the backend, never the operator; its kwargs are
JSON-friendly (job id, backend name, connection id, poll interval, backend
options) and every kwarg added later gets a default, so triggers saved by an
older release still load. ``run`` only reads the job's state, so running it
twice (the triggerer may) has no side effect. If the deferred task is killed
by a user, :meth:`SightlinesJobTrigger.on_kill` cancels the job; ``cleanup``
does not, because it also runs when the triggerer restarts.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from functools import cached_property
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from ..backends.base import ComputeBackend, JobState, get_backend

__all__ = ["SightlinesJobTrigger"]


class SightlinesJobTrigger(BaseTrigger):
    """Poll a backend job by id; fire one event when it has finished (or when polling keeps failing).

    Parameters
    ----------
    job_id : str
        The job, as returned by the backend's ``submit``.
    backend : str
        Backend name (``mesos``) or classpath.
    conn_id : str, optional
        The backend's Airflow connection.
    poll_interval : float, default=30
        Seconds between two status checks.
    backend_options : dict, optional
        JSON-friendly backend options (never secrets: trigger kwargs are stored in the metadata database).
    max_poll_errors : int, default=10
        Consecutive failed status checks after which the trigger gives up with an ``error`` event.

    Notes
    -----
    The event payload is ``{"status": "success" | "failure" | "error", "job_id",
    "state", "message"}``: ``success`` when the job succeeded, ``failure`` when it
    finished otherwise (failed, skipped, cancelled: the operator re-reads the
    result to tell which), ``error`` when its state could not be read.
    """

    def __init__(self, job_id: str, backend: str, conn_id: str | None = None, poll_interval: float = 30.0,
                 backend_options: dict[str, Any] | None = None, max_poll_errors: int = 10) -> None:
        super().__init__()
        self.job_id = job_id
        self.backend = backend
        self.conn_id = conn_id
        self.poll_interval = float(poll_interval)
        self.backend_options = dict(backend_options or {})
        self.max_poll_errors = int(max_poll_errors)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Classpath and kwargs that rebuild this trigger in the triggerer."""
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "job_id": self.job_id,
                "backend": self.backend,
                "conn_id": self.conn_id,
                "poll_interval": self.poll_interval,
                "backend_options": self.backend_options,
                "max_poll_errors": self.max_poll_errors,
            },
        )

    @cached_property
    def compute(self) -> ComputeBackend:
        """The backend client (built on first use, in the triggerer)."""
        return get_backend(self.backend, conn_id=self.conn_id, options=self.backend_options)

    def _event(self, status: str, state: JobState | None, message: str) -> TriggerEvent:
        return TriggerEvent({"status": status, "job_id": self.job_id, "state": state.value if state else None,
                             "message": message})

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Poll the job's state every ``poll_interval`` seconds until it is terminal."""
        errors = 0
        last: JobState | None = None
        while True:
            try:
                state = await self.compute.astatus(self.job_id)
                errors = 0
            except Exception as exc:  # noqa: BLE001 - a flaky poll is retried, a dead backend reported
                errors += 1
                self.log.warning("job %s: status check %d/%d failed: %s", self.job_id, errors,
                                 self.max_poll_errors, exc)
                if errors >= self.max_poll_errors:
                    yield self._event("error", None, f"could not read the state of job {self.job_id} on backend "
                                                     f"{self.backend!r} {errors} times in a row: {exc}")
                    return
                await asyncio.sleep(self.poll_interval)
                continue
            if state != last:
                self.log.info("job %s is %s", self.job_id, state.value)
                last = state
            if state.is_terminal:
                status = "success" if state == JobState.SUCCEEDED else "failure"
                yield self._event(status, state, f"job {self.job_id} {state.value}")
                return
            await asyncio.sleep(self.poll_interval)

    async def on_kill(self) -> None:
        """The deferred task was killed by a user (mark failed / clear): cancel the job too."""
        self.log.warning("job %s: the deferred task was killed; cancelling the job", self.job_id)
        await self.compute.acancel(self.job_id, "the deferred Airflow task was killed (marked failed, "
                                                "cleared or marked success) while the job ran")
