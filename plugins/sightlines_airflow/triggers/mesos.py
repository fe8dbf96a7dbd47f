"""A trigger that waits for one step's Mesos task in the triggerer (the deferrable path of the ``mesos`` backend).

While a step runs on Mesos its Airflow task holds no worker slot: the
operator submits the task and defers to :class:`MesosTaskTrigger`, which
re-attaches to the task's framework and waits for the task to end, exactly
as a worker would (:meth:`MesosBackend.await_outcome
<sightlines_airflow.backends.mesos.MesosBackend.await_outcome>`): it
acknowledges updates, relaunches a lost task (up to ``max_relaunches``), waits
out an unreachable one (never starting it twice), tears the framework down at
the end, and reads the tails of the sandbox's stdout and stderr. It fires one
event with the job's result, which ``execute_complete`` turns into the task's
outcome.

Its kwargs are JSON-friendly and hold no secret: the job id, the step's public
description, the connection id, the backend options, and, only for
``credentials='task_env'``, the id of the storage connection a relaunch reads
its credentials from. New kwargs get defaults, so triggers saved by an older
release still load. The trigger imports the backend, never the operator.

Running twice is safe: waiting re-attaches to the one framework of the task
and never launches a second copy; if another instance (or a kill) takes the
framework over, this one watches the master read-only until the task has
ended. A user killing the deferred task (mark failed/success, clear) reaches
:meth:`MesosTaskTrigger.on_kill`, which kills the Mesos task; ``cleanup``
(which also runs when the triggerer restarts) leaves it running for the next
triggerer to re-attach to. Shortly before the task's ``execution_timeout`` (the
``timeout_at`` kwarg), the trigger kills the Mesos task itself, so that a timeout
stops the step on the cluster too.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import time
from collections.abc import AsyncIterator
from functools import cached_property
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from ..backends.base import StepSpec
from ..backends.mesos import MesosBackend, outcome_from_status

__all__ = ["MesosTaskTrigger", "step_spec_from_public"]


def step_spec_from_public(data: dict[str, Any]) -> StepSpec:
    """Rebuild a :class:`StepSpec` from :meth:`StepSpec.to_public_dict` (without its secrets).

    Examples
    --------
    >>> spec = StepSpec(step="train", client="acme", run_date="2026-11-24", sightline="rev_30",
    ...                 secret_env={"AWS_SECRET_ACCESS_KEY": "x"})
    >>> step_spec_from_public(spec.to_public_dict()) == dataclasses.replace(spec, secret_env={})
    True
    """
    known = {f.name for f in dataclasses.fields(StepSpec)} - {"secret_env"}
    return StepSpec(**{k: v for k, v in data.items() if k in known})


class MesosTaskTrigger(BaseTrigger):
    """Wait for a step's Mesos task (re-attached, relaunched if lost); fire one event with its result.

    Parameters
    ----------
    job_id : str
        The Mesos task id (what the backend's ``submit`` returned).
    step : dict
        The step, as :meth:`StepSpec.to_public_dict` (no secrets).
    conn_id : str, optional
        The Airflow connection of the cluster (default ``sightlines_mesos``).
    backend_options : dict, optional
        Options of :class:`~sightlines_airflow.backends.mesos.MesosBackend` (JSON, never secrets).
    poll_interval : float, default=30
        Seconds between read-only checks while another scheduler holds the task.
    aws_conn_id : str, optional
        Only with ``credentials='task_env'``: the storage connection whose credentials a relaunched task gets.
    timeout_at : float, optional
        Epoch seconds after which the trigger kills the task (set from the Airflow task's ``execution_timeout``).

    Notes
    -----
    The event payload is ``{"status": "success" | "failure" | "error", "job_id",
    "state", "message", "exit_code", "reason", "result", "log_tail",
    "stdout_tail", "mesos"}``, where ``mesos`` is the
    :class:`~sightlines.mesos.TaskOutcome` as a dict (agent, framework, sandbox
    URLs). ``error`` events (the cluster could not be used) carry only
    ``status``, ``job_id``, ``state`` (None) and ``message``.
    """

    def __init__(self, job_id: str, step: dict[str, Any], conn_id: str | None = None,
                 backend_options: dict[str, Any] | None = None, poll_interval: float = 30.0,
                 aws_conn_id: str | None = None, timeout_at: float | None = None) -> None:
        super().__init__()
        self.job_id = job_id
        self.step = dict(step)
        self.conn_id = conn_id
        self.backend_options = dict(backend_options or {})
        self.poll_interval = float(poll_interval)
        self.aws_conn_id = aws_conn_id
        self.timeout_at = None if timeout_at is None else float(timeout_at)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Classpath and kwargs that rebuild this trigger in the triggerer."""
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "job_id": self.job_id,
                "step": self.step,
                "conn_id": self.conn_id,
                "backend_options": self.backend_options,
                "poll_interval": self.poll_interval,
                "aws_conn_id": self.aws_conn_id,
                "timeout_at": self.timeout_at,
            },
        )

    @cached_property
    def compute(self) -> MesosBackend:
        """The backend (built on first use, in the triggerer)."""
        return MesosBackend(self.conn_id, **self.backend_options)

    async def _spec(self) -> StepSpec:
        spec = step_spec_from_public(self.step)
        if self.aws_conn_id:
            from ..hooks.storage import SightlinesStorageHook

            # read in a thread: the hook's connection lookup is synchronous
            secret_env = await asyncio.to_thread(SightlinesStorageHook(self.aws_conn_id).step_env)
            spec = dataclasses.replace(spec, secret_env=secret_env)
        return spec

    def _error(self, message: str) -> TriggerEvent:
        return TriggerEvent({"status": "error", "job_id": self.job_id, "state": None, "message": message})

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Wait for the task's end (or kill it at ``timeout_at``) and yield its result."""
        backend = self.compute
        try:
            await backend.asettings()
            task = backend.task_spec(await self._spec())
        except Exception as exc:  # noqa: BLE001 - a broken connection or option ends the wait with its message
            yield self._error(f"could not prepare the wait for Mesos task {self.job_id}: {exc}")
            return
        if task.task_id != self.job_id:
            yield self._error(f"the step {self.step.get('step')!r} of these kwargs maps to Mesos task "
                              f"{task.task_id}, not {self.job_id}; clear the Airflow task to submit it again")
            return

        def on_event(status: Any) -> None:
            self.log.info("Mesos task %s is %s%s", status.task_id, status.state,
                          f" ({status.message})" if status.message else "")

        wait = backend.await_outcome(task, poll_interval=self.poll_interval, on_event=on_event)
        cancel_reason = None
        try:
            if self.timeout_at is None:
                outcome = await wait
            else:
                outcome = await asyncio.wait_for(wait, max(0.0, self.timeout_at - time.time()))
        except asyncio.TimeoutError:
            limit = dt.datetime.fromtimestamp(self.timeout_at or 0, dt.timezone.utc).isoformat(timespec="seconds")
            cancel_reason = f"the step was still running at {limit}, the end of its execution_timeout"
            try:
                await backend.acancel(self.job_id, cancel_reason)
                status = await backend.afind(self.job_id)
            except Exception as exc:  # noqa: BLE001
                yield self._error(f"Mesos task {self.job_id} passed its execution_timeout and could not be killed: "
                                  f"{exc}")
                return
            if status is None:
                yield self._error(f"Mesos task {self.job_id} passed its execution_timeout and is unknown to the master")
                return
            outcome = outcome_from_status(status)
        except Exception as exc:  # noqa: BLE001 - reported to the task, which fails (and is retried)
            yield self._error(f"waiting for Mesos task {self.job_id} failed: {exc}")
            return
        try:
            event = await backend.aevent(outcome, cancel_reason=cancel_reason)
        except Exception as exc:  # noqa: BLE001
            yield self._error(f"Mesos task {self.job_id} ended {outcome.state}, but its result could not be "
                              f"read: {exc}")
            return
        yield TriggerEvent(event)

    async def on_kill(self) -> None:
        """The deferred task was killed by a user (mark failed/success, clear): kill the Mesos task too."""
        self.log.warning("Mesos task %s: the deferred Airflow task was killed; killing the task", self.job_id)
        await self.compute.acancel(self.job_id, "the deferred Airflow task was killed (marked failed, marked "
                                                "success or cleared) while the step ran")
