"""SightlinesStepOperator: declared surface, outcome mapping with real steps, deferral with an asynchronous backend."""

from __future__ import annotations

import asyncio
import datetime as dt
import sys
import threading
import time

import pytest
from airflow.sdk import DAG
from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowSkipException, TaskDeferred
from sightlines_airflow.backends.base import JobState
from sightlines_airflow.operators.step import SightlinesStepOperator, publish_summary
from sightlines_airflow.triggers.job import SightlinesJobTrigger

from ..conftest import D3
from ..fake_backend import CLASSPATH

FINISHED_ON_SUBMIT = "tests.airflow.fake_backend.FinishedOnSubmitBackend"


def operator(**kw) -> SightlinesStepOperator:
    kw.setdefault("task_id", kw.get("step", "extract"))
    kw.setdefault("step", "extract")
    kw.setdefault("client", "zeta")
    kw.setdefault("run_date", "2026-11-20")
    return SightlinesStepOperator(**kw)


def run_trigger(trigger: SightlinesJobTrigger) -> dict:
    async def go() -> dict:
        async for event in trigger.run():
            return event.payload
        raise AssertionError("no event")

    return asyncio.run(asyncio.wait_for(go(), 120))


class TestSurface:
    def test_template_fields(self):
        assert SightlinesStepOperator.template_fields == ("client", "root", "run_date", "sightline")

    def test_templates_render_from_the_context(self):
        with DAG("t_render", schedule=None, start_date=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)):
            op = SightlinesStepOperator(task_id="train_x", step="train", client="{{ params.client }}",
                                        sightline="{{ params.s }}", root="/data/{{ ds_nodash }}",
                                        params={"client": "acme", "s": "rev_30"})
        op.render_template_fields({"ds": "2026-11-20", "ds_nodash": "20261120", "params": op.params})
        assert (op.client, op.run_date, op.sightline, op.root) == ("acme", "2026-11-20", "rev_30", "/data/20261120")

    def test_defaults(self):
        op = operator()
        assert (op.run_date, op.backend, op.cpus, op.memory_mb, op.deferrable, op.pool_slots) == \
            ("2026-11-20", "local", 1, 2048, False, 1)
        assert SightlinesStepOperator(task_id="x", step="extract", client="c").run_date == "{{ ds }}"

    def test_pool_slots_follow_cpus(self):
        assert operator(cpus=2).pool_slots == 2
        assert operator(cpus=1.5).pool_slots == 2
        assert operator(cpus=4, pool_slots=1).pool_slots == 1

    @pytest.mark.parametrize(("kw", "match"), [
        ({"step": "deploy"}, r"step is 'deploy'; expected one of \['extract', 'sample', 'train', 'score', 'publish'\]"),
        ({"step": "train"}, "sightline= is required for step='train' and only allowed there"),
        ({"step": "score", "sightline": "rev_30"}, "sightline= is required for step='train' and only allowed there"),
        ({"cpus": 0}, "cpus is 0; expected a positive number of cores"),
    ])
    def test_wiring_errors_are_caught_when_the_dag_is_built(self, kw, match):
        with pytest.raises(ValueError, match=match):
            operator(**kw)

    def test_building_opens_no_backend(self):
        op = operator(backend="no.such.Backend")
        assert "compute" not in op.__dict__


