"""The mesos backend against the fake master: task description, exit-code mapping, sandbox results, faults, kill.

Every run goes through the real v1 HTTP protocol to the fake master, whose agents run the command as a
real subprocess; "exactly once" is checked on the fake's launch records and on the fake step's marker file.
"""

from __future__ import annotations

import logging
import threading

import pytest
from airflow.sdk.log import redact
from sightlines_airflow.backends.base import BackendError, JobNotFoundError, JobState, StepSpec, get_backend
from sightlines_airflow.backends.mesos import (
    MesosBackend,
    exit_code_of,
    job_result,
    job_state,
    stdout_tail,
    task_id_for,
)

from sightlines.mesos import MesosConfigError, TaskOutcome

from ..mesos_cluster import (
    FAKE_STEP_COMMAND,
    completions,
    fake_step_options,
    release_once_relaunched,
    set_connection,
    wait_state,
)

pytestmark = pytest.mark.timeout(60)

KEY = "sightlines__acme.extract.manual__2026-11-20.-1.t1"


def spec(step: str = "extract", *, sightline: str | None = None, key: str | None = KEY, **kw) -> StepSpec:
    kw.setdefault("root", "/data/root")
    return StepSpec(step=step, client="acme", run_date="2026-11-20", sightline=sightline, key=key, **kw)


def backend(marker=None, **options) -> MesosBackend:
    if marker is not None:
        options = fake_step_options(marker, **options)
    return MesosBackend(**options)


class TestPureMapping:
    def test_task_ids_are_deterministic_readable_and_safe(self):
        a = task_id_for(spec())
        assert a == task_id_for(spec()) and a.startswith("sl.acme.2026-11-20.extract.")
        assert task_id_for(spec(key=KEY.replace("t1", "t2"))) != a  # a new series of tries (a clear)
        assert task_id_for(spec("train", sightline="rev_30")).startswith("sl.acme.2026-11-20.train-rev_30.")
        odd = StepSpec(step="train", client="a" * 64, run_date="2026-11-20", sightline="x/y z" * 40, key="k")
        tid = task_id_for(odd)
        assert len(tid) <= 200 and "/" not in tid and " " not in tid

    @pytest.mark.parametrize(("state", "message", "expected"), [
        ("TASK_STAGING", "", JobState.PENDING), ("TASK_STARTING", "", JobState.PENDING),
        ("TASK_RUNNING", "", JobState.RUNNING), ("TASK_KILLING", "", JobState.RUNNING),
        ("TASK_LOST", "", JobState.RUNNING), ("TASK_GONE", "", JobState.RUNNING),
        ("TASK_DROPPED", "", JobState.RUNNING), ("TASK_UNREACHABLE", "", JobState.RUNNING),
        ("TASK_FINISHED", "Command exited with status 0", JobState.SUCCEEDED),
        ("TASK_FAILED", "Command exited with status 99", JobState.SKIPPED),
        ("TASK_FAILED", "Command exited with status 1", JobState.FAILED),
        ("TASK_FAILED", "Container exited with status 2", JobState.FAILED),
        ("TASK_FAILED", "Failed to launch", JobState.FAILED),
        ("TASK_KILLED", "Command terminated with signal SIGTERM", JobState.CANCELLED),
        ("TASK_ERROR", "Task uses more resources than available", JobState.FAILED),
    ])
    def test_job_state(self, state, message, expected):
        assert job_state(state, message) == expected

    def test_exit_codes_from_messages(self):
        assert exit_code_of("Command exited with status 3") == 3
        assert exit_code_of("Command terminated with signal SIGTERM") == -15
        assert exit_code_of("Command terminated with signal Killed") == -9
        assert exit_code_of("") is None

    def test_job_result_of_a_lost_task_the_waiter_gave_up_on(self):
        outcome = TaskOutcome(task_id="t", state="TASK_LOST", message="TASK_LOST after 2 relaunches", agent_id="S1")
        res = job_result(outcome)
        assert res.state == JobState.FAILED and res.exit_code is None
        assert res.reason == "Mesos task t ended TASK_LOST on S1: TASK_LOST after 2 relaunches"

    def test_stdout_tail_leaves_the_json_result_out(self):
        assert stdout_tail('one\ntwo\n{\n  "a": 1\n}\n') == ("one", "two")
        assert stdout_tail("no json\n") == ("no json",)
        assert stdout_tail(None) == ()


