"""SightlinesStepOperator on the mesos backend, against the fake master: deferral, waiting in the worker, and
the faults of the issue (a failing step, a task lost mid-run, an Airflow retry while the first try's task still
runs, a kill from Airflow, offers too small, a timeout). In every case each step completes exactly once,
checked on the fake's launch records and the fake step's marker file."""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
import time
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowSkipException, TaskDeferred
from sightlines_airflow.backends.base import BackendError
from sightlines_airflow.operators.step import SightlinesStepOperator
from sightlines_airflow.triggers.mesos import MesosTaskTrigger

from tests.mesos.fake_master import TERMINAL

from ..conftest import TI
from ..mesos_cluster import (
    completions,
    fake_step_options,
    release_once_relaunched,
    set_connection,
    wait_state,
)

pytestmark = pytest.mark.timeout(90)


def operator(marker, *, step: str = "extract", sleep: float = 0.0, exit_code: int = 0, gate=None,
             **kw) -> SightlinesStepOperator:
    kw.setdefault("task_id", step)
    kw.setdefault("deferrable", True)
    kw.setdefault("execution_timeout", dt.timedelta(minutes=10))
    kw.setdefault("memory_mb", 512)
    return SightlinesStepOperator(step=step, client="zeta", run_date="2026-11-20", backend="mesos", root="/data/zeta",
                                  poll_interval=0.2,
                                  backend_options=fake_step_options(marker, sleep=sleep, exit_code=exit_code,
                                                                    gate=gate), **kw)


def deferred(op: SightlinesStepOperator, context: dict[str, Any]) -> TaskDeferred:
    with pytest.raises(TaskDeferred) as info:
        op.execute(context)
    return info.value


async def _first(trigger: MesosTaskTrigger) -> dict:
    async for event in trigger.run():
        return event.payload
    raise AssertionError("no event")


def run_trigger(trigger: MesosTaskTrigger, timeout: float = 40) -> dict:
    return asyncio.run(asyncio.wait_for(_first(trigger), timeout))


def in_thread(fn) -> tuple[threading.Thread, list]:
    """Run ``fn`` in a thread (a worker); the list gets its return value or exception."""
    out: list = []

    def target() -> None:
        try:
            out.append(fn())
        except BaseException as exc:  # noqa: BLE001 - inspected by the test
            out.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    return thread, out


class TestDeferral:
    def test_execute_defers_to_the_mesos_trigger_and_execute_complete_finishes(self, master, mesos_conn, tmp_path,
                                                                               context):
        marker, gate = tmp_path / "marker", tmp_path / "gate"
        op = operator(marker, gate=gate)  # held running until it has deferred
        before = time.time()
        info = deferred(op, context)
        gate.touch()
        assert info.method_name == "execute_complete" and info.timeout == dt.timedelta(minutes=10)
        classpath, kwargs = info.trigger.serialize()
        assert classpath == "sightlines_airflow.triggers.mesos.MesosTaskTrigger"
        [launch] = master.launches
        assert kwargs["job_id"] == launch.task_id and kwargs["job_id"].startswith("sl.zeta.2026-11-20.extract.")
        assert kwargs["step"] == {"step": "extract", "client": "zeta", "run_date": "2026-11-20", "sightline": None,
                                  "root": "/data/zeta", "cpus": 1, "memory_mb": 512, "env": {},
                                  "key": "sightlines__zeta.extract.manual__test.-1", "secret_env_keys": []}
        assert (kwargs["conn_id"], kwargs["poll_interval"], kwargs["aws_conn_id"]) == ("sightlines_mesos", 0.2, None)
        assert kwargs["backend_options"] == op.backend_options
        # the trigger kills the task a little before Airflow's own timeout would fire
        assert before + 600 - 30 - 1 < kwargs["timeout_at"] < time.time() + 600 - 29
        event = run_trigger(info.trigger)
        # a new operator instance resumes, as a new worker would
        result = operator(marker).execute_complete(context, event)
        assert result["state"] == "succeeded" and result["job_id"] == launch.task_id
        assert result["result"] == {"step": "extract", "client": "zeta", "status": "ok", "n_records": 7}
        assert master.launch_count() == 1 and completions(marker) == [f"extract {launch.task_id}"]

    def test_not_deferrable_waits_in_the_worker(self, master, mesos_conn, tmp_path, context):
        marker = tmp_path / "marker"
        result = operator(marker, deferrable=False).execute(context)
        assert result["state"] == "succeeded" and result["result"]["n_records"] == 7
        assert master.launch_count() == 1 and len(completions(marker)) == 1

    def test_execute_complete_checks_the_event(self, mesos_conn, tmp_path, context):
        op = operator(tmp_path / "marker")
        with pytest.raises(BackendError, match="the trigger event is not about Mesos task sl.a"):
            op.execute_complete(context, {"status": "success", "job_id": "sl.a", "state": "succeeded"})
        with pytest.raises(AirflowException, match="waiting for Mesos task sl.a failed: boom"):
            op.execute_complete(context, {"status": "error", "job_id": "sl.a", "state": None,
                                          "message": "waiting for Mesos task sl.a failed: boom"})