class TestLocalExecution:
    """execute() with the local backend runs the real step and maps its outcome."""

    def test_success_returns_the_job_and_step_result(self, ran_client, context):
        result = operator(root=ran_client).execute(context)
        assert result["state"] == "succeeded" and result["exit_code"] == 0
        assert result["result"]["step"] == "extract" and result["result"]["n_records"] == 400

    def test_publish_returns_a_small_summary(self, ran_client, context):
        summary = operator(step="publish", task_id="publish", root=ran_client).execute(context)
        assert {k: summary[k] for k in ("client", "date", "fresh", "stale_days", "source_date", "rows",
                                        "fallback_sightlines")} == \
            {"client": "zeta", "date": "2026-11-20", "fresh": True, "stale_days": 0, "source_date": "2026-11-20",
             "rows": 400, "fallback_sightlines": {}}
        assert summary["job_id"].startswith("local-")

    def test_exit_99_is_a_skip_with_the_reason(self, ran_client, context):
        op = operator(step="train", task_id="train_purchase_730", sightline="purchase_730", root=ran_client)
        with pytest.raises(AirflowSkipException, match="train-purchase_730 of zeta 2026-11-20 skipped: purchase_730 "
                                                       "is unavailable for zeta: not enough history"):
            op.execute(context)

    def test_a_failure_is_retried_and_says_why(self, ran_client, context):
        op = operator(step="score", task_id="score", root=ran_client, run_date=D3.isoformat())
        with pytest.raises(AirflowException, match="score of zeta 2026-11-22 failed .*exit code 1.*: client zeta: "
                                                   "no features for 2026-11-22") as info:
            op.execute(context)
        assert not isinstance(info.value, AirflowFailException)

    def test_a_config_error_is_not_retried(self, ran_client, context):
        op = operator(step="train", task_id="train_nope", sightline="nope", root=ran_client)
        with pytest.raises(AirflowFailException, match="(?s)unknown sightline 'nope'.*retrying will not help"):
            op.execute(context)

    def test_a_misconfigured_backend_is_not_retried(self, ran_client, context, monkeypatch):
        monkeypatch.setenv("AIRFLOW_CONN_SIGHTLINES_MESOS", '{"conn_type": "mesos", "host": "http://127.0.0.1:1"}')
        with pytest.raises(AirflowFailException, match="backend 'gpu' is misconfigured, not retrying: unknown "
                                                       "compute backend 'gpu'"):
            operator(root=ran_client, backend="gpu").execute(context)
        with pytest.raises(AirflowFailException, match=r"unknown option\(s\) \['docker_imag'\] of the mesos"):
            operator(root=ran_client, backend="mesos", backend_options={"docker_imag": "x"}).execute(context)

    def test_no_root_says_what_to_do(self, context, monkeypatch):
        monkeypatch.delenv("SIGHTLINES_ROOT", raising=False)
        with pytest.raises(AirflowFailException, match=r"no storage root; pass root= to the operator or set "
                                                       r"\$SIGHTLINES_ROOT"):
            operator().execute(context)

    def test_a_bad_date_says_what_to_do(self, context):
        with pytest.raises(AirflowFailException, match="run_date rendered to 'yesterday', not a date; use YYYY-MM-DD"):
            operator(run_date="yesterday", root="/tmp").execute(context)

    def test_deferrable_is_ignored_by_the_local_backend(self, ran_client, context):
        result = operator(root=ran_client, deferrable=True).execute(context)
        assert result["state"] == "succeeded"

    def test_on_kill_cancels_the_running_step(self, context):
        op = operator(backend_options={"command": [sys.executable, "-c", "import time; time.sleep(60)"],
                                       "kill_grace": 2}, root="/tmp")
        errors: list[BaseException] = []

        def run() -> None:
            try:
                op.execute(context)
            except BaseException as exc:  # noqa: BLE001 - inspected below
                errors.append(exc)

        t = threading.Thread(target=run)
        t.start()
        deadline = time.monotonic() + 20
        while op._job_id is None and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
        assert op.compute.status(op._job_id) == JobState.RUNNING
        op.on_kill()
        t.join(20)
        assert op.compute.status(op._job_id) == JobState.CANCELLED
        assert len(errors) == 1 and isinstance(errors[0], AirflowException)
        assert "cancelled: Airflow task" in str(errors[0]) and "was killed" in str(errors[0])

    def test_on_kill_before_submit_does_nothing(self):
        operator().on_kill()


