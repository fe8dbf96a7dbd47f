"""``SightlinesStepOperator``: run one ``sightlines step`` for one client and date on a compute backend.

The operator is thin (the Amazon provider's batch operator is the model): it
gathers its arguments into a :class:`~sightlines_airflow.backends.base.StepSpec`,
submits it to its backend, and then either waits in the worker (the local
backend streams the step's log lines into the task log) or defers to
:class:`~sightlines_airflow.triggers.job.SightlinesJobTrigger` so that a long
remote job holds no worker slot. The backend keeps the job's state; the
operator maps the outcome:

=======================  ================================================
step exit / job state    Airflow
=======================  ================================================
0 / succeeded            success; the result dict goes to XCom
99 / skipped             ``AirflowSkipException`` with the step's reason
2 / failed (usage)       ``AirflowFailException``: a config error, no retry
backend misconfigured    ``AirflowFailException``: no retry
other / failed           ``AirflowException`` with the reason and last stderr lines (retried)
cancelled                ``AirflowException``
=======================  ================================================
"""

from __future__ import annotations

import datetime as dt
import math
import os
from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowSkipException

from ..backends.base import (
    EXIT_USAGE,
    BackendConfigError,
    ComputeBackend,
    JobResult,
    JobState,
    StepSpec,
    get_backend,
)

if TYPE_CHECKING:
    from airflow.sdk import Context

__all__ = ["STEPS", "SightlinesStepOperator"]

#: the steps of ``sightlines step``
STEPS = ("extract", "sample", "train", "score", "publish")


