"""The ``local`` backend: a step runs as ``python -m sightlines step ...``, a subprocess of the Airflow worker.

The process gets its own session (process group), so cancelling it stops the
step and every worker process it started; its stdout and stderr are read by
two threads as they are written, and :meth:`LocalBackend.wait` logs each line
into the Airflow task log as it arrives. Storage credentials reach the step
through its environment only (``StepSpec.secret_env``), never its command line.

The jobs live in this backend object, i.e. in the worker process that runs the
task: a local job cannot outlive its worker, so this backend does not defer
(``supports_deferral = False``); the operator waits for it in the worker.

Examples
--------
>>> import sys
>>> backend = LocalBackend(command=[sys.executable, "-c", "print('hello'); raise SystemExit(99)"])
>>> job = backend.submit(StepSpec(step="extract", client="acme", run_date="2026-11-24"))
>>> backend.wait(job).value
'skipped'
>>> backend.result(job).exit_code
99
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

from .base import (
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

__all__ = ["LocalBackend", "step_environment"]

log = logging.getLogger(__name__)

#: stderr lines kept for failure messages
TAIL_LINES = 20
_EOF = object()


#: the worker's own AWS credential variables: dropped when the step gets a connection's credentials
_AWS_CREDENTIAL_VARS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN",
                        "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE",
                        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI")


def step_environment(inherited: Mapping[str, str], *, own_credentials: bool = False) -> dict[str, str]:
    """The part of the worker's environment a step process inherits: everything but Airflow's own settings.

    ``AIRFLOW_*`` variables (connections, the metadata database, Fernet and JWT
    keys) are not the step's business; the step gets its storage credentials
    from ``StepSpec.secret_env`` instead. With ``own_credentials`` (the step
    gets a connection's credentials) the worker's AWS credential variables are
    dropped too, so a stale worker token or profile cannot mix with the
    connection's keys.

    Examples
    --------
    >>> sorted(step_environment({"PATH": "/bin", "AIRFLOW__CORE__FERNET_KEY": "k", "AIRFLOW_CONN_S3": "aws://"}))
    ['PATH']
    >>> sorted(step_environment({"PATH": "/bin", "AWS_SESSION_TOKEN": "old"}, own_credentials=True))
    ['PATH']
    """
    drop = _AWS_CREDENTIAL_VARS if own_credentials else ()
    return {k: v for k, v in inherited.items() if not k.startswith(("AIRFLOW_", "_AIRFLOW_")) and k not in drop}


@dataclass
class _LocalJob:
    job_id: str
    spec: StepSpec
    proc: subprocess.Popen[str]
    lines: queue.Queue[Any] = field(default_factory=queue.Queue)
    stdout: list[str] = field(default_factory=list)
    stderr_tail: collections.deque[str] = field(default_factory=lambda: collections.deque(maxlen=TAIL_LINES))
    readers: list[threading.Thread] = field(default_factory=list)
    cancel_reason: str | None = None
    started: float = field(default_factory=time.monotonic)


class LocalBackend(ComputeBackend):
    """Run steps as subprocesses of this process (the Airflow worker).

    Parameters
    ----------
    conn_id : str, optional
        Unused (the local backend needs no connection); accepted for a uniform interface.
    python : str, optional
        Interpreter that runs ``-m sightlines`` (default: this one).
    command : sequence of str, optional
        Replace ``[python, "-m", "sightlines", *spec.argv()]`` by this command
        (for tests and for wrapping steps, e.g. in ``nice``); the step's
        arguments are then not appended.
    kill_grace : float, default=10
        Seconds between SIGTERM and SIGKILL when a job is cancelled.
    """

    name = "local"
    supports_deferral = False
    streams_output = True

    def __init__(self, conn_id: str | None = None, *, python: str | None = None,
                 command: Sequence[str] | None = None, kill_grace: float = 10.0, **options: Any) -> None:
        super().__init__(conn_id, python=python, command=list(command) if command else None,
                         kill_grace=kill_grace, **options)
        self.python = python or sys.executable
        self.command = list(command) if command else None
        self.kill_grace = float(kill_grace)
        self._jobs: dict[str, _LocalJob] = {}

    # -- the interface ---------------------------------------------------------
    def submit(self, spec: StepSpec) -> str:
        """Start the step process; returns ``local-{pid}-{random}``."""
        argv = self.command or [self.python, "-m", "sightlines", *spec.argv()]
        env = step_environment(os.environ, own_credentials=bool(spec.secret_env))
        env.update(spec.process_env())
        try:
            proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                text=True, encoding="utf-8", errors="replace", bufsize=1, start_new_session=True,
                close_fds=True)
        except OSError as exc:
            raise BackendError(f"could not start {argv[0]!r} for {spec.step_id} of {spec.client} {spec.run_date}: "
                               f"{exc}; check that the sightlines package is installed on this worker") from exc
        job_id = f"local-{proc.pid}-{uuid.uuid4().hex[:8]}"
        job = _LocalJob(job_id=job_id, spec=spec, proc=proc)
        for stream, name in ((proc.stdout, "stdout"), (proc.stderr, "stderr")):
            t = threading.Thread(target=self._read, args=(job, stream, name), name=f"{job_id}-{name}", daemon=True)
            t.start()
            job.readers.append(t)
        self._jobs[job_id] = job
        log.info("job %s: started %s for %s %s (pid %d, %s cpu(s))", job_id, spec.step_id, spec.client,
                 spec.run_date, proc.pid, spec.cpus)
        return job_id

    def status(self, job_id: str) -> JobState:
        """RUNNING while the process lives, then the state of its exit code (CANCELLED if cancelled)."""
        job = self._job(job_id)
        code = job.proc.poll()
        if code is None:
            return JobState.RUNNING
        if job.cancel_reason is not None:
            return JobState.CANCELLED
        return state_for_exit_code(code)

    def cancel(self, job_id: str, reason: str) -> None:
        """SIGTERM the job's process group, then SIGKILL after ``kill_grace`` seconds if it still runs."""
        job = self._job(job_id)
        if job.proc.poll() is not None:
            return
        job.cancel_reason = reason
        log.warning("job %s: cancelling %s of %s %s (pid %d): %s", job_id, job.spec.step_id, job.spec.client,
                    job.spec.run_date, job.proc.pid, reason)
        self._signal_group(job, signal.SIGTERM)
        try:
            job.proc.wait(timeout=self.kill_grace)
        except subprocess.TimeoutExpired:
            log.warning("job %s: still running %.0f s after SIGTERM; sending SIGKILL", job_id, self.kill_grace)
            self._signal_group(job, signal.SIGKILL)
            job.proc.wait()
        # children that ignored SIGTERM while the leader exited
        self._signal_group(job, signal.SIGKILL)

    def result(self, job_id: str) -> JobResult:
        """The finished job's state, exit code, reason, parsed ``--json`` result and stderr tail."""
        job = self._job(job_id)
        code = job.proc.poll()
        if code is None:
            raise BackendError(f"job {job_id} is still running; wait for it before asking for its result")
        for t in job.readers:
            t.join(timeout=5)
        state = JobState.CANCELLED if job.cancel_reason is not None else state_for_exit_code(code)
        tail = tuple(job.stderr_tail)
        reason = None
        if state == JobState.CANCELLED:
            reason = f"cancelled: {job.cancel_reason}"
        elif state != JobState.SUCCEEDED:
            reason = failure_reason(tail, code)
        parsed = parse_step_output("".join(job.stdout)) if state == JobState.SUCCEEDED else None
        return JobResult(job_id=job_id, state=state, exit_code=code, reason=reason, result=parsed, log_tail=tail)

    def wait(self, job_id: str, *, poll_interval: float = 0.5, timeout: float | None = None,
             log: logging.Logger | Any | None = None) -> JobState:
        """Block until the process exits, logging each line of its output as it arrives.

        Lines go to ``log`` (the operator passes its task logger) as
        ``[step_id] line``; stdout lines (the JSON result) are logged at DEBUG.
        An exception while waiting (the task's ``execution_timeout``, a
        SIGTERM turned into an exception) cancels the job before propagating,
        so no step outlives its task.
        """
        job = self._job(job_id)
        logger = log or globals()["log"]
        deadline = None if timeout is None else time.monotonic() + timeout
        tag = f"[{job.spec.step_id}]"
        open_streams = len(job.readers)
        try:
            while open_streams:
                try:
                    item = job.lines.get(timeout=poll_interval)
                except queue.Empty:
                    if deadline is not None and time.monotonic() > deadline:
                        raise TimeoutError(f"job {job_id} did not finish within {timeout:.0f} s") from None
                    continue
                if item is _EOF:
                    open_streams -= 1
                    continue
                name, line = item
                if name == "stderr":
                    logger.info("%s %s", tag, line)
                else:
                    logger.debug("%s (stdout) %s", tag, line)
            job.proc.wait()
        except BaseException as exc:
            with contextlib.suppress(Exception):
                self.cancel(job_id, f"the waiting task was interrupted ({type(exc).__name__}: {exc})")
            raise
        state = self.status(job_id)
        logger.info("job %s: %s %s %s finished: %s (exit code %s) in %.1f s", job_id, job.spec.step_id,
                    job.spec.client, job.spec.run_date, state.value, job.proc.returncode,
                    time.monotonic() - job.started)
        return state

    # -- helpers ------------------------------------------------------------------
    def _job(self, job_id: str) -> _LocalJob:
        try:
            return self._jobs[job_id]
        except KeyError:
            raise JobNotFoundError(
                f"the local backend of this process has no job {job_id!r}: local jobs live in the worker "
                "that started them (they cannot be polled from a trigger or another worker)") from None

    @staticmethod
    def _read(job: _LocalJob, stream: IO[str] | None, name: str) -> None:
        if stream is None:  # pragma: no cover - pipes are always requested
            job.lines.put(_EOF)
            return
        try:
            for raw in stream:
                line = raw.rstrip("\n")
                if name == "stdout":
                    job.stdout.append(raw)
                else:
                    job.stderr_tail.append(line)
                job.lines.put((name, line))
        finally:
            stream.close()
            job.lines.put(_EOF)

    @staticmethod
    def _signal_group(job: _LocalJob, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(job.proc.pid, sig)
