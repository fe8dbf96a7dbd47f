"""run_task / submit_task / find_task / kill_task against the fake master: each task completes exactly once.

Every task's command appends a line to a file; "exactly once" is checked both
on the fake's launch records and on that file.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sightlines.mesos import (
    FrameworkError,
    MesosConfig,
    NoMatchingOfferError,
    TaskFailedError,
    TaskOutcome,
    TaskSpec,
    find_task,
    kill_task,
    read_sandbox,
    run_task,
    run_task_sync,
    submit_task,
)

from .conftest import fast_config, run
from .fake_master import TERMINAL, FakeMesosMaster

pytestmark = pytest.mark.timeout(60)


def appending_task(task_id: str, marker: Path, *, sleep: float = 0.0, exit_code: int = 0, gate: Path | None = None,
                   **kwargs) -> TaskSpec:
    """A task that (once ``gate`` exists, if given, and after ``sleep`` seconds) appends one line to ``marker``
    and exits with ``exit_code``. A gate holds the task running for as long as the test needs, whatever the
    machine's speed (at most 2 minutes)."""
    hold = f"i=0; while [ ! -e {gate} ] && [ $i -lt 6000 ]; do sleep 0.02; i=$((i+1)); done; " if gate else ""
    command = (f"{hold}sleep {sleep}; echo \"run of $MESOS_TASK_ID\" >> {marker}; echo to-stdout; "
               f"echo to-stderr >&2; exit {exit_code}")
    kwargs.setdefault("cpus", 1)
    kwargs.setdefault("mem_mb", 256)
    return TaskSpec(task_id=task_id, command=command, **kwargs)


def lines(marker: Path) -> list[str]:
    return marker.read_text().splitlines() if marker.exists() else []


def assert_every_update_acknowledged(master: FakeMesosMaster) -> None:
    """Every update the master delivered with a uuid was acknowledged (at least once).

    Except one about a task's last run delivered after a reconciliation answer
    had already told the framework that run ended: the runner is done then and
    tears the framework down, which is all Mesos needs to drop the update. An
    update of a run that a relaunch replaced must still be acknowledged.
    """
    with master._lock:
        deliveries = [dict(d) for d in master.deliveries]
        acked = {a["uuid"] for a in master.acks}
        last_run = {(launch.framework_id, launch.task_id): str(launch.sandbox) for launch in master.launches}

    def known_over(i: int, d: dict[str, Any]) -> bool:
        return last_run.get((d["framework_id"], d["task_id"])) == d["run"] and any(
            not e["uuid"] and e["state"] in TERMINAL and e["run"] == d["run"] for e in deliveries[:i])

    missing = [f"{d['task_id']} {d['state']} ({d['uuid']})" for i, d in enumerate(deliveries)
               if d["uuid"] and d["uuid"] not in acked and not known_over(i, d)]
    assert not missing, f"unacknowledged updates: {missing}; delivered in order: {deliveries}; acks: {master.acks}"


def wait_running(master: FakeMesosMaster, task_id: str) -> None:
    master.wait_for(lambda: master.task_state(task_id) == "TASK_RUNNING", what=f"{task_id} RUNNING")


async def crashed_try(master: FakeMesosMaster, config: MesosConfig, spec: TaskSpec,
                      until: Callable[[], bool]) -> None:
    """A first try of ``spec`` whose worker dies (cancelled: no teardown) once ``until()`` holds."""
    first = asyncio.create_task(run_task(config, spec))
    await asyncio.to_thread(master.wait_for, until, 20, "the moment the first try dies")
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first


