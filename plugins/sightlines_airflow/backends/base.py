"""The interface every compute backend implements: submit a step, ask its state, cancel it, read its result.

A *backend* runs ``sightlines step STEP --client C --date D [--sightline S]``
somewhere (a subprocess of the Airflow worker, a Mesos task ...) and keeps the
state of its jobs: the operator and the trigger only hold a job id. The four
calls are synchronous; the trigger uses the ``a``-prefixed async variants,
which default to running the sync call in a thread and which a backend with an
async client (Mesos over HTTP) may override.

Exit codes of the step command map to job states the same way on every
backend (:func:`state_for_exit_code`): 0 succeeded, 99 skipped (nothing to do,
e.g. a sightline without enough history), anything else failed.

Re-attaching is the backend's job: :attr:`StepSpec.key` identifies one
attempt of one Airflow task instance; a backend that can find a job it started
earlier for the same key (after a worker crash or a retry) returns that job's
id from :meth:`ComputeBackend.submit` instead of launching a second one.

Examples
--------
>>> spec = StepSpec(step="train", client="acme", run_date="2026-11-24", sightline="rev_30", cpus=2)
>>> spec.step_id
'train-rev_30'
>>> spec.argv()
['step', 'train', '--client', 'acme', '--date', '2026-11-24', '--sightline', 'rev_30', '--json']
>>> state_for_exit_code(99)
<JobState.SKIPPED: 'skipped'>
"""

from __future__ import annotations

import abc
import asyncio
import enum
import importlib
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

__all__ = [
    "BACKENDS",
    "EXIT_OK",
    "EXIT_SKIPPED",
    "EXIT_USAGE",
    "BackendConfigError",
    "BackendError",
    "ComputeBackend",
    "JobNotFoundError",
    "JobResult",
    "JobState",
    "StepSpec",
    "failure_reason",
    "get_backend",
    "parse_step_output",
    "state_for_exit_code",
]

log = logging.getLogger(__name__)

#: exit codes of ``sightlines step`` (see ``sightlines.cli``)
EXIT_OK = 0
EXIT_USAGE = 2
EXIT_SKIPPED = 99

#: backend name -> classpath; any other name must be a full ``module.Class`` path
BACKENDS: dict[str, str] = {
    "local": "sightlines_airflow.backends.local.LocalBackend",
    "mesos": "sightlines_airflow.backends.mesos.MesosBackend",
}


class BackendError(Exception):
    """A backend could not be built or could not do what was asked; the message says what to do."""


class BackendConfigError(BackendError):
    """The backend is misconfigured (unknown backend or option, not installed): retrying cannot help."""


class JobNotFoundError(BackendError):
    """The backend has no job with this id (it was started by another process, or forgotten)."""