class TestTaskDescription:
    def test_command_resources_image_and_labels(self, mesos_conn):
        b = backend(docker_image="registry.example/sightlines:1.4", disk_mb={"extract": 2048, "*": 512},
                    labels={"team": "data"})
        task = b.task_spec(spec(cpus=2, memory_mb=3000))
        # a shell line in an image (the Docker containerizer appends value and arguments to `docker run IMAGE`)
        assert task.command == "python -m sightlines step extract --client acme --date 2026-11-20 --json"
        assert backend().task_spec(spec()).command == ("python", "-m", "sightlines", "step", "extract", "--client",
                                                       "acme", "--date", "2026-11-20", "--json")
        assert task.resources() == {"cpus": 2.0, "mem": 3000.0, "disk": 2048.0}
        assert b.task_spec(spec("score")).resources()["disk"] == 512.0
        assert task.docker_image == "registry.example/sightlines:1.4"
        assert task.labels == {"sightlines.client": "acme", "sightlines.date": "2026-11-20",
                               "sightlines.step": "extract", "sightlines.airflow": KEY, "team": "data"}
        assert dict(task.env) == {"SIGHTLINES_CPUS": "2", "PYTHONUNBUFFERED": "1", "SIGHTLINES_ROOT": "/data/root"}

    def test_the_default_keeps_storage_secrets_out_of_the_task(self, mesos_conn, caplog):
        caplog.set_level(logging.INFO, logger="sightlines_airflow")
        secrets = {"AWS_ACCESS_KEY_ID": "AKIAEXAMPLE", "AWS_SECRET_ACCESS_KEY": "very-secret-key",
                   "AWS_ENDPOINT_URL": "http://minio:9000", "AWS_DEFAULT_REGION": "eu-west-1"}
        task = backend().task_spec(spec(secret_env=secrets))
        assert "AWS_SECRET_ACCESS_KEY" not in task.env and "AWS_ACCESS_KEY_ID" not in task.env
        assert task.env["AWS_ENDPOINT_URL"] == "http://minio:9000" and task.env["AWS_DEFAULT_REGION"] == "eu-west-1"
        assert "credentials='agent': not passing AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY" in caplog.text
        assert "very-secret-key" not in caplog.text and "very-secret-key" not in " ".join(task.command)

    def test_task_env_passes_them_masked_and_warns(self, mesos_conn, caplog):
        caplog.set_level(logging.INFO, logger="sightlines_airflow")
        task = backend(credentials="task_env").task_spec(spec(secret_env={"AWS_SECRET_ACCESS_KEY": "s3cr3t-v4lue"}))
        assert task.env["AWS_SECRET_ACCESS_KEY"] == "s3cr3t-v4lue"
        assert "s3cr3t-v4lue" not in " ".join(task.command) and "s3cr3t-v4lue" not in repr(task)
        assert redact("key s3cr3t-v4lue") == "key ***"
        assert "which the master shows to anyone who can read its state" in caplog.text

    def test_options_are_checked_on_first_use(self, mesos_conn):
        b = MesosBackend(docker_imag="typo")  # building stores only
        with pytest.raises(BackendError, match=r"unknown option\(s\) \['docker_imag'\] of the mesos backend"):
            b.task_spec(spec())
        with pytest.raises(MesosConfigError, match=r"cannot set \['master'\]"):
            MesosBackend(config={"master": "http://elsewhere:5050"}).settings()
        with pytest.raises(MesosConfigError, match="credentials='env'; expected one of"):
            MesosBackend(credentials="env").settings()

    def test_get_backend_builds_it_lazily(self, monkeypatch):
        monkeypatch.delenv("AIRFLOW_CONN_SIGHTLINES_MESOS", raising=False)
        b = get_backend("mesos", options={"docker_image": "x"})
        assert isinstance(b, MesosBackend) and b.conn_id == "sightlines_mesos" and "hook" not in b.__dict__


