"""A real, asynchronous compute backend for operator and trigger tests: jobs are detached processes tracked by files.

Each job is a directory ``{state_dir}/{job_id}/`` holding ``spec.json``,
``pid``, ``stdout``, ``stderr``, and — once the process has exited — ``rc``
(written by the job's own shell wrapper) or ``cancelled`` (the reason). The
process runs in its own session and outlives the process that submitted it,
so a task can defer and the trigger (another object, possibly another
process) polls the same job by id; ``submit`` re-attaches to a running job
with the same ``spec.key``, as a cluster backend would after a worker restart.

It stands in for the Mesos backend (which runs remotely) only in tests; the
local backend cannot defer because its jobs live in the worker.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from sightlines_airflow.backends.base import (
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
from sightlines_airflow.backends.local import step_environment

CLASSPATH = "tests.airflow.fake_backend.PidFileBackend"


class PidFileBackend(ComputeBackend):
    """Jobs are detached process groups; their state lives in files under ``state_dir``.

    Parameters
    ----------
    conn_id : str, optional
        Unused.
    state_dir : str
        Where the job directories live (shared by everything that polls the jobs).
    command : list of str, optional
        Run this instead of ``python -m sightlines step ...`` (trigger tests use tiny scripts).
    """

    name = "pidfile"
    supports_deferral = True

    def __init__(self, conn_id: str | None = None, *, state_dir: str, command: list[str] | None = None,
                 **options: Any) -> None:
        super().__init__(conn_id, state_dir=state_dir, command=command, **options)
        self.state_dir = Path(state_dir)
        self.command = command

    # -- interface ----------------------------------------------------------------
    def submit(self, spec: StepSpec) -> str:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        if spec.key:
            for job_dir in sorted(self.state_dir.iterdir()):
                meta = self._spec(job_dir.name)
                if meta.get("key") == spec.key and not self.status(job_dir.name).is_terminal:
                    return job_dir.name  # re-attach instead of launching a second job
        job_id = f"pid-{uuid.uuid4().hex[:12]}"
        job_dir = self.state_dir / job_id
        job_dir.mkdir()
        (job_dir / "spec.json").write_text(json.dumps(spec.to_public_dict()))
        argv = self.command or [sys.executable, "-m", "sightlines", *spec.argv()]
        # the wrapper records the exit code itself, so the state survives the submitting process
        script = (f"{shlex.join(argv)} >{shlex.quote(str(job_dir / 'stdout'))} "
                  f"2>{shlex.quote(str(job_dir / 'stderr'))}; echo $? >{shlex.quote(str(job_dir / 'rc.tmp'))}; "
                  f"mv {shlex.quote(str(job_dir / 'rc.tmp'))} {shlex.quote(str(job_dir / 'rc'))}")
        env = step_environment(os.environ)
        env.update(spec.process_env())
        proc = subprocess.Popen(["/bin/sh", "-c", script], env=env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        (job_dir / "pid").write_text(str(proc.pid))
        return job_id

    def status(self, job_id: str) -> JobState:
        job_dir = self._dir(job_id)
        if (job_dir / "cancelled").exists():
            return JobState.CANCELLED
        rc = job_dir / "rc"
        if rc.exists():
            return state_for_exit_code(int(rc.read_text().strip()))
        pid = int((job_dir / "pid").read_text())
        if _alive(pid):
            return JobState.RUNNING
        if rc.exists():  # finished between the two checks
            return state_for_exit_code(int(rc.read_text().strip()))
        return JobState.FAILED  # vanished without an exit code

    def cancel(self, job_id: str, reason: str) -> None:
        job_dir = self._dir(job_id)
        if self.status(job_id).is_terminal:
            return
        (job_dir / "cancelled").write_text(reason)
        pid = int((job_dir / "pid").read_text())
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(pid, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + 2
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)

    def result(self, job_id: str) -> JobResult:
        job_dir = self._dir(job_id)
        state = self.status(job_id)
        if not state.is_terminal:
            raise BackendError(f"job {job_id} is still running")
        rc_file = job_dir / "rc"
        rc = int(rc_file.read_text().strip()) if rc_file.exists() else None
        stderr = (job_dir / "stderr").read_text() if (job_dir / "stderr").exists() else ""
        tail = tuple(stderr.splitlines()[-20:])
        if state == JobState.CANCELLED:
            reason = f"cancelled: {(job_dir / 'cancelled').read_text()}"
        elif state == JobState.SUCCEEDED:
            reason = None
        else:
            reason = failure_reason(tail, rc)
        stdout = (job_dir / "stdout").read_text() if (job_dir / "stdout").exists() else ""
        parsed = parse_step_output(stdout) if state == JobState.SUCCEEDED else None
        return JobResult(job_id=job_id, state=state, exit_code=rc, reason=reason, result=parsed, log_tail=tail)

    # -- helpers ------------------------------------------------------------------------
    def pid(self, job_id: str) -> int:
        """The process (group) id of a job."""
        return int((self._dir(job_id) / "pid").read_text())

    def _dir(self, job_id: str) -> Path:
        job_dir = self.state_dir / job_id
        if not (job_dir / "pid").exists():
            raise JobNotFoundError(f"no job {job_id!r} under {self.state_dir}")
        return job_dir

    def _spec(self, job_id: str) -> dict[str, Any]:
        try:
            return json.loads((self.state_dir / job_id / "spec.json").read_text())
        except (OSError, ValueError):
            return {}


class FinishedOnSubmitBackend(PidFileBackend):
    """A :class:`PidFileBackend` whose ``submit`` returns only once the job has finished (a backend that
    runs short jobs inline), to exercise the operator's 'already done: do not defer' path."""

    def submit(self, spec: StepSpec) -> str:
        job_id = super().submit(spec)
        deadline = time.monotonic() + 120
        while not self.status(job_id).is_terminal:
            if time.monotonic() > deadline:
                raise BackendError(f"job {job_id} did not finish within 120 s")
            time.sleep(0.05)
        return job_id


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie (exited, not yet reaped by its parent) counts as gone
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