class JobState(str, enum.Enum):
    """The state of a job, as the backend sees it."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    SKIPPED = "skipped"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        """Whether the job has finished (in any way)."""
        return self in _TERMINAL


_TERMINAL = frozenset({JobState.SUCCEEDED, JobState.SKIPPED, JobState.FAILED, JobState.CANCELLED})


def state_for_exit_code(code: int | None) -> JobState:
    """The job state of a finished ``sightlines step`` process with exit code ``code``.

    ``None`` (no exit code: the process vanished) and negative codes (killed
    by a signal) are failures.
    """
    if code == EXIT_OK:
        return JobState.SUCCEEDED
    if code == EXIT_SKIPPED:
        return JobState.SKIPPED
    return JobState.FAILED


@dataclass(frozen=True)
class StepSpec:
    """One step for one client and date, with the resources it may use.

    Parameters
    ----------
    step : str
        ``extract``, ``sample``, ``train``, ``score`` or ``publish``.
    client : str
        Client id.
    run_date : str
        ``YYYY-MM-DD``.
    sightline : str, optional
        The sightline (``train`` only).
    root : str, optional
        Storage root (directory or ``s3://bucket/prefix``); passed to the step as ``$SIGHTLINES_ROOT``.
    cpus : float, default=1
        Cores the step may use; passed as ``$SIGHTLINES_CPUS`` so processes x threads fit.
    memory_mb : int, optional
        Memory the step may use (a scheduling hint for cluster backends).
    env : mapping, optional
        Extra, non-secret environment variables of the step process.
    secret_env : mapping, optional
        Secret environment variables (storage credentials). Backends pass them
        through the environment only, never on a command line, and never log them.
    key : str, optional
        Identity of the Airflow task attempt (``dag.task.run_id.map_index``) so a
        backend can re-attach to a job it already runs instead of launching another.
    """

    step: str
    client: str
    run_date: str
    sightline: str | None = None
    root: str | None = None
    cpus: float = 1
    memory_mb: int | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    secret_env: Mapping[str, str] = field(default_factory=dict, repr=False)
    key: str | None = None

    @property
    def step_id(self) -> str:
        """``step`` or ``step-sightline`` (the name of the step's run record)."""
        return f"{self.step}-{self.sightline}" if self.sightline else self.step

    def argv(self) -> list[str]:
        """Arguments of ``sightlines`` (after the program name) that run this step and print JSON."""
        args = ["step", self.step, "--client", self.client, "--date", self.run_date]
        if self.sightline:
            args += ["--sightline", self.sightline]
        return [*args, "--json"]

    def process_env(self) -> dict[str, str]:
        """The variables a step process needs on top of its inherited environment (secrets included)."""
        cpus = max(1, int(self.cpus))
        env = {"SIGHTLINES_CPUS": str(cpus), "PYTHONUNBUFFERED": "1"}
        if self.root:
            env["SIGHTLINES_ROOT"] = self.root
        env.update({k: str(v) for k, v in self.env.items()})
        env.update({k: str(v) for k, v in self.secret_env.items()})
        return env

    def to_public_dict(self) -> dict[str, Any]:
        """The spec as JSON data without the secret environment (for logs, records, trigger kwargs)."""
        d = asdict(self)
        d.pop("secret_env")
        d["env"] = dict(self.env)
        d["secret_env_keys"] = sorted(self.secret_env)
        return d


@dataclass(frozen=True)
class JobResult:
    """The outcome of a finished job.

    Parameters
    ----------
    job_id : str
    state : JobState
    exit_code : int or None
        Exit code of the step process, when known.
    reason : str or None
        Why the job was skipped, failed or cancelled (the step's own one-line message when it gave one).
    result : dict or None
        The step's :class:`~sightlines.result.StepResult` as a dict (from its ``--json`` output).
    log_tail : tuple of str
        The last lines of the step's stderr, for failure messages.
    """

    job_id: str
    state: JobState
    exit_code: int | None = None
    reason: str | None = None
    result: dict[str, Any] | None = None
    log_tail: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict (what the operator returns, and so what lands in XCom)."""
        return {"job_id": self.job_id, "state": self.state.value, "exit_code": self.exit_code,
                "reason": self.reason, "result": self.result}


def parse_step_output(stdout: str) -> dict[str, Any] | None:
    """The JSON object printed by ``sightlines step ... --json``, or None if stdout holds none.

    The step prints one indented JSON object, starting with a line ``{``;
    anything printed before it (a chatty library) is ignored.

    Examples
    --------
    >>> parse_step_output('noise\\n{\\n  "step": "extract"\\n}\\n')
    {'step': 'extract'}
    >>> parse_step_output("") is None
    True
    """
    lines = stdout.splitlines()
    for i in range(len(lines) - 1, -1, -1):
        if not lines[i].startswith("{"):
            continue
        try:
            value = json.loads("\n".join(lines[i:]))
        except ValueError:
            continue
        return value if isinstance(value, dict) else None
    return None


def failure_reason(stderr_lines: list[str] | tuple[str, ...], exit_code: int | None) -> str:
    """A one-line reason for a step that did not succeed.

    The CLI prints ``sightlines: <message>`` as its last word on a handled
    error; that message is the reason. Otherwise (a crash) the last non-empty
    stderr line is, with the exit code.
    """
    for line in reversed(stderr_lines):
        if line.startswith("sightlines: "):
            return line[len("sightlines: "):].strip()
    last = next((ln.strip() for ln in reversed(stderr_lines) if ln.strip()), "")
    if exit_code is not None and exit_code < 0:
        what = f"killed by signal {-exit_code}"
    else:
        what = f"exit code {exit_code}"
    return f"{what}: {last}" if last else f"{what} (no output on stderr)"


class ComputeBackend(abc.ABC):
    """Runs ``sightlines step`` jobs somewhere and keeps their states.

    Subclasses implement :meth:`submit`, :meth:`status`, :meth:`cancel` and
    :meth:`result`; the constructor only stores its arguments (no connection
    is opened until a job is submitted or polled), so building a backend in a
    DAG file or a trigger costs nothing.

    Parameters
    ----------
    conn_id : str, optional
        Airflow connection of the backend (e.g. the Mesos master); None for the local backend.
    **options
        Backend-specific, JSON-friendly options (they travel in trigger kwargs).
    """

    #: short name used in DAGs and trigger kwargs
    name: ClassVar[str] = ""
    #: whether a job keeps running without the worker process that submitted it, so the task may
    #: defer and a trigger (in another process) may poll it
    supports_deferral: ClassVar[bool] = True
    #: whether :meth:`wait` logs the job's output line by line as it runs (else the operator logs its tail)
    streams_output: ClassVar[bool] = False

    def __init__(self, conn_id: str | None = None, **options: Any) -> None:
        self.conn_id = conn_id
        self.options = dict(options)

    @abc.abstractmethod
    def submit(self, spec: StepSpec) -> str:
        """Start ``spec`` and return the job id.

        If the backend still runs a job for the same ``spec.key`` (a retry or a
        restarted worker), it returns that job's id instead of starting a second
        one; a finished job with the same key is not reused.
        """

    @abc.abstractmethod
    def status(self, job_id: str) -> JobState:
        """The current state of a job; raises :class:`JobNotFoundError` for an unknown id."""

    @abc.abstractmethod
    def cancel(self, job_id: str, reason: str) -> None:
        """Stop a job (if it still runs) and record ``reason``; cancelling a finished job does nothing."""

    @abc.abstractmethod
    def result(self, job_id: str) -> JobResult:
        """The outcome of a finished job; raises :class:`BackendError` if it has not finished."""

    def trigger_for(self, job_id: str, spec: StepSpec, *, poll_interval: float, timeout: Any = None,
                    aws_conn_id: str | None = None) -> Any:
        """A trigger of the backend's own to wait for ``job_id`` in the triggerer, or None.

        None (the default) means the generic
        :class:`~sightlines_airflow.triggers.job.SightlinesJobTrigger`, which polls :meth:`status`.
        """
        return None

    def result_from_event(self, job_id: str, event: Mapping[str, Any]) -> JobResult | None:
        """The job's result carried by the trigger's event, or None to ask :meth:`result`."""
        return None

    def wait(self, job_id: str, *, poll_interval: float = 5.0, timeout: float | None = None,
             log: logging.Logger | Any | None = None) -> JobState:
        """Block until the job finishes (polling :meth:`status`); return its final state.

        Backends that can stream the job's output override this to log it line by line.
        Raises :class:`TimeoutError` after ``timeout`` seconds (the job keeps running).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        logger = log or globals()["log"]
        last = None
        while True:
            state = self.status(job_id)
            if state != last:
                logger.info("job %s is %s", job_id, state.value)
                last = state
            if state.is_terminal:
                return state
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} did not finish within {timeout:.0f} s")
            time.sleep(poll_interval)

    async def astatus(self, job_id: str) -> JobState:
        """Async :meth:`status` (for triggers); the default runs the sync call in a thread."""
        return await asyncio.to_thread(self.status, job_id)

    async def acancel(self, job_id: str, reason: str) -> None:
        """Async :meth:`cancel` (for a trigger's ``on_kill``); the default runs the sync call in a thread."""
        await asyncio.to_thread(self.cancel, job_id, reason)


def _import_backend(name: str) -> type[ComputeBackend]:
    path = BACKENDS.get(name, name)
    if "." not in path:
        raise BackendConfigError(f"unknown compute backend {name!r}: use one of {sorted(BACKENDS)} or the full "
                                 "classpath of a ComputeBackend subclass (e.g. 'mypkg.backends.MyBackend')")
    module, _, cls_name = path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), cls_name)
    except ModuleNotFoundError as exc:
        if name in BACKENDS and exc.name in (module, module.rsplit(".", 1)[0]):
            raise BackendConfigError(f"the {name!r} compute backend is not installed ({path} is missing); "
                                     "install a sightlines release that ships it, or run this client on "
                                     "backend='local' (`sightlines clients add CLIENT --backend local`)") from exc
        raise BackendConfigError(f"cannot import compute backend {path!r}: {exc}") from exc
    except AttributeError:
        raise BackendConfigError(f"module {module!r} has no compute backend class {cls_name!r}") from None
    if not (isinstance(cls, type) and issubclass(cls, ComputeBackend)):
        raise BackendConfigError(f"{path!r} is not a ComputeBackend subclass")
    return cls


def get_backend(name: str, *, conn_id: str | None = None, options: Mapping[str, Any] | None = None) -> ComputeBackend:
    """Build the backend called ``name`` (``local``, ``mesos`` or a ``module.Class`` path).

    Parameters
    ----------
    name : str
        Backend name or classpath.
    conn_id : str, optional
        The backend's Airflow connection.
    options : mapping, optional
        Backend options (JSON-friendly).

    Raises
    ------
    BackendError
        The name is unknown or the backend cannot be imported; the message says what to do.

    Examples
    --------
    >>> get_backend("local").name
    'local'
    >>> get_backend("gpu")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    sightlines_airflow.backends.base.BackendConfigError: unknown compute backend 'gpu': use one of ['local', 'mesos'] or ...
    """
    cls = _import_backend(name)
    return cls(conn_id=conn_id, **dict(options or {}))
