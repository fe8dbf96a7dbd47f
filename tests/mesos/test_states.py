"""Task states and what the runner does with each."""

from __future__ import annotations

from sightlines.mesos import states
from sightlines.mesos.states import TaskStatus


def test_every_state_has_one_meaning():
    assert states.TERMINAL_STATES == {states.TASK_FINISHED} | states.FAILED_STATES | states.RELAUNCH_STATES
    assert not states.FAILED_STATES & states.RELAUNCH_STATES
    assert not states.ACTIVE_STATES & states.TERMINAL_STATES
    # may still be running: neither terminal nor relaunched
    for state in (states.TASK_UNREACHABLE, states.TASK_UNKNOWN):
        assert not states.is_terminal(state) and not states.should_relaunch(state)
    assert states.should_relaunch("TASK_GONE") and states.should_relaunch("TASK_DROPPED")
    assert not states.should_relaunch("TASK_FAILED")


def test_status_from_v1_json():
    status = TaskStatus.from_json({
        "task_id": {"value": "t1"}, "state": "TASK_FAILED", "message": "Command exited with status 1",
        "reason": "REASON_COMMAND_EXECUTOR_FAILED", "source": "SOURCE_EXECUTOR", "agent_id": {"value": "S1"},
        "executor_id": {"value": "t1"}, "timestamp": 1764000000.5, "uuid": "q83vEjRWeJA=",
    }, framework_id="F1")
    assert status == TaskStatus("t1", "TASK_FAILED", "Command exited with status 1", "REASON_COMMAND_EXECUTOR_FAILED",
                                "SOURCE_EXECUTOR", "S1", "t1", "q83vEjRWeJA=", 1764000000.5, "F1")
    assert status.terminal
    assert status.to_dict()["state"] == "TASK_FAILED" and status.to_dict()["agent_id"] == "S1"


def test_reconciliation_status_has_no_uuid():
    status = TaskStatus.from_json({"task_id": {"value": "t1"}, "state": "TASK_RUNNING",
                                   "reason": "REASON_RECONCILIATION"})
    assert status.uuid is None and status.agent_id is None and not status.terminal