class SightlinesStepOperator(BaseOperator):
    """Run ``sightlines step STEP --client C --date D [--sightline S]`` on a compute backend.

    Parameters
    ----------
    step : str
        ``extract``, ``sample``, ``train``, ``score`` or ``publish``.
    client : str
        Client id. (templated)
    run_date : str, default="{{ ds }}"
        The date to process, ``YYYY-MM-DD``. (templated)
    sightline : str, optional
        The sightline; required for ``train``, refused otherwise. (templated)
    backend : str, default="local"
        Compute backend: ``local``, ``mesos`` or a ``module.Class`` path.
    cpus : float, default=1
        Cores the step may use; the step sees them as ``$SIGHTLINES_CPUS``, and
        the task takes ``ceil(cpus)`` pool slots unless ``pool_slots`` is given.
    memory_mb : int, default=2048
        Memory the step may use (enforced by cluster backends).
    root : str, optional
        Storage root; default ``$SIGHTLINES_ROOT`` of the worker. (templated)
    aws_conn_id : str, optional
        Airflow AWS connection whose credentials the step gets for an ``s3://``
        root (through its environment, masked in logs). None: the worker's own.
    backend_conn_id : str, optional
        Airflow connection of the backend (e.g. the Mesos master).
    backend_options : dict, optional
        JSON-friendly options of the backend (they travel in trigger kwargs: no secrets).
    deferrable : bool, default=False
        Defer while a remote job runs. Ignored (with a log line) by backends
        whose jobs live in the worker, such as ``local``.
    poll_interval : float, default=30
        Seconds between two status checks of a deferred or remote job.
    **kwargs
        Passed to :class:`~airflow.sdk.BaseOperator` (retries, pool, execution_timeout ...).

    Examples
    --------
    >>> train = SightlinesStepOperator(task_id="train", step="train", client="acme",
    ...                                sightline="rev_30", cpus=2)
    >>> train.pool_slots, train.run_date
    (2, '{{ ds }}')
    """

    template_fields: Sequence[str] = ("client", "root", "run_date", "sightline")
    ui_color = "#e8f1fb"

    # Defaults live on the class and __init__ sets only what differs: every attribute set on an
    # operator goes through BaseOperator.__setattr__, and a fleet DAG file builds ~85,000 of them.
    run_date: str = "{{ ds }}"
    sightline: str | None = None
    backend: str = "local"
    cpus: float = 1
    memory_mb: int = 2048
    root: str | None = None
    aws_conn_id: str | None = None
    backend_conn_id: str | None = None
    backend_options: dict[str, Any] | None = None
    deferrable: bool = False
    poll_interval: float = 30.0
    _job_id: str | None = None

    def __init__(
        self,
        *,
        step: str,
        client: str,
        run_date: str = "{{ ds }}",
        sightline: str | None = None,
        backend: str = "local",
        cpus: float = 1,
        memory_mb: int = 2048,
        root: str | None = None,
        aws_conn_id: str | None = None,
        backend_conn_id: str | None = None,
        backend_options: dict[str, Any] | None = None,
        deferrable: bool = False,
        poll_interval: float = 30.0,
        **kwargs: Any,
    ) -> None:
        if step not in STEPS:
            raise ValueError(f"step is {step!r}; expected one of {list(STEPS)}")
        if (step == "train") != bool(sightline):
            raise ValueError("sightline= is required for step='train' and only allowed there "
                             f"(got step={step!r}, sightline={sightline!r})")
        if cpus <= 0:
            raise ValueError(f"cpus is {cpus!r}; expected a positive number of cores")
        kwargs.setdefault("pool_slots", max(1, math.ceil(cpus)))
        super().__init__(**kwargs)
        self.step = step
        self.client = client
        if run_date != "{{ ds }}":
            self.run_date = run_date
        if sightline is not None:
            self.sightline = sightline
        if backend != "local":
            self.backend = backend
        if cpus != 1:
            self.cpus = cpus
        if memory_mb != 2048:
            self.memory_mb = memory_mb
        if root is not None:
            self.root = root
        if aws_conn_id is not None:
            self.aws_conn_id = aws_conn_id
        if backend_conn_id is not None:
            self.backend_conn_id = backend_conn_id
        if backend_options is not None:
            self.backend_options = backend_options
        if deferrable:
            self.deferrable = True
        if poll_interval != 30.0:
            self.poll_interval = poll_interval

    # -- the backend ------------------------------------------------------------------
    @cached_property
    def compute(self) -> ComputeBackend:
        """The compute backend (built on first use, in the worker: parsing a DAG opens nothing)."""
        return get_backend(self.backend, conn_id=self.backend_conn_id, options=self.backend_options)

    def _spec(self, context: Context) -> StepSpec:
        try:
            day = dt.date.fromisoformat(str(self.run_date)).isoformat()
        except ValueError:
            raise AirflowFailException(f"run_date rendered to {self.run_date!r}, not a date; use YYYY-MM-DD "
                                       "(the default '{{ ds }}' is the run's logical date)") from None
        root = self.root or os.environ.get("SIGHTLINES_ROOT")
        if not root:
            raise AirflowFailException(f"{self.task_id}: no storage root; pass root= to the operator or set "
                                       "$SIGHTLINES_ROOT on the workers")
        from ..hooks.storage import SightlinesStorageHook

        secret_env = SightlinesStorageHook(self.aws_conn_id).step_env() if self.aws_conn_id else {}
        ti = context["ti"]
        # a mapped train instance is named by its sightline, not its map index: an index is a position in the
        # catalogue, and a catalogue change between two tries would point it at another sightline's job
        instance = self.sightline or getattr(ti, "map_index", -1)
        key = f"{ti.dag_id}.{ti.task_id}.{ti.run_id}.{instance}"
        max_tries = getattr(ti, "max_tries", None)
        if isinstance(max_tries, int):
            # the first try of the current series: retries share it (a backend re-attaches to the job of an
            # earlier try); clearing the task starts a new series (Airflow sets max_tries = try_number + retries)
            key += f".t{max(1, max_tries - (self.retries or 0) + 1)}"
        return StepSpec(step=self.step, client=self.client, run_date=day, sightline=self.sightline, root=root,
                        cpus=self.cpus, memory_mb=self.memory_mb, secret_env=secret_env, key=key)

    # -- execution -------------------------------------------------------------------------
    def execute(self, context: Context) -> dict[str, Any]:
        """Submit the step; wait in the worker, or defer while a remote job runs."""
        from sightlines.errors import ConfigError

        spec = self._spec(context)
        try:
            job_id = self.compute.submit(spec)
        except (BackendConfigError, ConfigError) as exc:  # a retry would fail the same way
            raise AirflowFailException(f"{spec.step_id} of {spec.client} {spec.run_date}: backend {self.backend!r} "
                                       f"is misconfigured, not retrying: {exc}") from exc
        self._job_id = job_id
        self.log.info("%s of %s %s: job %s on backend %r (%s cpu(s), %s MB)", spec.step_id, spec.client,
                      spec.run_date, job_id, self.backend, spec.cpus, spec.memory_mb)
        if self.deferrable and self.compute.supports_deferral:
            state = self.compute.status(job_id)
            if not state.is_terminal:
                from ..triggers.job import SightlinesJobTrigger

                # a backend may wait with a trigger of its own (mesos: re-attached to the task, not polling)
                trigger = self.compute.trigger_for(job_id, spec, poll_interval=self.poll_interval,
                                                   timeout=self.execution_timeout, aws_conn_id=self.aws_conn_id)
                if trigger is None:
                    trigger = SightlinesJobTrigger(job_id=job_id, backend=self.backend, conn_id=self.backend_conn_id,
                                                   poll_interval=self.poll_interval,
                                                   backend_options=self.backend_options)
                self.log.info("job %s is %s; deferring to %s", job_id, state.value, type(trigger).__name__)
                self.defer(trigger=trigger, method_name="execute_complete", timeout=self.execution_timeout)
            return self._complete(job_id)
        if self.deferrable:
            self.log.info("backend %r runs jobs inside this worker; waiting here instead of deferring",
                          self.backend)
        self.compute.wait(job_id, poll_interval=self.poll_interval if not self.compute.streams_output else 0.5,
                          timeout=None, log=self.log)
        return self._complete(job_id)

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        """Resume after the trigger fired: validate the event, re-check the job through the backend."""
        if not event:
            raise AirflowException(f"{self.task_id}: resumed without a trigger event; clear the task to run the "
                                   "step again")
        job_id = event.get("job_id")
        if not job_id:
            raise AirflowException(f"{self.task_id}: the trigger event has no job id: {event!r}")
        self._job_id = job_id
        if event.get("status") == "error":
            raise AirflowException(f"{self.task_id}: {event.get('message') or 'the trigger failed'} "
                                   f"(job {job_id} on backend {self.backend!r})")
        self.log.info("job %s: trigger reported %s (%s)", job_id, event.get("state"), event.get("message"))
        # a backend whose trigger already collected the result (mesos) checks and takes it from the event
        return self._complete(job_id, self.compute.result_from_event(job_id, event))

    def _complete(self, job_id: str, res: JobResult | None = None) -> dict[str, Any]:
        res = res or self.compute.result(job_id)
        what = f"{self.step}{'-' + self.sightline if self.sightline else ''} of {self.client} {self.run_date}"
        if res.state == JobState.SUCCEEDED:
            return self._succeeded(res, what)
        if not self.compute.streams_output and res.log_tail:
            self.log.error("last lines of job %s:\n%s", job_id, "\n".join(res.log_tail))
        if res.state == JobState.SKIPPED:
            raise AirflowSkipException(f"{what} skipped: {res.reason}")
        lines = [ln for ln in res.log_tail if ln.strip()]
        # a handled error is one line (already the reason); a crash is worth its last lines
        handled = bool(lines) and lines[-1].startswith("sightlines: ")
        tail = "" if handled else "\n".join(lines[-5:])
        message = f"{what} {res.state.value} (job {job_id}, exit code {res.exit_code}): {res.reason}"
        if res.state == JobState.FAILED and res.exit_code == EXIT_USAGE:
            raise AirflowFailException(f"{message}\nThis is a usage or config error: fix the client's registry "
                                       "entry or the DAG; retrying will not help.")
        raise AirflowException(f"{message}\n{tail}" if tail else message)

    def _succeeded(self, res: JobResult, what: str) -> dict[str, Any]:
        step = res.result or {}
        self.log.info("%s: %s, %s record(s) (job %s)", what, step.get("status", "ok"), step.get("n_records", "?"),
                      res.job_id)
        for warning in step.get("warnings") or ():
            self.log.warning("%s: %s", what, warning)
        if self.step == "publish":
            summary = publish_summary(step, job_id=res.job_id)
            if summary["stale_days"]:
                self.log.warning("published STALE predictions for %s %s: stale_days=%s, republished from %s "
                                 "because %s", summary["client"], summary["date"], summary["stale_days"],
                                 summary["republished_from"], summary["reason"])
            else:
                used = ", ".join(f"{k} (model of {v})" for k, v in summary["fallback_sightlines"].items())
                self.log.info("published FRESH predictions for %s %s: %s row(s)%s", summary["client"],
                              summary["date"], summary["rows"], f"; on older models: {used}" if used else "")
            return summary
        return res.to_dict()

    def on_kill(self) -> None:
        """The task is being killed: cancel its job, with the reason."""
        if self._job_id is None or "compute" not in self.__dict__:
            return
        which = f"{self.dag_id}.{self.task_id}" + (f"[{self.sightline}]" if self.sightline else "")
        self.compute.cancel(self._job_id, f"Airflow task {which} was killed")


