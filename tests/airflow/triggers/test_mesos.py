"""MesosTaskTrigger: exact serialisation, waiting (re-attached) against the fake master, faults, running twice,
on_kill, timeouts, and credentials read again for a relaunch."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time

import pytest
from airflow.triggers.base import TriggerEvent
from sightlines_airflow.backends.base import StepSpec
from sightlines_airflow.backends.mesos import MesosBackend
from sightlines_airflow.triggers.mesos import MesosTaskTrigger

from .. import mesos_cluster as cluster
from ..mesos_cluster import (
    FakeMaster,
    completions,
    fake_step_options,
    release_once_relaunched,
    wait_state,
)

# the fake cluster's fixtures, used by this module's tests
master = cluster.master
mesos_conn = cluster.mesos_conn

pytestmark = pytest.mark.timeout(60)

SPEC = StepSpec(step="score", client="acme", run_date="2026-11-20", root="/data/root", cpus=2, memory_mb=512,
                key="sightlines__acme.score.manual__2026-11-20.-1.t1")


def submitted(marker, **kw) -> tuple[MesosBackend, str, dict]:
    options = fake_step_options(marker, **kw)
    backend = MesosBackend(**options)
    return backend, backend.submit(SPEC), options


def trigger_for(job: str, options: dict, **kw) -> MesosTaskTrigger:
    return MesosTaskTrigger(job_id=job, step=SPEC.to_public_dict(), backend_options=options, poll_interval=0.2, **kw)


async def lose_once_attached(master: FakeMaster, job: str, gate) -> None:
    """Lose ``job`` once the trigger has re-attached to its framework, release it once relaunched."""
    await asyncio.to_thread(wait_state, master, job)
    framework_id = master.launches[0].framework_id
    await asyncio.to_thread(master.wait_for, lambda: master.resubscribed(framework_id), 20, "the trigger attached")
    await asyncio.to_thread(master.lose_task, job)
    await asyncio.to_thread(release_once_relaunched, master, job, gate)


async def first_event(trigger: MesosTaskTrigger) -> TriggerEvent:
    async for event in trigger.run():
        return event
    raise AssertionError("the trigger ended without an event")


def run_trigger(trigger: MesosTaskTrigger, timeout: float = 40) -> dict:
    return asyncio.run(asyncio.wait_for(first_event(trigger), timeout)).payload


class TestSerialization:
    def test_serialize(self):
        trigger = MesosTaskTrigger(job_id="sl.acme.2026-11-20.score.abc", step=SPEC.to_public_dict(),
                                   conn_id="mesos_prod", backend_options={"docker_image": "sightlines:1.4"},
                                   poll_interval=15, aws_conn_id=None, timeout_at=1_790_000_000)
        assert trigger.serialize() == (
            "sightlines_airflow.triggers.mesos.MesosTaskTrigger",
            {
                "job_id": "sl.acme.2026-11-20.score.abc",
                "step": {"step": "score", "client": "acme", "run_date": "2026-11-20", "sightline": None,
                         "root": "/data/root", "cpus": 2, "memory_mb": 512, "env": {},
                         "key": "sightlines__acme.score.manual__2026-11-20.-1.t1", "secret_env_keys": []},
                "conn_id": "mesos_prod",
                "backend_options": {"docker_image": "sightlines:1.4"},
                "poll_interval": 15.0,
                "aws_conn_id": None,
                "timeout_at": 1_790_000_000.0,
            },
        )

    def test_kwargs_saved_by_an_older_release_still_load(self):
        classpath, kwargs = MesosTaskTrigger(job_id="j", step={"step": "extract", "client": "a",
                                                               "run_date": "2026-11-20"}).serialize()
        assert kwargs == {"job_id": "j", "step": {"step": "extract", "client": "a", "run_date": "2026-11-20"},
                          "conn_id": None, "backend_options": {}, "poll_interval": 30.0, "aws_conn_id": None,
                          "timeout_at": None}
        assert MesosTaskTrigger(**kwargs).serialize() == (classpath, kwargs)

    def test_no_secret_travels_in_the_kwargs(self):
        spec = StepSpec(step="extract", client="a", run_date="2026-11-20",
                        secret_env={"AWS_SECRET_ACCESS_KEY": "s3cr3t"})
        _, kwargs = MesosTaskTrigger(job_id="j", step=spec.to_public_dict()).serialize()
        assert "s3cr3t" not in json.dumps(kwargs) and kwargs["step"]["secret_env_keys"] == ["AWS_SECRET_ACCESS_KEY"]

    def test_building_it_touches_no_connection(self, monkeypatch):
        monkeypatch.delenv("AIRFLOW_CONN_SIGHTLINES_MESOS", raising=False)
        trigger = MesosTaskTrigger(job_id="j", step=SPEC.to_public_dict())
        assert trigger.serialize()[1]["job_id"] == "j" and "compute" not in trigger.__dict__


class TestRun:
    def test_success_event_carries_the_result_and_where_it_ran(self, master, mesos_conn, tmp_path):
        marker = tmp_path / "marker"
        _, job, options = submitted(marker, sleep=0.3)
        event = run_trigger(trigger_for(job, options))
        [launch] = master.launches
        assert set(event) == {"status", "job_id", "state", "message", "exit_code", "reason", "result", "log_tail",
                              "stdout_tail", "mesos"}
        assert {k: event[k] for k in ("status", "job_id", "state", "message", "exit_code", "reason")} == {
            "status": "success", "job_id": job, "state": "succeeded", "exit_code": 0, "reason": None,
            "message": f"Mesos task {job} ended TASK_FINISHED on {launch.hostname}"}
        assert event["result"] == {"step": "score", "client": "acme", "status": "ok", "n_records": 7}
        assert event["log_tail"] == ["fake score of acme starting"]
        assert event["stdout_tail"] == ["a chatty library line"]
        mesos = event["mesos"]
        assert (mesos["task_id"], mesos["state"], mesos["agent_hostname"], mesos["launches"], mesos["reattached"]) == \
            (job, "TASK_FINISHED", launch.hostname, 0, True)
        assert "/files/read?path=" in mesos["sandbox"]["stdout_url"]
        assert json.loads(json.dumps(event)) == event  # stored as JSON by the triggerer
        assert master.framework_ids(completed=False) == [] and completions(marker) == [f"score {job}"]

    def test_failure_event_names_the_reason(self, master, mesos_conn, tmp_path):
        _, job, options = submitted(tmp_path / "marker", exit_code=1)
        event = run_trigger(trigger_for(job, options))
        assert (event["status"], event["state"], event["exit_code"], event["reason"], event["result"]) == \
            ("failure", "failed", 1, "exit code 1: RuntimeError: fake crash", None)
        assert master.launch_count() == 1

    def test_a_task_lost_while_deferred_is_relaunched_once_and_completes_once(self, master, mesos_conn, tmp_path):
        marker, gate = tmp_path / "marker", tmp_path / "gate"
        _, job, options = submitted(marker, gate=gate)  # held running until it has been lost and relaunched

        async def scenario() -> dict:
            waiting = asyncio.ensure_future(first_event(trigger_for(job, options)))
            await lose_once_attached(master, job, gate)
            return (await asyncio.wait_for(waiting, 40)).payload

        event = asyncio.run(scenario())
        assert event["status"] == "success" and event["mesos"]["launches"] == 1  # the relaunch, by the trigger
        assert "TASK_LOST" in event["mesos"]["history"]
        assert master.launch_count(job) == 2 and completions(marker) == [f"score {job}"]

    def test_running_twice_has_no_side_effect(self, master, mesos_conn, tmp_path):
        marker = tmp_path / "marker"
        _, job, options = submitted(marker, exit_code=3)
        first = run_trigger(trigger_for(job, options))
        second = run_trigger(trigger_for(job, options))  # a duplicate, after the first one reported and tore down
        assert first["state"] == second["state"] == "failed" and first["exit_code"] == second["exit_code"] == 3
        assert master.launch_count() == 1 and len(completions(marker)) == 1  # a failed task is not run again

    def test_two_instances_at_once_launch_nothing_more(self, master, mesos_conn, tmp_path):
        marker = tmp_path / "marker"
        _, job, options = submitted(marker, sleep=1.0)

        async def scenario() -> list[dict]:
            a = asyncio.ensure_future(first_event(trigger_for(job, options)))
            await asyncio.sleep(0.3)
            b = asyncio.ensure_future(first_event(trigger_for(job, options)))  # takes the framework over
            return [e.payload for e in await asyncio.wait_for(asyncio.gather(a, b), 40)]

        events = asyncio.run(scenario())
        assert [e["status"] for e in events] == ["success", "success"]
        assert master.launch_count() == 1 and completions(marker) == [f"score {job}"]

    def test_on_kill_kills_the_task_and_cleanup_does_not(self, master, mesos_conn, tmp_path):
        marker = tmp_path / "marker"
        _, job, options = submitted(marker, sleep=30)
        trigger = trigger_for(job, options)

        async def scenario() -> None:
            waiting = asyncio.ensure_future(first_event(trigger))
            await asyncio.sleep(0.5)
            waiting.cancel()  # what the triggerer does to a killed task's trigger ...
            await trigger.cleanup()
            assert master.task_state(job) == "TASK_RUNNING"  # cleanup (also on triggerer restarts) keeps it
            await trigger.on_kill()  # ... then on_kill

        asyncio.run(asyncio.wait_for(scenario(), 30))
        assert master.calls_of("KILL") and master.framework_ids(completed=False) == []
        assert MesosBackend(**options).status(job).value == "cancelled" and completions(marker) == []

    def test_the_execution_timeout_kills_the_task(self, master, mesos_conn, tmp_path):
        marker = tmp_path / "marker"
        _, job, options = submitted(marker, sleep=30)
        event = run_trigger(trigger_for(job, options, timeout_at=time.time() + 1.0))
        assert (event["status"], event["state"]) == ("failure", "cancelled")
        assert event["reason"].startswith("cancelled: the step was still running at ")
        assert event["reason"].endswith("the end of its execution_timeout")
        assert master.calls_of("KILL") and completions(marker) == []

    def test_a_broken_connection_ends_with_an_error_event(self, monkeypatch):
        monkeypatch.setenv("AIRFLOW_CONN_SIGHTLINES_MESOS", json.dumps({"conn_type": "mesos", "host": "m1",
                                                                        "extra": {"rol": "x"}}))
        event = run_trigger(trigger_for("sl.x", {}))
        assert event["status"] == "error" and event["state"] is None
        assert "unknown extra key(s) ['rol']" in event["message"]

    def test_task_env_credentials_are_read_again_for_a_relaunch(self, master, mesos_conn, tmp_path, monkeypatch):
        monkeypatch.setenv("AIRFLOW_CONN_SIGHTLINES_S3", json.dumps({
            "conn_type": "aws", "login": "AKIAEXAMPLE", "password": "secret-from-the-connection",
            "extra": {"region_name": "eu-west-1"}}))
        marker, gate = tmp_path / "marker", tmp_path / "gate"
        options = fake_step_options(marker, gate=gate, credentials="task_env")
        from sightlines_airflow.hooks.storage import SightlinesStorageHook

        secrets = SightlinesStorageHook("sightlines_s3").step_env()
        job = MesosBackend(**options).submit(dataclasses.replace(SPEC, secret_env=secrets))
        trigger = trigger_for(job, options, aws_conn_id="sightlines_s3")

        async def scenario() -> dict:
            waiting = asyncio.ensure_future(first_event(trigger))
            await lose_once_attached(master, job, gate)
            return (await asyncio.wait_for(waiting, 40)).payload

        assert asyncio.run(scenario())["status"] == "success"
        first, second = master.launches
        assert first.env["AWS_SECRET_ACCESS_KEY"] == second.env["AWS_SECRET_ACCESS_KEY"] == "secret-from-the-connection"
        assert "secret-from-the-connection" not in json.dumps(trigger.serialize())


def test_docstring_examples():
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module("sightlines_airflow.triggers.mesos"))
    assert result.attempted > 0 and result.failed == 0