class TestNormalRun:
    def test_runs_once_and_reports_where(self, master, config, tmp_path):
        marker = tmp_path / "marker.txt"
        seen: list[str] = []
        spec = appending_task("sl.acme.2026-11-24.train", marker, env={"MY_TOKEN": "tok-123"},
                              labels={"client": "acme"})
        outcome = run(run_task(config, spec, on_event=lambda status: seen.append(status.state)))

        assert outcome.ok and outcome.state == "TASK_FINISHED"
        assert outcome.launches == 1 and not outcome.reattached
        assert outcome.history == ("TASK_STARTING", "TASK_RUNNING", "TASK_FINISHED")
        assert seen == ["TASK_STARTING", "TASK_RUNNING", "TASK_FINISHED"]
        assert lines(marker) == ["run of sl.acme.2026-11-24.train"]
        [launch] = master.launches
        assert launch.env == {"MY_TOKEN": "tok-123"}
        assert launch.resources == {"cpus": 1.0, "mem": 256.0}
        assert outcome.agent_id == launch.agent_id and outcome.agent_hostname == launch.hostname
        assert outcome.framework_id == launch.framework_id
        # the framework is named after the task, and torn down at the end
        assert master.framework_ids(completed=True) == [outcome.framework_id]
        assert master.calls_of("TEARDOWN")
        assert_every_update_acknowledged(master)
        # the sandbox is readable through the agent's /files/read
        assert outcome.sandbox is not None and outcome.sandbox.stdout_url
        assert run(read_sandbox(config, outcome, "stdout")) == "to-stdout\n"
        assert run(read_sandbox(config, outcome, "stderr", tail_bytes=3)) == "rr\n"
        assert outcome.raise_for_state() is outcome

    def test_outcome_round_trips_through_a_dict(self, master, config, tmp_path):
        outcome = run(run_task(config, appending_task("t-dict", tmp_path / "m")))
        assert TaskOutcome.from_dict(outcome.to_dict()) == outcome

    def test_argv_command_and_docker_image_are_sent(self, master, config, tmp_path):
        marker = tmp_path / "argv.txt"
        spec = TaskSpec(task_id="t-argv", command=["sh", "-c", f"echo \"$0 $1\" >> {marker}", "a b", "c"],
                        docker_image="registry.example/sightlines:1.2", cpus=0.5, mem_mb=64)
        outcome = run(run_task(config, spec))
        assert outcome.ok
        assert lines(marker) == ["a b c"]  # no shell splitting of the arguments
        [launch] = master.launches
        # `docker run IMAGE <value> <arguments...>`: argv[0] is the value, not repeated in the arguments
        assert launch.command["shell"] is False and launch.command["value"] == "sh"
        assert launch.command["arguments"][2] == "a b"
        assert launch.container == {"type": "DOCKER", "docker": {
            "image": "registry.example/sightlines:1.2", "network": "HOST", "force_pull_image": False}}

    def test_sync_facade(self, master, config, tmp_path):
        marker = tmp_path / "sync.txt"
        outcome = run_task_sync(config, appending_task("t-sync", marker))
        assert outcome.ok and lines(marker) == ["run of t-sync"]

    def test_env_values_never_logged(self, master, config, tmp_path, caplog):
        caplog.set_level(logging.DEBUG)
        spec = appending_task("t-env", tmp_path / "m", env={"DB_PASSWORD": "hunter2-very-secret"})
        outcome = run(run_task(config, spec))
        assert outcome.ok
        assert "hunter2-very-secret" not in caplog.text
        assert "hunter2-very-secret" not in repr(spec)