def publish_summary(step_result: dict[str, Any], *, job_id: str | None = None) -> dict[str, Any]:
    """A small summary of a ``publish`` step's result: what was published, how stale, on which models.

    Parameters
    ----------
    step_result : dict
        The publish step's :class:`~sightlines.result.StepResult` as a dict.
    job_id : str, optional
        The backend job that ran it.

    Returns
    -------
    dict
        ``client``, ``date``, ``status`` (``ok``/``fallback``), ``fresh``, ``stale_days``,
        ``source_date``, ``republished_from``, ``reason``, ``fallback_sightlines``
        (sightline -> model date), ``rows``, ``warnings``, ``job_id``.
    """
    details = step_result.get("details") or {}
    stale = int(details.get("stale_days") or 0)
    model_dates: dict[str, str] = {}
    for w in step_result.get("warnings") or ():
        # the publish step words a fallback as "rev_30 uses its model of 2026-11-23 (1 day(s) old)"
        name, sep, rest = str(w).partition(" uses its model of ")
        if sep:
            model_dates[name] = rest.split(" ", 1)[0]
    fallbacks = {name: model_dates.get(name) for name in sorted(details.get("fallback_sightlines") or ())}
    return {
        "client": step_result.get("client"),
        "date": step_result.get("date"),
        "status": step_result.get("status"),
        "fresh": stale == 0,
        "stale_days": stale,
        "source_date": details.get("source_date"),
        "republished_from": details.get("republished_from"),
        "reason": details.get("reason"),
        "fallback_sightlines": fallbacks,
        "rows": step_result.get("n_records"),
        "warnings": list(step_result.get("warnings") or ()),
        "job_id": job_id,
    }