class TestOutcomes:
    def test_a_failing_step_fails_the_task_with_its_reason_and_is_not_relaunched(self, master, mesos_conn, tmp_path,
                                                                                 context):
        marker, gate = tmp_path / "marker", tmp_path / "gate"
        op = operator(marker, step="score", exit_code=1, gate=gate)
        trigger = deferred(op, context).trigger
        gate.touch()
        event = run_trigger(trigger)
        with pytest.raises(AirflowException, match=r"score of zeta 2026-11-20 failed \(job sl\.zeta\.2026-11-20\."
                                                   r"score\.\w+, exit code 1\): exit code 1: RuntimeError: fake "
                                                   r"crash") as info:
            op.execute_complete(context, event)
        assert not isinstance(info.value, AirflowFailException)  # Airflow retries it
        assert master.launch_count() == 1 and len(completions(marker)) == 1

    def test_a_step_that_ends_before_the_operator_defers_is_finished_in_the_worker(self, master, mesos_conn,
                                                                                   tmp_path, context):
        marker = tmp_path / "marker"
        op = operator(marker, exit_code=1)
        submit = op.compute.submit

        def submit_and_let_it_end(spec):
            # the step ends between the launch and the operator's status check: waited for here, not raced (on
            # a busy machine the fake step's interpreter can take longer to start than the check takes to come)
            job_id = submit(spec)
            master.wait_for(lambda: master.task_state(job_id) in TERMINAL, timeout=30, what=f"{job_id} ended")
            return job_id

        op.compute.submit = submit_and_let_it_end
        with pytest.raises(AirflowException, match="exit code 1: RuntimeError: fake crash"):
            op.execute(context)  # over before the status check: no deferral
        assert master.framework_ids(completed=False) == []  # acknowledged and torn down all the same
        assert master.launch_count() == 1 and len(completions(marker)) == 1

    def test_exit_2_is_not_retried_and_exit_99_is_a_skip(self, master, mesos_conn, tmp_path, context):
        with pytest.raises(AirflowFailException, match="(?s)fake extract says 2.*retrying will not help"):
            operator(tmp_path / "m2", exit_code=2, deferrable=False).execute(context)
        with pytest.raises(AirflowSkipException, match="extract of zeta 2026-11-20 skipped: fake extract says 99"):
            operator(tmp_path / "m99", exit_code=99, deferrable=False,
                     task_id="other").execute({"ti": TI(task_id="other")})

    def test_a_task_lost_mid_run_is_relaunched_and_completes_once(self, master, mesos_conn, tmp_path, context):
        marker, gate = tmp_path / "marker", tmp_path / "gate"
        op = operator(marker, gate=gate, deferrable=False)  # held running until it has been lost and relaunched
        thread, out = in_thread(lambda: op.execute(context))
        master.wait_for(lambda: master.launch_count() == 1, timeout=20)
        job = master.launches[0].task_id
        wait_state(master, job)
        master.lose_task(job)
        release_once_relaunched(master, job, gate)
        thread.join(40)
        assert out and out[0]["state"] == "succeeded", out
        assert master.launch_count(job) == 2 and completions(marker) == [f"extract {job}"]


