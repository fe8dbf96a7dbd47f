"""The ``mesos`` backend: a step runs as a Mesos task, exactly once per (DAG, task, client, date[, sightline]).

The step's command (``python -m sightlines step STEP --client C --date D
[--sightline S] --json``, see :attr:`MesosTaskDefaults.step_command
<sightlines_airflow.hooks.mesos.MesosTaskDefaults>`) runs as one Mesos task,
either as a plain command or inside a Docker image (``docker_image``, for
agents with the Docker containerizer), with the step's cpus and memory and,
if configured, disk. The cluster comes from an Airflow connection
(:mod:`sightlines_airflow.hooks.mesos`, default ``sightlines_mesos``); the work
is done by :mod:`sightlines.mesos`:

``submit``
    launch-or-reattach (:func:`~sightlines.mesos.submit_task`), back once the
    task is ``TASK_RUNNING``; its framework stays registered so that a waiter
    re-attaches.
``wait`` (in the worker) / :class:`~sightlines_airflow.triggers.mesos.MesosTaskTrigger` (deferred)
    re-attach and wait (:func:`~sightlines.mesos.run_task`): every update is
    acknowledged, ``TASK_LOST``/``DROPPED``/``GONE`` are relaunched up to
    ``max_relaunches`` times, ``TASK_UNREACHABLE`` is waited out (the task may
    still run, so it is never started twice), and the framework is torn down at the end.
``result``
    the final state, the exit code and the step's ``--json`` result read from
    the sandbox's ``stdout``, the tail of its ``stderr``.
``cancel``
    ``KILL`` (:func:`~sightlines.mesos.kill_task`), then teardown.

Job ids are the Mesos task ids, derived from :attr:`StepSpec.key
<sightlines_airflow.backends.base.StepSpec.key>` (DAG, task, run, map index,
and the first try of the current series of tries): ``sl.{client}.{date}.{step}.{digest}``.
An Airflow retry therefore finds the task of the earlier try on the master and
re-attaches to it (reconciliation) instead of launching a second copy, and a
retry after the task already finished reports it without running it again;
clearing the Airflow task starts a new series, so the step runs again. A
waiter never starts a task again once it has ended and its framework is gone
(a duplicate trigger, a wait after a kill): it reports the end instead.

========================================  ============================================
Mesos state                               job state
========================================  ============================================
``TASK_STAGING``, ``TASK_STARTING``       pending
``TASK_RUNNING``, ``TASK_KILLING``        running
``TASK_LOST``, ``DROPPED``, ``GONE``,     running: the waiter relaunches it (or, when
``UNREACHABLE``, ``UNKNOWN``              unreachable, waits for it to come back)
``TASK_FINISHED``                         succeeded (exit 0)
``TASK_FAILED``                           by exit code: 99 skipped, else failed
``TASK_KILLED``                           cancelled
``TASK_ERROR``                            failed (the task was invalid)
========================================  ============================================

When the waiter gives up on a lost task (after ``max_relaunches``), the job
fails with the last state and message, and Airflow's retries take over.

Storage credentials never go on a command line. Two policies (option ``credentials``):

``agent`` (default, the safe one)
    the agents hold their own credentials: an instance profile or workload
    identity, or variables given to executors by the agent
    (``--executor_environment_variables``). Only non-secret storage settings
    (region, endpoint) are passed to the task; the credentials of the
    operator's ``aws_conn_id`` are dropped (their names are logged).
``task_env``
    the credentials of ``aws_conn_id`` are put in the task's environment. The
    master shows task environments to anyone who can read its state
    (``/state``, ``GET_TASKS``, the UI), so use it only where that audience may
    see them (a demo, a single-tenant cluster with authenticated, restricted
    state endpoints). The values are masked in Airflow's logs, and a trigger
    that must relaunch the task reads them again from the connection instead
    of keeping them in its (stored) arguments.

Examples
--------
>>> spec = StepSpec(step="train", client="acme", run_date="2026-11-24", sightline="rev_30",
...                 key="sightlines__acme.train.scheduled__2026-11-24T00:00:00+00:00.rev_30.t1")
>>> task_id_for(spec)
'sl.acme.2026-11-24.train-rev_30.8f4314f24efc'
>>> job_state("TASK_FAILED", "Command exited with status 99")
<JobState.SKIPPED: 'skipped'>
>>> job_state("TASK_LOST", "Agent removed")
<JobState.RUNNING: 'running'>
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import re
import shlex
import signal
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeVar

from sightlines.mesos import (
    FrameworkError,
    MesosConfig,
    MesosError,
    NoMatchingOfferError,
    SandboxInfo,
    TaskOutcome,
    TaskSpec,
    TaskStatus,
    find_task,
    kill_task,
    read_sandbox,
    run_task,
    submit_task,
)

from ..hooks.mesos import (
    DEFAULT_CONN_ID,
    TASK_KEYS,
    MesosHook,
    MesosSettings,
    MesosTaskDefaults,
    override_config,
)
from .base import (
    BackendConfigError,
    BackendError,
    ComputeBackend,
    JobNotFoundError,
    JobResult,
    JobState,
    StepSpec,
    failure_reason,
    parse_step_output,
    state_for_exit_code,
)

if TYPE_CHECKING:
    from airflow.triggers.base import BaseTrigger

__all__ = [
    "NON_SECRET_STORAGE_KEYS",
    "MesosBackend",
    "exit_code_of",
    "job_result",
    "job_state",
    "outcome_from_status",
    "stdout_tail",
    "task_id_for",
]

log = logging.getLogger(__name__)
T = TypeVar("T")

#: storage settings from ``StepSpec.secret_env`` that are not secrets: passed to the task under either policy
NON_SECRET_STORAGE_KEYS = frozenset({"AWS_DEFAULT_REGION", "AWS_REGION", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3",
                                     "SIGHTLINES_S3_ENDPOINT_URL"})
#: backend options besides the task keys of the connection (:data:`~sightlines_airflow.hooks.mesos.TASK_KEYS`)
_BACKEND_KEYS = ("config", "kill_timeout", "stdout_tail_bytes", "tail_lines")
_TASK_ID_UNSAFE = re.compile(r"[^A-Za-z0-9._:-]+")
_EXIT_RE = re.compile(r"exited with status (-?\d+)")
_SIGNAL_RE = re.compile(r"terminated with signal ([A-Za-z][A-Za-z0-9 ]*)")
_SIGNALS: dict[str, int] = {}
for _sig in signal.Signals:
    _SIGNALS[_sig.name.lower()] = int(_sig)
    _described = signal.strsignal(_sig)
    if _described:
        _SIGNALS[_described.lower()] = int(_sig)

_PENDING = frozenset({"TASK_STAGING", "TASK_STARTING"})
_RUNNING = frozenset({"TASK_RUNNING", "TASK_KILLING"})
#: the task does not run now, but the waiter relaunches it (or waits for it to come back): not final
_NOT_FINAL = frozenset({"TASK_LOST", "TASK_DROPPED", "TASK_GONE", "TASK_GONE_BY_OPERATOR", "TASK_UNREACHABLE",
                        "TASK_UNKNOWN"})


def task_id_for(spec: StepSpec) -> str:
    """The Mesos task id (= job id) of a step: readable, deterministic, and safe for Mesos.

    ``sl.{client}.{date}.{step_id}.{digest}``, where the digest covers
    :attr:`StepSpec.key` (the Airflow task instance and its series of tries),
    or the step itself when there is no key. Characters Mesos does not allow
    become ``-``; the id never exceeds 200 characters.
    """
    identity = spec.key or f"{spec.client}|{spec.run_date}|{spec.step_id}"
    digest = hashlib.sha256(identity.encode()).hexdigest()[:12]
    readable = _TASK_ID_UNSAFE.sub("-", f"sl.{spec.client}.{spec.run_date}.{spec.step_id}").strip("-.")
    return f"{readable[:186]}.{digest}"


def exit_code_of(message: str) -> int | None:
    """The exit code in a command or Docker executor's status message, negative for a signal.

    Examples
    --------
    >>> exit_code_of("Command exited with status 99"), exit_code_of("Container exited with status 2")
    (99, 2)
    >>> exit_code_of("Command terminated with signal Killed"), exit_code_of("Task uses more resources")
    (-9, None)
    """
    if match := _EXIT_RE.search(message or ""):
        return int(match.group(1))
    if match := _SIGNAL_RE.search(message or ""):
        number = _SIGNALS.get(match.group(1).strip().lower())
        return -number if number else None
    return None


def job_state(state: str, message: str = "") -> JobState:
    """The job state of a Mesos task state (the table of the module docstring)."""
    if state in _PENDING:
        return JobState.PENDING
    if state in _RUNNING or state in _NOT_FINAL:
        return JobState.RUNNING
    if state == "TASK_FINISHED":
        return JobState.SUCCEEDED
    if state == "TASK_FAILED":
        code = exit_code_of(message)
        return state_for_exit_code(code) if code is not None else JobState.FAILED
    if state == "TASK_KILLED":
        return JobState.CANCELLED
    return JobState.FAILED  # TASK_ERROR, or a lost task the waiter gave up on


def _tail(text: str | None, lines: int) -> tuple[str, ...]:
    return tuple((text or "").splitlines()[-lines:]) if lines > 0 else ()


def stdout_tail(stdout: str | None, lines: int = 10) -> tuple[str, ...]:
    """The last lines a step printed on stdout *besides* its ``--json`` result (which is parsed, not shown).

    Examples
    --------
    >>> stdout_tail('a warning\\n{\\n  "step": "extract"\\n}\\n')
    ('a warning',)
    """
    text = stdout or ""
    found = text.rfind("\n{\n")
    if text.startswith("{\n"):
        found = 0 if found < 0 else found
    if found >= 0 and parse_step_output(text[found:]) is not None:
        text = text[:found]
    return _tail(text, lines)


def job_result(outcome: TaskOutcome, *, stdout: str | None = None, stderr: str | None = None,
               cancel_reason: str | None = None, tail_lines: int = 20) -> JobResult:
    """The :class:`JobResult` of a finished Mesos task, from its outcome and what its sandbox holds.

    Parameters
    ----------
    outcome : TaskOutcome
        How the task ended (:func:`sightlines.mesos.run_task`).
    stdout, stderr : str, optional
        The (tails of the) sandbox files, when they could be read.
    cancel_reason : str, optional
        Why we killed the task, if we did.
    tail_lines : int, default=20
        Lines of ``stderr`` kept in :attr:`JobResult.log_tail`.

    Returns
    -------
    JobResult
        ``result`` is the step's parsed ``--json`` output (success only).
    """
    first = job_state(outcome.state, outcome.message)
    if first in (JobState.PENDING, JobState.RUNNING):
        state = JobState.FAILED  # the waiter gave up on a lost or unreachable task
    else:
        state = first
    code = 0 if outcome.state == "TASK_FINISHED" else exit_code_of(outcome.message)
    tail = _tail(stderr, tail_lines)
    where = f" on {outcome.agent_hostname or outcome.agent_id}" if (outcome.agent_hostname or outcome.agent_id) else ""
    reason: str | None = None
    if state == JobState.CANCELLED:
        reason = (f"cancelled: {cancel_reason}" if cancel_reason
                  else f"the Mesos task was killed{where} ({outcome.message or outcome.reason or 'no message'}); "
                       "someone killed it outside Airflow, or the agent did (e.g. out of memory)")
    elif state != JobState.SUCCEEDED:
        if code is not None and tail:
            reason = failure_reason(tail, code)
        elif code is not None:
            reason = f"exit code {code}{where} (its stderr could not be read: see the sandbox)"
        else:
            reason = (f"Mesos task {outcome.task_id} ended {outcome.state}{where}: "
                      f"{outcome.message or 'no message'}{' [' + outcome.reason + ']' if outcome.reason else ''}")
    parsed = parse_step_output(stdout or "") if state == JobState.SUCCEEDED else None
    return JobResult(job_id=outcome.task_id, state=state, exit_code=code, reason=reason, result=parsed,
                     log_tail=tail)


def outcome_from_status(status: TaskStatus, *, launches: int = 0) -> TaskOutcome:
    """A :class:`TaskOutcome` from a bare status, e.g. from :func:`~sightlines.mesos.find_task` (no sandbox URLs)."""
    return TaskOutcome(task_id=status.task_id, state=status.state, message=status.message, reason=status.reason,
                       framework_id=status.framework_id, agent_id=status.agent_id, launches=launches,
                       reattached=True, history=(status.state,))


def _sandbox_path(status: TaskStatus) -> str | None:
    if not status.framework_id:
        return None
    return f"/frameworks/{status.framework_id}/executors/{status.executor_id or status.task_id}/runs/latest"


def _call(coro: Awaitable[T]) -> T:
    """Run ``coro`` to completion in a private thread and event loop; return its result or raise its error.

    A private loop works whether or not the calling thread runs one (``on_kill``
    may come from a signal handler while ``wait`` runs). An exception in the
    caller while it waits (Airflow's timeout, SIGTERM) cancels the coroutine,
    which closes its connections, and propagates.
    """
    loop = asyncio.new_event_loop()
    box: dict[str, Any] = {}
    started = threading.Event()

    def target() -> None:
        asyncio.set_event_loop(loop)
        try:
            task = loop.create_task(coro)  # type: ignore[arg-type]
            box["task"] = task
            started.set()
            box["value"] = loop.run_until_complete(task)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            box["error"] = exc
        finally:
            started.set()
            loop.close()

    thread = threading.Thread(target=target, name="sightlines-mesos", daemon=True)
    thread.start()
    try:
        while thread.is_alive():
            thread.join(0.2)
    except BaseException:
        started.wait(1)
        task = box.get("task")
        if task is not None:
            try:
                loop.call_soon_threadsafe(task.cancel)
            except RuntimeError:  # the loop has just finished
                pass
        thread.join(5)
        raise
    if "error" in box:
        raise box["error"]
    return box["value"]


@dataclass
class _Job:
    """What this backend object knows of one job it submitted or waited for."""

    spec: StepSpec
    task: TaskSpec
    status: TaskStatus | None = None
    outcome: TaskOutcome | None = None
    result: JobResult | None = None
    cancel_reason: str | None = None
    #: the loop and task of this process's waiter, while one runs (cancel stops it before killing)
    waiter: tuple[asyncio.AbstractEventLoop, asyncio.Task[Any]] | None = None


class MesosBackend(ComputeBackend):
    """Run steps as Mesos tasks (see the module docstring).

    Parameters
    ----------
    conn_id : str, optional
        The Airflow connection of the cluster; default ``sightlines_mesos``.
    step_command, docker_image, docker_force_pull, credentials, env, labels, disk_mb
        Override the connection's task defaults
        (:class:`~sightlines_airflow.hooks.mesos.MesosTaskDefaults`); ``env`` and ``labels`` are merged.
    config : dict, optional
        Override :class:`~sightlines.mesos.MesosConfig` fields of the connection (``offer_timeout``,
        ``max_relaunches`` ...), not the master or the credentials.
    kill_timeout : float, default=30
        Seconds ``cancel`` waits for the task to be reported killed (the framework is torn down either way).
    stdout_tail_bytes : int, default=262144
        How much of the sandbox's ``stdout`` is read for the step's JSON result.
    tail_lines : int, default=20
        Lines of the sandbox's ``stderr`` kept for logs and failure messages.

    Notes
    -----
    The constructor only stores its options (they travel in trigger kwargs, so
    they must be JSON-friendly and never secret); the connection is read and
    the options are checked on first use.
    """

    name = "mesos"
    supports_deferral = True
    streams_output = False

    def __init__(self, conn_id: str | None = None, **options: Any) -> None:
        super().__init__(conn_id or DEFAULT_CONN_ID, **options)
        self._jobs: dict[str, _Job] = {}
        self._settings: MesosSettings | None = None
        self._defaults: MesosTaskDefaults | None = None
        self._env_warned = False

    # -- settings --------------------------------------------------------------------------
    @cached_property
    def hook(self) -> MesosHook:
        """The hook of the backend's connection (built on first use)."""
        return MesosHook(self.conn_id or DEFAULT_CONN_ID)

    def _apply(self, base: MesosSettings) -> MesosSettings:
        known = set(TASK_KEYS) | set(_BACKEND_KEYS)
        unknown = sorted(set(self.options) - known)
        if unknown:
            raise BackendConfigError(f"unknown option(s) {unknown} of the mesos backend; known: {sorted(known)} "
                                     "(set them in the registry's fleet.airflow.backend_options.mesos or the "
                                     "DAG's backend_options)")
        settings = override_config(base, self.options.get("config") or {})
        task_options = {k: self.options[k] for k in TASK_KEYS if self.options.get(k) is not None}
        overrides = MesosTaskDefaults.build(task_options, where="mesos backend options")
        merged = {f.name: getattr(settings.task_defaults, f.name) for f in dataclasses.fields(MesosTaskDefaults)}
        for name in task_options:
            value = getattr(overrides, name)
            merged[name] = {**merged[name], **value} if name in ("env", "labels") else value
        self._defaults = MesosTaskDefaults(**merged)
        self._settings = settings
        return settings

    def settings(self) -> MesosSettings:
        """The connection's settings with this backend's options applied (read once, then cached)."""
        if self._settings is None:
            self._apply(self.hook.get_settings())
        assert self._settings is not None
        return self._settings

    async def asettings(self) -> MesosSettings:
        """:meth:`settings` for an event loop (the triggerer)."""
        if self._settings is None:
            self._apply(await self.hook.aget_settings())
        assert self._settings is not None
        return self._settings

    @property
    def config(self) -> MesosConfig:
        """The cluster."""
        return self.settings().config

    @property
    def task_defaults(self) -> MesosTaskDefaults:
        """The task defaults after the backend's options."""
        self.settings()
        assert self._defaults is not None
        return self._defaults

    def _option(self, name: str, default: Any) -> Any:
        value = self.options.get(name)
        return default if value is None else value

    # -- task description -------------------------------------------------------------------------
    def _task_env(self, spec: StepSpec, defaults: MesosTaskDefaults) -> dict[str, str]:
        env = {"SIGHTLINES_CPUS": str(max(1, int(spec.cpus))), "PYTHONUNBUFFERED": "1"}
        if spec.root:
            env["SIGHTLINES_ROOT"] = spec.root
        env.update(defaults.env)
        env.update({k: str(v) for k, v in spec.env.items()})
        secret_names = sorted(k for k in spec.secret_env if k not in NON_SECRET_STORAGE_KEYS)
        env.update({k: str(v) for k, v in spec.secret_env.items() if k in NON_SECRET_STORAGE_KEYS})
        if defaults.credentials == "task_env":
            from airflow.sdk.log import mask_secret

            for name in secret_names:
                mask_secret(str(spec.secret_env[name]))  # unnamed: always masked
                env[name] = str(spec.secret_env[name])
            if secret_names and not self._env_warned:
                self._env_warned = True
                log.warning("credentials='task_env': %s go into the Mesos task's environment, which the master "
                            "shows to anyone who can read its state; prefer credentials held by the agents "
                            "(credentials='agent')", ", ".join(secret_names))
        elif secret_names and not self._env_warned:
            self._env_warned = True
            log.info("credentials='agent': not passing %s to the Mesos task; the agents must hold storage "
                     "credentials of their own (instance profile, executor environment)", ", ".join(secret_names))
        return env

    def task_spec(self, spec: StepSpec) -> TaskSpec:
        """The Mesos task that runs ``spec``: command, environment, resources, image, labels."""
        self.settings()
        defaults = self.task_defaults
        labels = {"sightlines.client": spec.client, "sightlines.date": spec.run_date, "sightlines.step": spec.step_id,
                  **({"sightlines.airflow": spec.key} if spec.key else {}), **defaults.labels}
        argv = [*defaults.step_command, *spec.argv()]
        return TaskSpec(
            task_id=task_id_for(spec),
            # Mesos's Docker containerizer runs `docker run IMAGE <value> <arguments...>`, while an argv command
            # is sent as value=argv[0], arguments=argv (the command executor's convention): in an image the
            # program name would come twice. A quoted shell line runs the same in both containerizers.
            command=shlex.join(argv) if defaults.docker_image else argv,
            name=f"sightlines {spec.step_id} {spec.client} {spec.run_date}",
            env=self._task_env(spec, defaults),
            cpus=float(spec.cpus),
            mem_mb=float(spec.memory_mb or 1024),
            disk_mb=defaults.disk_for(spec.step),
            docker_image=defaults.docker_image,
            docker_force_pull=defaults.docker_force_pull,
            labels=labels,
        )

    # -- async core (used by the trigger directly, by the sync interface through _call) --------------------
    async def asubmit(self, spec: StepSpec) -> tuple[TaskSpec, TaskStatus]:
        """Launch ``spec`` or re-attach to the task an earlier try launched; back once it runs (or has ended).

        Raises
        ------
        BackendError
            No offer fitted (the message says what was asked and what was offered), another try took
            the task over, or the cluster could not be used.
        """
        config = (await self.asettings()).config
        task = self.task_spec(spec)
        try:
            status = await submit_task(config, task)
        except NoMatchingOfferError as exc:
            raise BackendError(f"{spec.step_id} of {spec.client} {spec.run_date}: {exc.message} The step's "
                               "resources come from the DAG's step settings (registry fleet.airflow.settings, "
                               "e.g. {\"train\": {\"cpus\": 1, \"memory_mb\": 2048}}).") from None
        except FrameworkError as exc:
            raise BackendError(f"Mesos task {task.task_id}: another try took it over while this one submitted it "
                               f"({exc.message}); this try stops without killing it.") from None
        except MesosError as exc:
            raise BackendError(f"could not submit Mesos task {task.task_id}: {exc.message} A task already launched "
                               "keeps running; the next try re-attaches to it.") from None
        return task, status

    async def await_outcome(self, task: TaskSpec, *, poll_interval: float = 5.0, watch_on_takeover: bool = True,
                            on_event: Callable[[TaskStatus], Any] | None = None) -> TaskOutcome:
        """Re-attach to ``task`` and wait for its end (relaunching it if it is lost), then tear its framework down.

        Parameters
        ----------
        task : TaskSpec
            The task (:meth:`task_spec`).
        poll_interval : float, default=5
            Seconds between read-only checks after a take-over.
        watch_on_takeover : bool, default=True
            If another scheduler takes the framework over meanwhile (a newer try, a duplicate trigger, a
            kill), do not fight for it: watch the master read-only until the task has ended. False: raise.
        on_event : callable, optional
            Called with every status of the task.

        Raises
        ------
        FrameworkError
            Taken over, with ``watch_on_takeover=False``.
        BackendError
            The master forgot the task while it was watched.
        MesosError
            The cluster could not be used (the task keeps running; waiting again re-attaches).
        """
        config = (await self.asettings()).config
        ended = await self._ended_and_released(config, task.task_id)
        if ended is not None:
            log.info("Mesos task %s already ended %s and its framework is gone; reporting it, not running it again",
                     task.task_id, ended.state)
            return outcome_from_status(ended)
        try:
            return await run_task(config, task, on_event=on_event)
        except FrameworkError as exc:
            if not watch_on_takeover:
                raise
            log.warning("Mesos task %s: another scheduler took its framework over (%s); watching it read-only "
                        "until it ends", task.task_id, exc.message)
        while True:
            status = await find_task(config, task.task_id)
            if status is None:
                raise BackendError(f"Mesos task {task.task_id} is no longer known to the master (it forgets "
                                   "completed tasks); retry the Airflow task to run the step again.")
            if status.state == "TASK_FINISHED":
                # run_task reports a finished task (re-attached, or from the master's record), never relaunches it;
                # it also brings the sandbox's address
                try:
                    return await run_task(config, task)
                except FrameworkError:  # the other scheduler is still tearing it down
                    await asyncio.sleep(min(poll_interval, 1.0))
                    continue
            if status.terminal:
                return outcome_from_status(status)
            await asyncio.sleep(poll_interval)

    async def _ended_and_released(self, config: MesosConfig, task_id: str) -> TaskStatus | None:
        """The task's final status if it ended other than FINISHED and its framework is torn down, else None.

        :func:`~sightlines.mesos.run_task` reports a finished task without running it again, but launches
        one that failed, was killed or was lost once nobody holds its framework (a retry wants that). A
        waiter must not: it may run twice (a duplicate trigger after the first one reported and tore down).
        """
        status = await find_task(config, task_id)
        if status is None or not status.terminal or status.state == "TASK_FINISHED" or not status.framework_id:
            return None
        # sightlines.mesos has no public "is this framework still registered" yet: use its operator-API client
        from sightlines.mesos import detector_for
        from sightlines.mesos._http import build_http_client
        from sightlines.mesos.master_api import MasterAPI

        http = build_http_client(config)
        try:
            frameworks = await MasterAPI(config, http, detector_for(config, http)).get_frameworks()
        finally:
            await http.aclose()
        registered = any(f.framework_id == status.framework_id and not f.completed for f in frameworks)
        return None if registered else status

    async def aread_sandbox(self, outcome: TaskOutcome) -> tuple[str | None, str | None]:
        """The tails of the task's ``stdout`` and ``stderr`` from its agent (None where they cannot be read)."""
        config = (await self.asettings()).config
        texts: dict[str, str | None] = {"stdout": None, "stderr": None}
        sizes = {"stdout": int(self._option("stdout_tail_bytes", 262144)), "stderr": 65536}
        if outcome.sandbox is None or not outcome.sandbox.agent_url:
            log.warning("Mesos task %s: its agent's address is unknown, so its sandbox cannot be read; see the "
                        "Mesos UI", outcome.task_id)
            return None, None
        for name in texts:
            try:
                texts[name] = await read_sandbox(config, outcome, name, tail_bytes=sizes[name])
            except MesosError as exc:
                log.warning("could not read %s of Mesos task %s: %s", name, outcome.task_id, exc.message)
        return texts["stdout"], texts["stderr"]

    async def aevent(self, outcome: TaskOutcome, *, cancel_reason: str | None = None) -> dict[str, Any]:
        """The trigger event of a finished task: its :class:`JobResult` fields, stdout tail and Mesos outcome."""
        stdout, stderr = await self.aread_sandbox(outcome)
        res = job_result(outcome, stdout=stdout, stderr=stderr, cancel_reason=cancel_reason,
                         tail_lines=int(self._option("tail_lines", 20)))
        where = outcome.agent_hostname or outcome.agent_id or "?"
        return {
            "status": "success" if res.state == JobState.SUCCEEDED else "failure",
            "job_id": outcome.task_id,
            "state": res.state.value,
            "message": f"Mesos task {outcome.task_id} ended {outcome.state} on {where}",
            "exit_code": res.exit_code,
            "reason": res.reason,
            "result": res.result,
            "log_tail": list(res.log_tail),
            "stdout_tail": list(stdout_tail(stdout)),
            "mesos": outcome.to_dict(),
        }

    async def afind(self, job_id: str) -> TaskStatus | None:
        """What the master knows of the task (read-only)."""
        return await find_task((await self.asettings()).config, job_id)

    async def astatus(self, job_id: str) -> JobState:
        """Read-only :meth:`status` for an event loop."""
        status = await self.afind(job_id)
        if status is None:
            raise JobNotFoundError(f"the Mesos master knows no task {job_id!r} (never launched, or forgotten "
                                   "after its framework completed)")
        return job_state(status.state, status.message)

    async def acancel(self, job_id: str, reason: str) -> None:
        """Kill the task and tear its framework down (idempotent)."""
        config = (await self.asettings()).config
        job = self._jobs.get(job_id)
        if job is not None:
            job.cancel_reason = reason
            if job.waiter is not None:  # stop our own waiter first: it would re-attach, or relaunch a killed task
                loop, waiter = job.waiter
                try:
                    loop.call_soon_threadsafe(waiter.cancel)
                except RuntimeError:  # its loop has just ended
                    pass
        log.warning("job %s: killing the Mesos task: %s", job_id, reason)
        for attempt in range(1, 6):
            final = await kill_task(config, job_id, reason, timeout=float(self._option("kill_timeout", 30.0)))
            # a scheduler that re-attached at the same moment (a waiter starting up) takes the framework back
            # from kill_task, which then stops without a KILL: make sure, and kill again
            now = await find_task(config, job_id)
            if now is None or now.terminal:
                break
            log.info("job %s: still %s after the kill (another scheduler re-attached meanwhile); killing again",
                     job_id, now.state)
            await asyncio.sleep(0.2 * attempt)
        log.info("job %s: %s", job_id, f"now {(now or final).state}" if (now or final) else
                 "unknown to the master: nothing to kill")

    # -- the interface ---------------------------------------------------------------------------
    def submit(self, spec: StepSpec) -> str:
        """Launch the step as a Mesos task, or re-attach to the one an earlier try launched; return its task id."""
        self.settings()  # read the connection in this thread (Airflow's comms), not in the helper thread
        task, status = _call(self.asubmit(spec))
        self._jobs[task.task_id] = _Job(spec=spec, task=task, status=status)
        self._log_where(task.task_id, status, log)
        return task.task_id

    def status(self, job_id: str) -> JobState:
        """The task's state as the master sees it (read-only); :class:`JobNotFoundError` if it knows none."""
        self.settings()
        return _call(self.astatus(job_id))

    def cancel(self, job_id: str, reason: str) -> None:
        """``KILL`` the task, wait up to ``kill_timeout`` for its end, tear its framework down (idempotent)."""
        self.settings()
        _call(self.acancel(job_id, reason))

    def wait(self, job_id: str, *, poll_interval: float = 5.0, timeout: float | None = None,
             log: logging.Logger | Any | None = None) -> JobState:
        """Wait in this process for the task to end (re-attached, with relaunches), then tear it down.

        An exception while waiting (Airflow's ``execution_timeout``, SIGTERM)
        kills the task before propagating, so no step outlives its Airflow
        task. A take-over by another try is not an interruption: this try
        fails without killing the task the other one now watches.
        """
        logger = log or globals()["log"]
        job = self._job(job_id)
        self.settings()
        try:
            if timeout is not None:
                outcome = _call(asyncio.wait_for(self._outcome(job, poll_interval), timeout))
            else:
                outcome = _call(self._outcome(job, poll_interval))
        except BackendError:
            raise
        except MesosError as exc:  # not an interruption: the task keeps running for the next try to re-attach
            raise BackendError(f"lost track of Mesos task {job_id}: {exc.message} The task keeps running; the next "
                               "try re-attaches to it.") from None
        except BaseException as exc:
            if isinstance(exc, asyncio.TimeoutError):
                exc = TimeoutError(f"job {job_id} did not finish within {timeout:.0f} s")
            try:
                self.cancel(job_id, f"the waiting Airflow task was interrupted ({type(exc).__name__}: {exc})")
            except Exception as cancel_error:  # noqa: BLE001 - the interruption is what matters
                logger.error("job %s: could not kill the Mesos task: %s", job_id, cancel_error)
            raise exc from None
        job.outcome = outcome
        state = job_result(outcome, cancel_reason=job.cancel_reason).state
        logger.info("job %s: %s %s %s ended %s (%s)", job_id, job.spec.step_id, job.spec.client,
                    job.spec.run_date, outcome.state, state.value)
        return state

    def result(self, job_id: str) -> JobResult:
        """The finished job's state, exit code, reason, ``--json`` result and ``stderr`` tail (from the sandbox).

        Raises
        ------
        BackendError
            The task has not finished.
        JobNotFoundError
            The master does not know the task.
        """
        job = self._jobs.get(job_id)
        if job is not None and job.result is not None:
            return job.result
        self.settings()
        if job is None:  # submitted elsewhere: only what the master still knows
            status = _call(self.afind(job_id))
            if status is None:
                raise JobNotFoundError(f"the Mesos master knows no task {job_id!r}")
            if job_state(status.state, status.message) in (JobState.PENDING, JobState.RUNNING):
                raise BackendError(f"job {job_id} is still running ({status.state}); wait for it first")
            outcome = outcome_from_status(status)
            res = job_result(outcome)
            self._log_end(res, outcome)
            return res
        if job.outcome is None:
            state = self.status(job_id)
            if not state.is_terminal:
                raise BackendError(f"job {job_id} is still running ({state.value}); wait for it first")
            job.outcome = _call(self._outcome(job, 1.0))
        stdout, stderr = _call(self.aread_sandbox(job.outcome))
        job.result = job_result(job.outcome, stdout=stdout, stderr=stderr, cancel_reason=job.cancel_reason,
                                tail_lines=int(self._option("tail_lines", 20)))
        self._log_end(job.result, job.outcome, stdout_tail(stdout))
        return job.result

    # -- deferral (called by the step operator) -----------------------------------------------
    def trigger_for(self, job_id: str, spec: StepSpec, *, poll_interval: float, timeout: Any = None,
                    aws_conn_id: str | None = None) -> "BaseTrigger":
        """The trigger that waits for ``job_id`` in the triggerer (re-attached, relaunching lost tasks).

        Parameters
        ----------
        job_id : str
            The task id ``submit`` returned.
        spec : StepSpec
            The step (its public part travels in the trigger's kwargs; secrets never do).
        poll_interval : float
            Seconds between read-only checks while another scheduler holds the task.
        timeout : datetime.timedelta, optional
            The Airflow task's ``execution_timeout``: the trigger kills the task a little before it
            passes, so that a timeout stops the step on the cluster too.
        aws_conn_id : str, optional
            With ``credentials='task_env'``, where a relaunch reads the storage credentials again.
        """
        from ..triggers.mesos import MesosTaskTrigger

        timeout_at = None
        if timeout is not None:
            seconds = timeout.total_seconds() if hasattr(timeout, "total_seconds") else float(timeout)
            timeout_at = time.time() + max(1.0, seconds - min(30.0, seconds * 0.05))
        needs_secrets = self.task_defaults.credentials == "task_env"
        return MesosTaskTrigger(job_id=job_id, step=spec.to_public_dict(), conn_id=self.conn_id,
                                backend_options=dict(self.options), poll_interval=poll_interval,
                                aws_conn_id=aws_conn_id if needs_secrets else None, timeout_at=timeout_at)

    def result_from_event(self, job_id: str, event: Mapping[str, Any]) -> JobResult:
        """The job's result as the trigger found it (the trigger already waited, tore down and read the sandbox).

        Raises
        ------
        BackendError
            The event is not about this job or lacks the Mesos outcome.
        """
        mesos = event.get("mesos")
        if event.get("job_id") != job_id or not isinstance(mesos, Mapping) or mesos.get("task_id") != job_id:
            raise BackendError(f"the trigger event is not about Mesos task {job_id}: {dict(event)!r}")
        try:
            outcome = TaskOutcome.from_dict(mesos)
            state = JobState(event["state"])
        except (TypeError, ValueError, KeyError) as exc:
            raise BackendError(f"malformed trigger event for Mesos task {job_id}: {exc}") from None
        if not state.is_terminal:
            raise BackendError(f"the trigger reported Mesos task {job_id} as {state.value}, not finished")
        res = JobResult(job_id=job_id, state=state, exit_code=event.get("exit_code"), reason=event.get("reason"),
                        result=event.get("result"), log_tail=tuple(event.get("log_tail") or ()))
        self._log_end(res, outcome, tuple(event.get("stdout_tail") or ()))
        return res

    # -- helpers ------------------------------------------------------------------------------------
    def _job(self, job_id: str) -> _Job:
        try:
            return self._jobs[job_id]
        except KeyError:
            raise JobNotFoundError(f"this mesos backend did not submit job {job_id!r}; submit the step (which "
                                   "re-attaches to a running task) before waiting for it") from None

    async def _outcome(self, job: _Job, poll_interval: float) -> TaskOutcome:
        """Finish ``job``: its outcome, re-attaching and waiting when it may still run."""
        if job.status is not None and job.status.terminal and job.status.state != "TASK_FINISHED":
            # submit found it ended and tore its framework down: run_task would start it again
            return outcome_from_status(job.status)
        if job.cancel_reason is not None:
            return await self._killed_outcome(job)
        me = asyncio.current_task()
        assert me is not None
        job.waiter = (asyncio.get_running_loop(), me)
        try:
            return await self.await_outcome(job.task, poll_interval=poll_interval, watch_on_takeover=False)
        except asyncio.CancelledError:
            if job.cancel_reason is None:
                raise
            me.uncancel()  # stopped by our own cancel(): report the kill
        except FrameworkError as exc:
            if job.cancel_reason is None:
                raise BackendError(f"Mesos task {job.task.task_id}: another try took its framework over "
                                   f"({exc.message}); this try stops here without killing the task, which the "
                                   "other try now waits for.") from None
        finally:
            job.waiter = None
        return await self._killed_outcome(job)

    async def _killed_outcome(self, job: _Job) -> TaskOutcome:
        """The outcome of a task we killed ourselves (cancel), once the master has its final state."""
        deadline = time.monotonic() + float(self._option("kill_timeout", 30.0)) + 5.0
        while True:
            status = await self.afind(job.task.task_id)
            if status is None:
                raise BackendError(f"Mesos task {job.task.task_id} was cancelled ({job.cancel_reason}) and is no "
                                   "longer known to the master")
            if status.terminal or time.monotonic() > deadline:
                return outcome_from_status(status)
            await asyncio.sleep(0.1)

    def _log_where(self, job_id: str, status: TaskStatus, logger: Any) -> None:
        path = _sandbox_path(status)
        logger.info("job %s: Mesos task %s is %s on agent %s (framework %s)%s", job_id, job_id, status.state,
                    status.agent_id or "?", status.framework_id or "?",
                    f"; its sandbox is {path} on that agent (read {path}/stdout and /stderr with the agent's "
                    "/files/read?path=..., or in the Mesos UI; the full URLs are logged when it ends)" if path else "")

    def _log_end(self, res: JobResult, outcome: TaskOutcome, stdout_lines: tuple[str, ...] = ()) -> None:
        where = outcome.agent_hostname or outcome.agent_id or "an unknown agent"
        log.info("job %s: Mesos task ran on %s (agent %s, framework %s, %d launch(es) by this waiter%s) and ended "
                 "%s: %s", res.job_id, where, outcome.agent_id or "?", outcome.framework_id or "?", outcome.launches,
                 ", re-attached" if outcome.reattached else "", outcome.state, res.state.value)
        sandbox: SandboxInfo | None = outcome.sandbox
        if sandbox is not None:
            log.info("job %s: sandbox %s", res.job_id, sandbox.describe())
        # on failure the operator logs the stderr tail itself (as an error); here it is shown for the rest
        if res.log_tail and res.state in (JobState.SUCCEEDED, JobState.SKIPPED):
            log.info("job %s: last lines of the step's stderr:\n%s", res.job_id, "\n".join(res.log_tail))
        if stdout_lines:
            log.info("job %s: last lines of the step's stdout (besides its JSON result):\n%s", res.job_id,
                     "\n".join(stdout_lines))
        if res.result is not None:
            log.info("job %s: the step's stdout held its JSON result (status %s, %s record(s))", res.job_id,
                     res.result.get("status", "?"), res.result.get("n_records", "?"))