class TestFailures:
    def test_failing_command_reports_its_message(self, master, config, tmp_path):
        marker = tmp_path / "marker.txt"
        outcome = run(run_task(config, appending_task("t-fail", marker, exit_code=3)))
        assert outcome.state == "TASK_FAILED" and not outcome.ok
        assert outcome.message == "Command exited with status 3"
        assert outcome.launches == 1 and master.launch_count() == 1  # a failure is not relaunched
        assert lines(marker) == ["run of t-fail"]
        with pytest.raises(TaskFailedError, match=r"t-fail ended TASK_FAILED on agent-.\.test: Command exited "
                                                  r"with status 3.*stderr: http") as info:
            outcome.raise_for_state()
        assert info.value.outcome is outcome
        assert run(read_sandbox(config, outcome, "stderr")) == "to-stderr\n"
        assert_every_update_acknowledged(master)

    def test_offers_too_small_fail_with_a_clear_message(self, small_master, tmp_path):
        config = fast_config(small_master.url, offer_timeout=1.0)
        spec = appending_task("t-big", tmp_path / "m", cpus=4, mem_mb=2048)
        with pytest.raises(NoMatchingOfferError) as info:
            run(run_task(config, spec))
        message = str(info.value)
        assert "t-big" in message and "cpus=4 mem=2048" in message and "role 'batch'" in message
        assert "largest offer seen was cpus=2 mem=1024 disk=10000 on small-b.test" in message
        assert "raise MesosConfig.offer_timeout" in message
        assert small_master.launch_count() == 0
        declines = small_master.calls_of("DECLINE")
        assert declines and all(d["body"]["decline"]["filters"]["refuse_seconds"] == 0.2 for d in declines)
        assert small_master.calls_of("TEARDOWN")  # nothing left behind

    def test_invalid_task_id_is_refused_before_any_call(self):
        from sightlines.mesos import MesosConfigError

        with pytest.raises(MesosConfigError, match="not a valid Mesos task id"):
            TaskSpec(task_id="has/slash", command="true")