class TestDeferral:
    """With a backend whose jobs outlive the worker, execute defers and execute_complete finishes."""

    def deferring(self, tmp_path, ran_client, **kw) -> SightlinesStepOperator:
        kw.setdefault("step", "extract")
        return operator(backend=CLASSPATH, backend_options={"state_dir": str(tmp_path / "jobs")}, deferrable=True,
                        poll_interval=0.2, root=ran_client, execution_timeout=dt.timedelta(minutes=10), **kw)

    def test_execute_defers_to_the_job_trigger(self, tmp_path, ran_client, context):
        op = self.deferring(tmp_path, ran_client)
        with pytest.raises(TaskDeferred) as info:
            op.execute(context)
        deferred = info.value
        assert deferred.method_name == "execute_complete"
        assert deferred.timeout == dt.timedelta(minutes=10)
        classpath, kwargs = deferred.trigger.serialize()
        assert classpath == "sightlines_airflow.triggers.job.SightlinesJobTrigger"
        assert kwargs == {"job_id": kwargs["job_id"], "backend": CLASSPATH, "conn_id": None, "poll_interval": 0.2,
                          "backend_options": {"state_dir": str(tmp_path / "jobs")}, "max_poll_errors": 10}
        # the job keeps running without the worker; the trigger sees it finish
        event = run_trigger(deferred.trigger)
        assert event["status"] == "success"
        # a new operator instance resumes (as a new worker would) and re-checks through the backend
        result = self.deferring(tmp_path, ran_client).execute_complete(context, event)
        assert result["state"] == "succeeded" and result["job_id"] == kwargs["job_id"]
        assert result["result"]["step"] == "extract" and result["result"]["n_records"] == 400

    def test_a_failed_remote_job_fails_the_task(self, tmp_path, ran_client, context):
        op = self.deferring(tmp_path, ran_client, step="score", task_id="score", run_date=D3.isoformat())
        with pytest.raises(TaskDeferred) as info:
            op.execute(context)
        event = run_trigger(info.value.trigger)
        assert event["status"] == "failure"
        with pytest.raises(AirflowException, match="no features for 2026-11-22"):
            op.execute_complete(context, event)

    def test_a_skipped_remote_job_skips_the_task(self, tmp_path, ran_client, context):
        op = self.deferring(tmp_path, ran_client, step="train", task_id="train_purchase_730",
                            sightline="purchase_730")
        with pytest.raises(TaskDeferred) as info:
            op.execute(context)
        event = run_trigger(info.value.trigger)
        with pytest.raises(AirflowSkipException, match="not enough history"):
            op.execute_complete(context, event)

    def test_a_job_done_before_deferring_returns_at_once(self, tmp_path, ran_client, context):
        op = operator(backend=FINISHED_ON_SUBMIT, backend_options={"state_dir": str(tmp_path / "jobs")},
                      deferrable=True, root=ran_client)
        result = op.execute(context)  # no TaskDeferred
        assert result["state"] == "succeeded"

    def test_a_retry_reattaches_to_the_running_job(self, tmp_path, context):
        sleep = [sys.executable, "-c", "import time; time.sleep(30)"]
        options = {"state_dir": str(tmp_path / "jobs"), "command": sleep}
        first = operator(backend=CLASSPATH, backend_options=options, deferrable=True, root="/tmp")
        with pytest.raises(TaskDeferred) as a:
            first.execute(context)
        second = operator(backend=CLASSPATH, backend_options=options, deferrable=True, root="/tmp")
        with pytest.raises(TaskDeferred) as b:
            second.execute(context)
        job = a.value.trigger.job_id
        assert b.value.trigger.job_id == job
        second.compute.cancel(job, "test over")

    @pytest.mark.parametrize(("event", "match"), [
        (None, "resumed without a trigger event; clear the task"),
        ({"status": "success"}, "the trigger event has no job id"),
        ({"status": "error", "job_id": "pid-x", "message": "could not read the state of job pid-x"},
         "could not read the state of job pid-x"),
    ])
    def test_execute_complete_validates_the_event(self, tmp_path, context, event, match):
        op = operator(backend=CLASSPATH, backend_options={"state_dir": str(tmp_path)}, deferrable=True)
        with pytest.raises(AirflowException, match=match):
            op.execute_complete(context, event)


def test_publish_summary_of_a_stale_republish():
    step = {"client": "acme", "date": "2026-11-22", "status": "fallback", "n_records": 400,
            "warnings": ["STALE: republished the predictions of 2026-11-21 (stale_days=1) because extract failed"],
            "details": {"stale_days": 1, "source_date": "2026-11-21", "republished_from": "2026-11-21",
                        "reason": "extract failed"}}
    assert publish_summary(step, job_id="j") == {
        "client": "acme", "date": "2026-11-22", "status": "fallback", "fresh": False, "stale_days": 1,
        "source_date": "2026-11-21", "republished_from": "2026-11-21", "reason": "extract failed",
        "fallback_sightlines": {}, "rows": 400, "warnings": step["warnings"], "job_id": "j"}


def test_publish_summary_names_the_older_models():
    step = {"client": "acme", "date": "2026-11-21", "status": "fallback", "n_records": 400,
            "warnings": ["pv_30 uses its model of 2026-11-20 (1 day(s) old)"],
            "details": {"stale_days": 0, "source_date": "2026-11-21", "fallback_sightlines": ["pv_30"]}}
    assert publish_summary(step)["fallback_sightlines"] == {"pv_30": "2026-11-20"}