class TestRetriesAndKills:
    def test_a_retry_while_the_first_tries_task_runs_reattaches(self, master, mesos_conn, tmp_path, context):
        marker, gate = tmp_path / "marker", tmp_path / "gate"
        first = deferred(operator(marker, gate=gate), context)  # try 1 submitted, then its worker went away
        framework_id = master.launches[0].framework_id

        async def try_one_watches_try_two_takes_over() -> list[dict]:
            watching = asyncio.ensure_future(_first(first.trigger))  # try 1's trigger is attached
            await asyncio.to_thread(master.wait_for, lambda: master.resubscribed(framework_id), 20,
                                    "try 1's trigger re-attached")
            second = await asyncio.to_thread(deferred, operator(marker, gate=gate), context)  # the retry
            assert second.trigger.job_id == first.trigger.job_id
            gate.touch()  # the step ends only once both tries have seen it running
            return [await asyncio.wait_for(watching, 40), await asyncio.wait_for(_first(second.trigger), 40)]

        events = asyncio.run(try_one_watches_try_two_takes_over())
        assert [e["status"] for e in events] == ["success", "success"]
        result = operator(marker).execute_complete(context, events[1])
        assert result["state"] == "succeeded"
        job = first.trigger.job_id
        assert master.launch_count() == 1 and completions(marker) == [f"extract {job}"]

    def test_a_retry_in_the_worker_takes_over_and_the_old_try_stops_without_killing(self, master, mesos_conn,
                                                                                   tmp_path, context):
        marker, gate = tmp_path / "marker", tmp_path / "gate"
        old, old_out = in_thread(lambda: operator(marker, gate=gate, deferrable=False).execute(context))
        master.wait_for(lambda: master.launch_count() == 1, timeout=20)
        wait_state(master, master.launches[0].task_id)
        framework_id = master.launches[0].framework_id
        master.wait_for(lambda: master.resubscribed(framework_id), timeout=20, what="the old try waiting")
        new, new_out = in_thread(lambda: operator(marker, gate=gate, deferrable=False).execute(context))
        old.join(40)
        gate.touch()  # the step ends once the old try has given way
        new.join(40)
        assert isinstance(old_out[0], BackendError) and "another try took its framework over" in str(old_out[0])
        assert "without killing the task" in str(old_out[0])
        assert new_out[0]["state"] == "succeeded"
        assert master.calls_of("KILL") == []
        assert master.launch_count() == 1 and len(completions(marker)) == 1

    @pytest.mark.parametrize("delay", [0.0, 1.0], ids=["while-re-attaching", "while-waiting"])
    def test_on_kill_sends_kill(self, master, mesos_conn, tmp_path, context, delay):
        marker = tmp_path / "marker"
        op = operator(marker, sleep=30, deferrable=False)
        thread, out = in_thread(lambda: op.execute(context))
        master.wait_for(lambda: op._job_id is not None, timeout=20, what="the job submitted")
        wait_state(master, op._job_id)
        time.sleep(delay)
        op.on_kill()
        thread.join(30)
        assert isinstance(out[0], AirflowException)
        assert "cancelled: Airflow task" in str(out[0]) and "was killed" in str(out[0])
        assert master.calls_of("KILL") and master.task_state(master.launches[0].task_id) is None  # torn down
        assert completions(marker) == [] and master.launch_count() == 1

    def test_a_deferred_timeout_kills_the_task(self, master, mesos_conn, tmp_path, context):
        marker = tmp_path / "marker"
        op = operator(marker, sleep=30, execution_timeout=dt.timedelta(seconds=2))
        event = run_trigger(deferred(op, context).trigger)
        with pytest.raises(AirflowException, match="cancelled: the step was still running at .* the end of its "
                                                   "execution_timeout"):
            op.execute_complete(context, event)
        assert master.calls_of("KILL") and completions(marker) == []

    def test_offers_too_small_fail_with_a_clear_error(self, small_master, monkeypatch, tmp_path, context):
        set_connection(monkeypatch, small_master, offer_timeout=1)
        op = operator(tmp_path / "marker", cpus=4, memory_mb=2048)
        with pytest.raises(BackendError, match=r"(?s)extract of zeta 2026-11-20: No Mesos offer fitted task .* "
                                               r"cpus=4 mem=2048 .*largest offer seen was cpus=2 mem=1024"):
            op.execute(context)
        assert small_master.launch_count() == 0

    def test_a_retry_reuses_the_task_and_a_clear_runs_the_step_again(self, master, mesos_conn, tmp_path):
        marker = tmp_path / "marker"

        def ti(try_number: int, max_tries: int) -> dict:
            t = TI()
            t.try_number, t.max_tries = try_number, max_tries
            return {"ti": t}

        run = operator(marker, deferrable=False, retries=2).execute
        first = run(ti(1, 2))
        retry = run(ti(2, 2))  # same series of tries: reported, not run again
        cleared = run(ti(4, 5))  # cleared after try 3: max_tries = 3 + retries
        assert first["job_id"] == retry["job_id"] != cleared["job_id"]
        assert master.launch_count() == 2 and len(completions(marker)) == 2