class TestFaults:
    def test_task_lost_mid_run_is_relaunched_once(self, master, config, tmp_path):
        marker, gate = tmp_path / "marker.txt", tmp_path / "gate"
        spec = appending_task("t-lost", marker, gate=gate)

        async def scenario():
            running = asyncio.create_task(run_task(config, spec))
            await asyncio.to_thread(wait_running, master, "t-lost")
            await asyncio.to_thread(master.lose_task, "t-lost")
            await asyncio.to_thread(master.wait_for, lambda: master.launch_count("t-lost") == 2, 20, "the relaunch")
            gate.touch()
            return await running

        outcome = run(scenario())
        assert outcome.ok and outcome.launches == 2
        assert "TASK_LOST" in outcome.history and outcome.history[-1] == "TASK_FINISHED"
        assert master.launch_count("t-lost") == 2
        assert lines(marker) == ["run of t-lost"]  # the lost run never got to its side effect
        assert_every_update_acknowledged(master)

    def test_lost_too_often_gives_up(self, master, tmp_path):
        config = fast_config(master.url, max_relaunches=0)
        spec = appending_task("t-lost2", tmp_path / "m", sleep=5)

        async def scenario():
            running = asyncio.create_task(run_task(config, spec))
            await asyncio.to_thread(wait_running, master, "t-lost2")
            await asyncio.to_thread(master.lose_task, "t-lost2")
            return await running

        outcome = run(scenario())
        assert outcome.state == "TASK_LOST" and "after 0 relaunches" in outcome.message
        assert master.launch_count() == 1

    def test_agent_removed_relaunches_elsewhere(self, master, config, tmp_path):
        marker, gate = tmp_path / "marker.txt", tmp_path / "gate"
        spec = appending_task("t-gone", marker, gate=gate)

        async def scenario():
            running = asyncio.create_task(run_task(config, spec))
            await asyncio.to_thread(wait_running, master, "t-gone")
            await asyncio.to_thread(master.remove_agent, master.launches[0].hostname, gone_after=0.3)
            await asyncio.to_thread(master.wait_for, lambda: master.launch_count("t-gone") == 2, 20, "the relaunch")
            gate.touch()
            return await running

        outcome = run(scenario())
        assert outcome.ok
        assert outcome.history[:4] == ("TASK_STARTING", "TASK_RUNNING", "TASK_UNREACHABLE", "TASK_GONE")
        first, second = master.launches
        assert first.agent_id != second.agent_id and outcome.agent_id == second.agent_id
        assert lines(marker) == ["run of t-gone"]
        assert_every_update_acknowledged(master)

    def test_unreachable_task_is_not_relaunched(self, master, config, tmp_path):
        marker, gate = tmp_path / "marker.txt", tmp_path / "gate"
        spec = appending_task("t-unreach", marker, gate=gate)

        async def scenario():
            running = asyncio.create_task(run_task(config, spec))
            await asyncio.to_thread(wait_running, master, "t-unreach")
            hostname = master.launches[0].hostname
            await asyncio.to_thread(master.make_agent_unreachable, hostname)
            asked = len(master.calls_of("RECONCILE"))
            gate.touch()  # meanwhile the task finishes on the partitioned agent
            await asyncio.to_thread(master.wait_for, lambda: lines(marker) == ["run of t-unreach"], 20, "the run")
            await asyncio.to_thread(master.wait_for, lambda: len(master.calls_of("RECONCILE")) >= asked + 2, 20,
                                    "two reconciliations while unreachable")
            assert not running.done()
            await asyncio.to_thread(master.reconnect_agent, hostname)
            return await running

        outcome = run(scenario())
        assert outcome.ok and outcome.launches == 1
        assert "TASK_UNREACHABLE" in outcome.history and outcome.history[-1] == "TASK_FINISHED"
        assert master.launch_count() == 1 and lines(marker) == ["run of t-unreach"]
        assert len(master.calls_of("RECONCILE")) >= 2  # it kept asking while unreachable
        assert_every_update_acknowledged(master)

    def test_unreachable_then_unknown_is_still_not_relaunched(self, master, config, tmp_path):
        marker, gate = tmp_path / "marker.txt", tmp_path / "gate"
        spec = appending_task("t-forgot", marker, gate=gate)

        async def scenario():
            running = asyncio.create_task(run_task(config, spec))
            await asyncio.to_thread(wait_running, master, "t-forgot")
            await asyncio.to_thread(master.make_agent_unreachable, master.launches[0].hostname)
            await asyncio.sleep(0.3)
            await asyncio.to_thread(master.forget_task, "t-forgot")  # reconciliation now says TASK_UNKNOWN
            gate.touch()
            await asyncio.to_thread(master.wait_for, lambda: lines(marker) == ["run of t-forgot"], 20, "the run")
            await asyncio.to_thread(master.wait_for,
                                    lambda: any(d["state"] == "TASK_UNKNOWN" for d in master.deliveries), 20,
                                    "TASK_UNKNOWN from reconciliation")
            await asyncio.sleep(0.5)
            assert not running.done()  # still waiting: the task may be running on the lost agent
            running.cancel()
            await asyncio.wait({running})

        run(scenario())
        assert master.launch_count() == 1 and lines(marker) == ["run of t-forgot"]
        assert any(d["state"] == "TASK_UNKNOWN" for d in master.deliveries)

    def test_unreachable_task_back_running_is_picked_up_by_reconciliation(self, master, config, tmp_path):
        marker, gate = tmp_path / "marker.txt", tmp_path / "gate"
        spec = appending_task("t-back", marker, gate=gate)

        def reconciled_after(n: int) -> bool:  # a reconciliation answer (no uuid) saying RUNNING, after the n-th
            return any(d["state"] == "TASK_RUNNING" and not d["uuid"] for d in master.deliveries[n:])

        async def scenario():
            running = asyncio.create_task(run_task(config, spec))
            await asyncio.to_thread(wait_running, master, "t-back")
            hostname = master.launches[0].hostname
            await asyncio.to_thread(master.make_agent_unreachable, hostname)
            await asyncio.sleep(0.3)
            n = len(master.deliveries)  # counted first: the answer may come at once
            await asyncio.to_thread(master.reconnect_agent, hostname)  # still running: no update is sent
            await asyncio.to_thread(master.wait_for, lambda: reconciled_after(n), 20, "RUNNING from reconciliation")
            gate.touch()  # only then may the task end
            return await running

        outcome = run(scenario())
        assert outcome.ok and master.launch_count() == 1 and lines(marker) == ["run of t-back"]
        # UNREACHABLE, then RUNNING again (from reconciliation), then FINISHED
        assert outcome.history[2:] == ("TASK_UNREACHABLE", "TASK_RUNNING", "TASK_FINISHED")

    def test_stream_dropped_before_the_final_update_is_redelivered_and_acked(self, master, config, tmp_path):
        marker = tmp_path / "marker.txt"
        master.drop_streams_on("TASK_FINISHED", refuse_for=0.3)
        outcome = run(run_task(config, appending_task("t-drop", marker, sleep=0.2)))
        assert outcome.ok and master.launch_count() == 1 and lines(marker) == ["run of t-drop"]
        first, second = master.subscriptions
        assert first["requested"] is None and second["requested"] == first["framework_id"]  # failover, same id
        assert second["stream_id"] != first["stream_id"]
        finished = [a for a in master.acks if a["state"] == "TASK_FINISHED"]
        assert len(finished) == 1
        # calls after the reconnection carried the new stream id
        assert master.calls_of("TEARDOWN")[-1]["stream_id"] == second["stream_id"]
        assert_every_update_acknowledged(master)

    def test_stream_dropped_mid_run_reconnects(self, master, config, tmp_path):
        marker, gate = tmp_path / "marker.txt", tmp_path / "gate"

        async def scenario():
            running = asyncio.create_task(run_task(config, appending_task("t-drop2", marker, gate=gate)))
            await asyncio.to_thread(wait_running, master, "t-drop2")
            framework_id = master.launches[0].framework_id
            await asyncio.to_thread(master.drop_streams, refuse_for=0.3)
            await asyncio.to_thread(master.wait_for,
                                    lambda: master.resubscribed(framework_id), 20,
                                    "the re-subscription")
            gate.touch()
            return await running

        outcome = run(scenario())
        assert outcome.ok and master.launch_count() == 1 and lines(marker) == ["run of t-drop2"]
        assert [s["requested"] for s in master.subscriptions][1:] == [outcome.framework_id]
        assert_every_update_acknowledged(master)

    def test_missed_heartbeats_reconnect(self, master, config, tmp_path, caplog):
        caplog.set_level(logging.WARNING, logger="sightlines.mesos")
        marker = tmp_path / "marker.txt"

        async def scenario():
            running = asyncio.create_task(run_task(config, appending_task("t-hb", marker, sleep=1.2)))
            await asyncio.to_thread(wait_running, master, "t-hb")
            await asyncio.to_thread(master.stall_streams)  # the connection stays open, but silent
            return await running

        outcome = run(scenario())
        assert outcome.ok and master.launch_count() == 1 and lines(marker) == ["run of t-hb"]
        assert len(master.subscriptions) == 2
        assert master.subscriptions[1]["requested"] == outcome.framework_id
        assert "missed heartbeats" in caplog.text
        assert_every_update_acknowledged(master)


