"""The local backend: real ``sightlines step`` processes, exit-code mapping, streaming, cancelling, environment."""

from __future__ import annotations

import logging
import os
import sys
import threading
import time

import pytest
from sightlines_airflow.backends.base import (
    BackendError,
    JobNotFoundError,
    JobState,
    StepSpec,
    failure_reason,
    get_backend,
    parse_step_output,
    state_for_exit_code,
)
from sightlines_airflow.backends.local import LocalBackend, step_environment

from ..conftest import D1, D3


def spec(step: str = "extract", *, client: str = "zeta", day=D1, sightline: str | None = None, root=None,
         **kw) -> StepSpec:
    return StepSpec(step=step, client=client, run_date=day.isoformat(), sightline=sightline, root=root, **kw)


class Lines(logging.Handler):
    """Collects (time, message) of every record logged to it."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[tuple[float, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append((time.monotonic(), record.getMessage()))


@pytest.fixture
def task_log() -> tuple[logging.Logger, Lines]:
    logger = logging.getLogger(f"test.local.{time.monotonic_ns()}")
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    handler = Lines()
    logger.addHandler(handler)
    return logger, handler


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


class TestExitCodes:
    """Exit codes of the real step command map to job states (0 ok, 99 skipped, else failed)."""

    def test_success_returns_the_step_result(self, ran_client, task_log):
        backend = LocalBackend()
        job = backend.submit(spec("extract", root=ran_client))
        assert backend.wait(job, log=task_log[0]) == JobState.SUCCEEDED
        res = backend.result(job)
        assert (res.state, res.exit_code, res.reason) == (JobState.SUCCEEDED, 0, None)
        assert res.result["step"] == "extract" and res.result["client"] == "zeta" and res.result["n_records"] == 400
        assert res.to_dict()["state"] == "succeeded"

    def test_not_enough_history_is_skipped_with_the_reason(self, ran_client):
        backend = LocalBackend()
        job = backend.submit(spec("train", sightline="purchase_730", root=ran_client))
        assert backend.wait(job) == JobState.SKIPPED
        res = backend.result(job)
        assert res.exit_code == 99
        assert res.reason.startswith("purchase_730 is unavailable for zeta: not enough history for a 730-day horizon")

    def test_failure_carries_the_steps_message(self, ran_client):
        backend = LocalBackend()
        job = backend.submit(spec("score", day=D3, root=ran_client))
        assert backend.wait(job) == JobState.FAILED
        res = backend.result(job)
        assert res.exit_code == 1
        assert res.reason == "client zeta: no features for 2026-11-22; run `sightlines step extract` first"
        assert res.log_tail[-1].startswith("sightlines: client zeta: no features")

    def test_config_error_exits_2(self, ran_client):
        backend = LocalBackend()
        job = backend.submit(spec("train", sightline="nope", root=ran_client))
        assert backend.wait(job) == JobState.FAILED
        res = backend.result(job)
        assert res.exit_code == 2 and res.reason.startswith("unknown sightline 'nope'")

    @pytest.mark.parametrize(("code", "state"), [(0, JobState.SUCCEEDED), (99, JobState.SKIPPED), (1, JobState.FAILED),
                                                 (2, JobState.FAILED), (-9, JobState.FAILED),
                                                 (None, JobState.FAILED)])
    def test_state_for_exit_code(self, code, state):
        assert state_for_exit_code(code) == state


class TestStreaming:
    def test_lines_reach_the_log_while_the_step_runs(self, task_log):
        logger, lines = task_log
        script = ("import sys, time\n"
                  "for i in range(3):\n"
                  "    print(f'line {i}', file=sys.stderr, flush=True); time.sleep(0.4)\n"
                  "print('{\"step\": \"extract\"}')\n")
        backend = LocalBackend(command=[sys.executable, "-c", script])
        job = backend.submit(spec())
        started = time.monotonic()
        assert backend.wait(job, log=logger) == JobState.SUCCEEDED
        ended = time.monotonic()
        stderr = [(t, m) for t, m in lines.records if m.startswith("[extract] line")]
        assert [m for _, m in stderr] == ["[extract] line 0", "[extract] line 1", "[extract] line 2"]
        # the first line was logged long before the process ended: streamed, not collected at the end
        assert stderr[0][0] - started < ended - started - 0.6
        assert any(m == '[extract] (stdout) {"step": "extract"}' for _, m in lines.records)
        assert backend.result(job).result == {"step": "extract"}

    def test_real_step_log_lines_are_streamed(self, ran_client, task_log):
        logger, lines = task_log
        backend = LocalBackend()
        job = backend.submit(spec("train", sightline="purchase_7", root=ran_client))
        backend.wait(job, log=logger)
        messages = [m for _, m in lines.records]
        assert any(m.startswith("[train-purchase_7]") and "sightlines.pipeline._train" in m for m in messages)
        assert messages[-1].startswith(f"job {job}: train-purchase_7 zeta 2026-11-20 finished: succeeded")


class TestCancel:
    def test_cancel_stops_the_whole_process_group(self, tmp_path):
        child_pid = tmp_path / "child.pid"
        written = tmp_path / "child.pid.tmp"  # renamed when complete: never read half-written
        script = ("import os, subprocess, sys, time\n"
                  f"p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
                  f"open({str(written)!r}, 'w').write(str(p.pid))\n"
                  f"os.replace({str(written)!r}, {str(child_pid)!r})\n"
                  "time.sleep(60)\n")
        backend = LocalBackend(command=[sys.executable, "-c", script], kill_grace=5)
        job = backend.submit(spec())
        deadline = time.monotonic() + 20
        while not child_pid.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        grandchild = int(child_pid.read_text())
        assert backend.status(job) == JobState.RUNNING and alive(grandchild)
        backend.cancel(job, "the Airflow task was killed")
        assert backend.status(job) == JobState.CANCELLED
        deadline = time.monotonic() + 5
        while alive(grandchild) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not alive(grandchild)
        res = backend.result(job)
        assert res.state == JobState.CANCELLED and res.reason == "cancelled: the Airflow task was killed"

    def test_a_step_ignoring_sigterm_is_killed_after_the_grace_period(self):
        script = ("import signal, sys, time\n"
                  "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
                  "print('ready', file=sys.stderr, flush=True)\n"
                  "time.sleep(60)\n")
        backend = LocalBackend(command=[sys.executable, "-c", script], kill_grace=0.5)
        job = backend.submit(spec())
        deadline = time.monotonic() + 30  # SIGTERM ignored from here on (a fixed sleep raced a slow start)
        while "ready" not in backend._jobs[job].stderr_tail and time.monotonic() < deadline:
            time.sleep(0.02)
        assert "ready" in backend._jobs[job].stderr_tail
        t0 = time.monotonic()
        backend.cancel(job, "test")
        assert time.monotonic() - t0 < 5
        assert backend.result(job).exit_code == -9

    def test_an_interrupted_wait_cancels_the_job(self):
        backend = LocalBackend(command=[sys.executable, "-c", "import time; time.sleep(60)"], kill_grace=2)
        job = backend.submit(spec())
        with pytest.raises(TimeoutError, match="did not finish within 1 s"):
            backend.wait(job, timeout=1, poll_interval=0.1)
        assert backend.status(job) == JobState.CANCELLED
        assert "interrupted (TimeoutError" in backend.result(job).reason

    def test_cancelling_a_finished_job_does_nothing(self):
        backend = LocalBackend(command=[sys.executable, "-c", "pass"])
        job = backend.submit(spec())
        backend.wait(job)
        backend.cancel(job, "too late")
        assert backend.status(job) == JobState.SUCCEEDED


class TestEnvironment:
    def test_cpus_root_and_secrets_go_through_the_environment_only(self, tmp_path):
        out = tmp_path / "env.txt"
        script = ("import os, sys\n"
                  f"open({str(out)!r}, 'w').write('|'.join([os.environ['SIGHTLINES_CPUS'], "
                  "os.environ['SIGHTLINES_ROOT'], os.environ['AWS_SECRET_ACCESS_KEY'], "
                  "str(sorted(k for k in os.environ if k.startswith('AIRFLOW'))), ' '.join(sys.argv)]))\n")
        backend = LocalBackend(command=[sys.executable, "-c", script, "--marker"])
        os.environ["AIRFLOW__CORE__FERNET_KEY_FOR_TEST"] = "never-in-a-step"
        try:
            job = backend.submit(spec(root="/data/root", cpus=3, secret_env={"AWS_SECRET_ACCESS_KEY": "s3cr3t"}))
            backend.wait(job)
        finally:
            del os.environ["AIRFLOW__CORE__FERNET_KEY_FOR_TEST"]
        cpus, root, secret, airflow_vars, argv = out.read_text().split("|")
        assert (cpus, root, secret, airflow_vars) == ("3", "/data/root", "s3cr3t", "[]")
        assert "s3cr3t" not in argv

    def test_the_step_command_has_no_secret(self):
        s = spec("train", sightline="rev_30", secret_env={"AWS_SECRET_ACCESS_KEY": "s3cr3t"})
        assert s.argv() == ["step", "train", "--client", "zeta", "--date", "2026-11-20", "--sightline", "rev_30",
                            "--json"]
        assert "s3cr3t" not in repr(s) and "s3cr3t" not in str(s.to_public_dict())
        assert s.to_public_dict()["secret_env_keys"] == ["AWS_SECRET_ACCESS_KEY"]

    def test_step_environment_drops_airflow_settings(self):
        assert step_environment({"PATH": "/bin", "AIRFLOW_HOME": "/a", "_AIRFLOW_PARSING_CONTEXT_DAG_ID": "x",
                                 "AIRFLOW_CONN_AWS": "aws://"}) == {"PATH": "/bin"}


class TestHelpers:
    def test_unknown_job(self):
        with pytest.raises(JobNotFoundError, match="local jobs live in the worker that started them"):
            LocalBackend().status("local-1-abc")

    def test_result_of_a_running_job_is_refused(self):
        backend = LocalBackend(command=[sys.executable, "-c", "import time; time.sleep(30)"], kill_grace=1)
        job = backend.submit(spec())
        try:
            with pytest.raises(BackendError, match="is still running; wait for it"):
                backend.result(job)
        finally:
            backend.cancel(job, "test over")

    def test_a_missing_interpreter_says_what_to_check(self):
        with pytest.raises(BackendError, match="check that the sightlines package is installed on this worker"):
            LocalBackend(python="/nonexistent/python").submit(spec())

    def test_failure_reason_without_a_message_uses_the_last_line(self):
        assert failure_reason(["Traceback ...", "MemoryError", ""], 1) == "exit code 1: MemoryError"
        assert failure_reason([], -9) == "killed by signal 9 (no output on stderr)"

    def test_parse_step_output_skips_noise(self):
        assert parse_step_output('warning\n{\n  "a": 1\n}\n') == {"a": 1}
        assert parse_step_output("no json here") is None

    def test_get_backend_names_and_classpaths(self):
        assert isinstance(get_backend("local"), LocalBackend)
        assert get_backend("tests.airflow.fake_backend.PidFileBackend", options={"state_dir": "/tmp/x"}).name == \
            "pidfile"
        with pytest.raises(BackendError, match="unknown compute backend 'gpu'"):
            get_backend("gpu")
        with pytest.raises(BackendError, match="is not a ComputeBackend subclass"):
            get_backend("logging.Logger")


def test_wait_from_another_thread_sees_the_job_finish():
    """The backend is used from the task's thread and on_kill may come from a signal handler: no deadlock."""
    backend = LocalBackend(command=[sys.executable, "-c", "import time; time.sleep(0.5)"])
    job = backend.submit(spec())
    states: list[JobState] = []
    t = threading.Thread(target=lambda: states.append(backend.wait(job)))
    t.start()
    t.join(10)
    assert states == [JobState.SUCCEEDED]