class TestRuns:
    def test_success_reports_the_result_and_where_it_ran(self, master, mesos_conn, tmp_path, caplog):
        caplog.set_level(logging.INFO)
        marker = tmp_path / "marker"
        b = backend(marker, sleep=0.2)
        job = b.submit(spec(cpus=2, memory_mb=512))
        assert job == task_id_for(spec()) and b.status(job) in (JobState.RUNNING, JobState.SUCCEEDED)
        assert b.wait(job, poll_interval=0.1) == JobState.SUCCEEDED
        res = b.result(job)
        assert (res.state, res.exit_code, res.reason) == (JobState.SUCCEEDED, 0, None)
        assert res.result == {"step": "extract", "client": "acme", "status": "ok", "n_records": 7}
        assert res.log_tail == ("fake extract of acme starting",)
        [launch] = master.launches
        assert launch.resources == {"cpus": 2.0, "mem": 512.0}
        assert launch.command["arguments"][:2] == FAKE_STEP_COMMAND[:2]
        assert completions(marker) == [f"extract {job}"]
        # the log says where it ran and how to read the sandbox, and shows the tails
        assert f"Mesos task ran on {launch.hostname}" in caplog.text
        assert "/files/read?path=" in caplog.text and "%2Fstdout" in caplog.text
        assert "last lines of the step's stderr:\nfake extract of acme starting" in caplog.text
        assert "last lines of the step's stdout (besides its JSON result):\na chatty library line" in caplog.text
        assert master.framework_ids(completed=False) == []  # torn down

    @pytest.mark.parametrize(("code", "state", "reason"), [
        (99, JobState.SKIPPED, "fake extract says 99"),
        (2, JobState.FAILED, "fake extract says 2"),
        (1, JobState.FAILED, "exit code 1: RuntimeError: fake crash"),
    ])
    def test_exit_codes_map_like_the_local_backend(self, master, mesos_conn, tmp_path, code, state, reason):
        b = backend(tmp_path / "marker", exit_code=code)
        job = b.submit(spec())
        assert b.wait(job, poll_interval=0.1) == state
        res = b.result(job)
        assert (res.state, res.exit_code, res.reason, res.result) == (state, code, reason, None)
        assert master.launch_count() == 1  # a failed step is not relaunched by the backend

    def test_a_result_read_by_another_backend_object_comes_from_the_master(self, master, mesos_conn, tmp_path):
        b = backend(tmp_path / "marker", exit_code=99)
        job = b.submit(spec())
        b.wait(job, poll_interval=0.1)
        other = MesosBackend()
        assert other.status(job) == JobState.SKIPPED
        assert (other.result(job).state, other.result(job).exit_code) == (JobState.SKIPPED, 99)
        with pytest.raises(JobNotFoundError, match="knows no task 'sl.nope'"):
            other.status("sl.nope")

    def test_a_task_lost_mid_run_is_relaunched_and_completes_once(self, master, mesos_conn, tmp_path):
        marker, gate = tmp_path / "marker", tmp_path / "gate"
        b = backend(marker, gate=gate)  # held running until it has been lost and relaunched
        job = b.submit(spec())
        wait_state(master, job)
        master.lose_task(job)
        threading.Thread(target=release_once_relaunched, args=(master, job, gate), daemon=True).start()
        assert b.wait(job, poll_interval=0.1) == JobState.SUCCEEDED
        assert master.launch_count(job) == 2 and completions(marker) == [f"extract {job}"]

    def test_an_unreachable_task_is_waited_for_not_run_twice(self, master, mesos_conn, tmp_path):
        marker, gate = tmp_path / "marker", tmp_path / "gate"
        b = backend(marker, gate=gate)  # held running until the agent is unreachable
        job = b.submit(spec())
        host = master.launches[0].hostname
        master.make_agent_unreachable(host)
        assert b.status(job) == JobState.RUNNING  # unreachable: may still run
        gate.touch()  # it ends behind the partition; the backend learns of it once the agent is back
        threading.Timer(1.5, master.reconnect_agent, args=(host,)).start()
        assert b.wait(job, poll_interval=0.1) == JobState.SUCCEEDED
        assert master.launch_count() == 1 and completions(marker) == [f"extract {job}"]

    def test_a_retry_reattaches_to_the_running_task(self, master, mesos_conn, tmp_path):
        marker = tmp_path / "marker"
        first = backend(marker, sleep=1.0)
        job = first.submit(spec())
        second = backend(marker, sleep=1.0)  # a new worker process, same key
        assert second.submit(spec()) == job
        assert second.wait(job, poll_interval=0.1) == JobState.SUCCEEDED
        assert master.launch_count() == 1 and completions(marker) == [f"extract {job}"]
        # and a retry after it finished reports it without running it again
        third = backend(marker)
        assert third.submit(spec()) == job and third.result(job).state == JobState.SUCCEEDED
        assert master.launch_count() == 1 and len(completions(marker)) == 1

    def test_cancel_kills_the_task(self, master, mesos_conn, tmp_path):
        marker = tmp_path / "marker"
        b = backend(marker, sleep=30)
        job = b.submit(spec())
        b.cancel(job, "the Airflow task was killed")
        assert b.status(job) == JobState.CANCELLED
        res = b.result(job)
        assert res.state == JobState.CANCELLED and res.reason == "cancelled: the Airflow task was killed"
        assert master.calls_of("KILL") and completions(marker) == []
        b.cancel(job, "again")  # idempotent

    def test_an_interrupted_wait_kills_the_task(self, master, mesos_conn, tmp_path):
        b = backend(tmp_path / "marker", sleep=30)
        job = b.submit(spec())
        with pytest.raises(TimeoutError, match="did not finish within 1 s"):
            b.wait(job, poll_interval=0.1, timeout=1)
        assert b.status(job) == JobState.CANCELLED
        assert "interrupted (TimeoutError" in b.result(job).reason

    def test_offers_too_small_fail_with_what_was_asked_and_offered(self, small_master, monkeypatch, tmp_path):
        set_connection(monkeypatch, small_master, offer_timeout=1)
        with pytest.raises(BackendError) as info:
            backend(tmp_path / "marker").submit(spec(cpus=4, memory_mb=2048))
        message = str(info.value)
        assert "extract of acme 2026-11-20: No Mesos offer fitted task sl.acme.2026-11-20.extract." in message
        assert "cpus=4 mem=2048" in message and "largest offer seen was cpus=2 mem=1024" in message
        assert "registry fleet.airflow.settings" in message
        assert small_master.launch_count() == 0

    def test_waiting_for_a_job_this_backend_did_not_submit_says_what_to_do(self, mesos_conn):
        with pytest.raises(JobNotFoundError, match="submit the step .* before waiting"):
            MesosBackend().wait("sl.x")

    def test_a_missing_connection_is_named(self, monkeypatch):
        from airflow.sdk.exceptions import AirflowNotFoundException

        monkeypatch.delenv("AIRFLOW_CONN_SIGHTLINES_MESOS", raising=False)
        with pytest.raises(AirflowNotFoundException, match="sightlines_mesos"):
            MesosBackend().submit(spec())


def test_docstring_examples():
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module("sightlines_airflow.backends.mesos"))
    assert result.attempted > 0 and result.failed == 0