class TestExactlyOnceAcrossTries:
    def test_retry_while_first_try_runs_reattaches(self, master, config, tmp_path):
        marker, gate = tmp_path / "marker.txt", tmp_path / "gate"
        spec = appending_task("t-retry", marker, gate=gate)

        async def scenario():
            first = asyncio.create_task(run_task(config, spec))
            await asyncio.to_thread(wait_running, master, "t-retry")
            framework_id = master.launches[0].framework_id
            retry = asyncio.create_task(run_task(config, spec))  # e.g. Airflow retried after losing the worker
            await asyncio.to_thread(master.wait_for,
                                    lambda: master.resubscribed(framework_id), 20,
                                    "the retry re-attached")
            gate.touch()
            second = await retry
            with pytest.raises(FrameworkError, match="taken the framework over"):
                await first
            return second

        outcome = run(scenario())
        assert outcome.ok and outcome.reattached and outcome.launches == 0
        assert master.launch_count() == 1 and lines(marker) == ["run of t-retry"]
        assert len(master.framework_ids()) == 1
        assert_every_update_acknowledged(master)

    def test_scheduler_crash_then_retry_reattaches(self, master, config, tmp_path):
        marker, gate = tmp_path / "marker.txt", tmp_path / "gate"
        spec = appending_task("t-crash", marker, gate=gate)

        async def scenario():
            await crashed_try(master, config, spec, lambda: master.task_state("t-crash") == "TASK_RUNNING")
            assert master.framework_ids(completed=False)  # the framework waits for a failover
            framework_id = master.launches[0].framework_id
            retry = asyncio.create_task(run_task(config, spec))
            await asyncio.to_thread(master.wait_for,
                                    lambda: master.resubscribed(framework_id), 20,
                                    "the retry re-attached")
            gate.touch()  # the task ends once the retry watches it
            return await retry

        outcome = run(scenario())
        assert outcome.ok and outcome.reattached and outcome.launches == 0
        assert master.launch_count() == 1 and lines(marker) == ["run of t-crash"]
        assert_every_update_acknowledged(master)

    def test_scheduler_crash_then_the_task_ends_then_retry_reports_it(self, master, config, tmp_path):
        marker, gate = tmp_path / "marker.txt", tmp_path / "gate"
        spec = appending_task("t-crash-end", marker, gate=gate)

        async def scenario():
            await crashed_try(master, config, spec, lambda: master.task_state("t-crash-end") == "TASK_RUNNING")
            gate.touch()  # the task ends while no scheduler watches: its final update waits at the master
            await asyncio.to_thread(master.wait_for, lambda: master.task_state("t-crash-end") == "TASK_FINISHED", 20,
                                    "the task's end")
            return await run_task(config, spec)

        outcome = run(scenario())
        assert outcome.ok and outcome.reattached and outcome.launches == 0
        assert master.launch_count() == 1 and lines(marker) == ["run of t-crash-end"]
        # the retry learned of the end from the master's state, before the re-sent updates, and tore the
        # framework down: Mesos drops what was left unacknowledged with it (nothing waits for an ack any more)
        assert master.framework_ids(completed=False) == [] and master.pending_updates() == 0

    def test_crash_after_the_final_ack_then_retry_reports_without_relaunch(self, master, config, tmp_path):
        marker = tmp_path / "marker.txt"
        spec = appending_task("t-acked", marker)

        def die_on_finish(status):
            if status.state == "TASK_FINISHED":  # acknowledged, but the worker dies before TEARDOWN
                asyncio.current_task().cancel()

        async def scenario():
            with pytest.raises(asyncio.CancelledError):
                await run_task(config, spec, on_event=die_on_finish)
            assert master.framework_ids(completed=False)  # not torn down
            return await run_task(config, spec)

        outcome = run(scenario())
        assert outcome.ok and outcome.reattached and outcome.launches == 0
        assert master.launch_count() == 1 and lines(marker) == ["run of t-acked"]
        assert master.framework_ids(completed=False) == []  # the retry tore it down

    def test_crash_before_launch_then_retry_launches_in_the_same_framework(self, small_master, tmp_path):
        # the first try registered its framework but never found an offer (agents too small) and died
        config = fast_config(small_master.url)
        marker = tmp_path / "marker.txt"
        spec = appending_task("t-nolaunch", marker, cpus=1, mem_mb=2048)

        async def scenario():
            await crashed_try(small_master, config, spec, lambda: len(small_master.calls_of("DECLINE")) > 0)
            return await run_task(config, TaskSpec(task_id="t-nolaunch", command=spec.command, mem_mb=512))

        outcome = run(scenario())
        assert outcome.ok and outcome.reattached and outcome.launches == 1
        assert small_master.launch_count() == 1 and lines(marker) == ["run of t-nolaunch"]
        assert len(small_master.framework_ids()) == 1  # the first try's framework was reused

    def test_retry_after_success_does_not_run_again(self, master, config, tmp_path):
        marker = tmp_path / "marker.txt"
        spec = appending_task("t-done", marker)
        first = run(run_task(config, spec))
        second = run(run_task(config, spec))
        assert first.ok and second.ok
        assert second.reattached and second.launches == 0 and second.agent_id == first.agent_id
        assert master.launch_count() == 1 and lines(marker) == ["run of t-done"]
        # a deliberate re-run is possible
        third = run(run_task(config, spec, rerun_finished=True))
        assert third.ok and third.launches == 1 and len(lines(marker)) == 2

    def test_retry_after_failure_runs_again(self, master, config, tmp_path):
        marker = tmp_path / "marker.txt"
        first = run(run_task(config, appending_task("t-again", marker, exit_code=1)))
        second = run(run_task(config, appending_task("t-again", marker, exit_code=0)))
        assert first.state == "TASK_FAILED" and second.ok and second.launches == 1
        assert master.launch_count() == 2 and len(lines(marker)) == 2

    def test_concurrent_duplicate_tries_launch_once(self, master, config, tmp_path):
        marker = tmp_path / "marker.txt"
        spec = appending_task("t-race", marker, sleep=0.5)

        async def scenario():
            return await asyncio.gather(run_task(config, spec), run_task(config, spec), return_exceptions=True)

        results = run(scenario())
        finished = [r for r in results if isinstance(r, TaskOutcome) and r.ok]
        assert len(finished) >= 1
        assert all(isinstance(r, (TaskOutcome, FrameworkError)) for r in results), results
        assert master.launch_count() == 1 and lines(marker) == ["run of t-race"]

    def test_submit_then_wait(self, master, config, tmp_path):
        marker, gate = tmp_path / "marker.txt", tmp_path / "gate"
        spec = appending_task("t-submit", marker, gate=gate)
        status = run(submit_task(config, spec))
        assert status.state == "TASK_RUNNING"
        assert master.framework_ids(completed=False)  # still registered for the waiter
        found = run(find_task(config, "t-submit"))
        assert found is not None and found.state == "TASK_RUNNING" and found.framework_id
        gate.touch()
        outcome = run(run_task(config, spec))
        assert outcome.ok and outcome.reattached and outcome.launches == 0
        assert master.launch_count() == 1 and lines(marker) == ["run of t-submit"]


