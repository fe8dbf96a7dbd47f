"""SightlinesJobTrigger: exact serialisation, polling a real asynchronous backend, on_kill."""

from __future__ import annotations

import asyncio
import sys
import time

import pytest
from airflow.triggers.base import TriggerEvent
from sightlines_airflow.backends.base import JobState, StepSpec
from sightlines_airflow.triggers.job import SightlinesJobTrigger

from ..fake_backend import CLASSPATH, PidFileBackend


def backend(tmp_path, script: str) -> PidFileBackend:
    return PidFileBackend(state_dir=str(tmp_path / "jobs"), command=[sys.executable, "-c", script])


def trigger_for(b: PidFileBackend, job_id: str, **kw) -> SightlinesJobTrigger:
    return SightlinesJobTrigger(job_id=job_id, backend=CLASSPATH, poll_interval=0.05,
                                backend_options={"state_dir": str(b.state_dir), "command": b.command}, **kw)


async def first_event(trigger: SightlinesJobTrigger, timeout: float = 30) -> TriggerEvent:
    async def go() -> TriggerEvent:
        async for event in trigger.run():
            return event
        raise AssertionError("the trigger ended without an event")

    return await asyncio.wait_for(go(), timeout)


SPEC = StepSpec(step="extract", client="acme", run_date="2026-11-20")


class TestSightlinesJobTrigger:
    def test_serialize(self):
        trigger = SightlinesJobTrigger(job_id="job-1", backend="mesos", conn_id="mesos_default", poll_interval=15,
                                       backend_options={"role": "sightlines"})
        assert trigger.serialize() == (
            "sightlines_airflow.triggers.job.SightlinesJobTrigger",
            {
                "job_id": "job-1",
                "backend": "mesos",
                "conn_id": "mesos_default",
                "poll_interval": 15.0,
                "backend_options": {"role": "sightlines"},
                "max_poll_errors": 10,
            },
        )

    def test_kwargs_saved_by_an_older_release_still_load(self):
        classpath, kwargs = SightlinesJobTrigger(job_id="job-1", backend="mesos").serialize()
        assert kwargs == {"job_id": "job-1", "backend": "mesos", "conn_id": None, "poll_interval": 30.0,
                          "backend_options": {}, "max_poll_errors": 10}
        rebuilt = SightlinesJobTrigger(**kwargs)
        assert rebuilt.serialize() == (classpath, kwargs)

    def test_building_it_touches_no_backend(self):
        # an unknown backend only fails when the trigger runs, not when it is built or serialised
        trigger = SightlinesJobTrigger(job_id="j", backend="not.a.Backend")
        assert trigger.serialize()[1]["backend"] == "not.a.Backend"

    def test_success_event(self, tmp_path):
        b = backend(tmp_path, "import time; time.sleep(0.3)")
        job = b.submit(SPEC)
        event = asyncio.run(first_event(trigger_for(b, job)))
        assert event.payload == {"status": "success", "job_id": job, "state": "succeeded",
                                 "message": f"job {job} succeeded"}

    @pytest.mark.parametrize(("script", "state"), [("raise SystemExit(1)", "failed"),
                                                   ("raise SystemExit(99)", "skipped")])
    def test_failure_event_names_the_state(self, tmp_path, script, state):
        b = backend(tmp_path, script)
        job = b.submit(SPEC)
        event = asyncio.run(first_event(trigger_for(b, job)))
        assert event.payload["status"] == "failure" and event.payload["state"] == state

    def test_an_unreadable_job_ends_with_an_error_event(self, tmp_path):
        b = backend(tmp_path, "pass")
        (tmp_path / "jobs").mkdir()
        event = asyncio.run(first_event(trigger_for(b, "pid-missing", max_poll_errors=3)))
        assert event.payload["status"] == "error"
        assert "could not read the state of job pid-missing" in event.payload["message"]
        assert "3 times in a row" in event.payload["message"]

    def test_running_twice_has_no_side_effect(self, tmp_path):
        b = backend(tmp_path, "pass")
        job = b.submit(SPEC)
        first = asyncio.run(first_event(trigger_for(b, job)))
        files = sorted(p.name for p in (tmp_path / "jobs" / job).iterdir())
        second = asyncio.run(first_event(trigger_for(b, job)))
        assert first.payload == second.payload
        assert sorted(p.name for p in (tmp_path / "jobs" / job).iterdir()) == files

    def test_on_kill_cancels_the_job(self, tmp_path):
        b = backend(tmp_path, "import time; time.sleep(60)")
        job = b.submit(SPEC)
        trigger = trigger_for(b, job)

        async def scenario() -> None:
            task = asyncio.ensure_future(first_event(trigger))
            await asyncio.sleep(0.3)
            assert b.status(job) == JobState.RUNNING
            task.cancel()  # what the triggerer does to a killed task's trigger ...
            await trigger.on_kill()  # ... before it calls on_kill

        asyncio.run(scenario())
        assert b.status(job) == JobState.CANCELLED
        assert "deferred Airflow task was killed" in b.result(job).reason
        deadline = time.monotonic() + 5
        while b.status(job) != JobState.CANCELLED and time.monotonic() < deadline:
            time.sleep(0.05)

    def test_cleanup_does_not_cancel(self, tmp_path):
        b = backend(tmp_path, "import time; time.sleep(60)")
        job = b.submit(SPEC)
        try:
            asyncio.run(trigger_for(b, job).cleanup())
            assert b.status(job) == JobState.RUNNING
        finally:
            b.cancel(job, "test over")