class TestFindAndKill:
    def test_find_task(self, master, config, tmp_path):
        assert run(find_task(config, "t-find")) is None
        outcome = run(run_task(config, appending_task("t-find", tmp_path / "m")))
        found = run(find_task(config, "t-find"))
        assert found is not None and found.state == "TASK_FINISHED"
        assert found.framework_id == outcome.framework_id and found.agent_id == outcome.agent_id

    def test_kill_running_task(self, master, config, tmp_path):
        marker = tmp_path / "marker.txt"
        spec = appending_task("t-kill", marker, sleep=30)

        async def scenario():
            running = asyncio.create_task(run_task(config, spec))
            await asyncio.to_thread(wait_running, master, "t-kill")
            final = await kill_task(config, "t-kill", "cancelled by a test", timeout=5)
            with pytest.raises(FrameworkError):
                await running  # its framework was taken over and torn down
            return final

        final = run(scenario())
        assert final is not None and final.state == "TASK_KILLED"
        assert master.calls_of("KILL") and master.calls_of("TEARDOWN")
        assert master.framework_ids(completed=False) == []
        assert lines(marker) == [] and master.launch_count() == 1
        # killing again is a no-op
        again = run(kill_task(config, "t-kill", "again"))
        assert again is not None and again.state == "TASK_KILLED"

    def test_kill_unknown_task_is_a_no_op(self, master, config):
        assert run(kill_task(config, "t-never", "nothing to do")) is None
        assert master.calls_of("KILL") == []
