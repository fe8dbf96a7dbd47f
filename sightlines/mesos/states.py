"""Task states, what each one means for a run, and the task status record.

Sightlines subscribes as a ``PARTITION_AWARE`` framework, so the master tells
"definitely not running" (``TASK_DROPPED``, ``TASK_GONE``...) apart from "may
still be running" (``TASK_UNREACHABLE``, ``TASK_UNKNOWN``). What the runner does
with each state:

========================  ==============================================
state                     what :func:`~sightlines.mesos.run_task` does
========================  ==============================================
``TASK_FINISHED``         success
``TASK_FAILED``,          failure, with the task's message
``TASK_KILLED``,
``TASK_ERROR``
``TASK_LOST``,            relaunch (a bounded number of times): the task
``TASK_DROPPED``,         is known not to run any more
``TASK_GONE``,
``TASK_GONE_BY_OPERATOR``
``TASK_UNREACHABLE``      keep waiting and reconciling: it may still run
others                    keep waiting
========================  ==============================================

Examples
--------
>>> status = TaskStatus.from_json({"task_id": {"value": "t1"}, "state": "TASK_LOST",
...                                "agent_id": {"value": "S1"}, "uuid": "AAE="})
>>> status.state, status.agent_id, is_terminal(status.state), should_relaunch(status.state)
('TASK_LOST', 'S1', True, True)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Mapping

__all__ = [
    "TASK_STAGING",
    "TASK_STARTING",
    "TASK_RUNNING",
    "TASK_KILLING",
    "TASK_FINISHED",
    "TASK_FAILED",
    "TASK_KILLED",
    "TASK_ERROR",
    "TASK_LOST",
    "TASK_DROPPED",
    "TASK_UNREACHABLE",
    "TASK_GONE",
    "TASK_GONE_BY_OPERATOR",
    "TASK_UNKNOWN",
    "TERMINAL_STATES",
    "ACTIVE_STATES",
    "FAILED_STATES",
    "RELAUNCH_STATES",
    "TaskStatus",
    "is_terminal",
    "should_relaunch",
]

TASK_STAGING = "TASK_STAGING"
TASK_STARTING = "TASK_STARTING"
TASK_RUNNING = "TASK_RUNNING"
TASK_KILLING = "TASK_KILLING"
TASK_FINISHED = "TASK_FINISHED"
TASK_FAILED = "TASK_FAILED"
TASK_KILLED = "TASK_KILLED"
TASK_ERROR = "TASK_ERROR"
TASK_LOST = "TASK_LOST"
TASK_DROPPED = "TASK_DROPPED"
TASK_UNREACHABLE = "TASK_UNREACHABLE"
TASK_GONE = "TASK_GONE"
TASK_GONE_BY_OPERATOR = "TASK_GONE_BY_OPERATOR"
TASK_UNKNOWN = "TASK_UNKNOWN"

#: the task ran and failed, or was killed, or could not be started: report, do not relaunch
FAILED_STATES = frozenset({TASK_FAILED, TASK_KILLED, TASK_ERROR})
#: the task is known not to run any more through no fault of its own: relaunch
RELAUNCH_STATES = frozenset({TASK_LOST, TASK_DROPPED, TASK_GONE, TASK_GONE_BY_OPERATOR})
#: states after which the task never runs again
TERMINAL_STATES = frozenset({TASK_FINISHED}) | FAILED_STATES | RELAUNCH_STATES
#: the task was launched and has not ended yet, as far as Mesos knows
ACTIVE_STATES = frozenset({TASK_STAGING, TASK_STARTING, TASK_RUNNING, TASK_KILLING})


def is_terminal(state: str) -> bool:
    """Whether ``state`` means the task will never run again."""
    return state in TERMINAL_STATES


def should_relaunch(state: str) -> bool:
    """Whether ``state`` means the task is gone through no fault of its own."""
    return state in RELAUNCH_STATES


def _value(obj: Any) -> str | None:
    """``{"value": "x"}`` -> ``"x"`` (Mesos wraps ids in an object)."""
    if isinstance(obj, Mapping):
        value = obj.get("value")
        return None if value is None else str(value)
    return None


@dataclass(frozen=True)
class TaskStatus:
    """One status of one task, as the master reported it.

    Parameters
    ----------
    task_id : str
        The task id.
    state : str
        ``TASK_RUNNING``, ``TASK_FINISHED``...
    message : str
        Human-readable detail from the agent or executor (may be empty).
    reason : str
        Machine-readable reason (``REASON_COMMAND_EXECUTOR_FAILED``...), may be empty.
    source : str
        ``SOURCE_MASTER``, ``SOURCE_AGENT`` or ``SOURCE_EXECUTOR`` (may be empty).
    agent_id : str, optional
        The agent the task was placed on.
    executor_id : str, optional
        The executor running the task (the task id, for the command executor).
    uuid : str, optional
        Base64 id of this update; set when the update must be acknowledged.
    timestamp : float, optional
        When the status was generated (seconds since the epoch).
    framework_id : str, optional
        The framework the task belongs to (known from the operator API).
    """

    task_id: str
    state: str
    message: str = ""
    reason: str = ""
    source: str = ""
    agent_id: str | None = None
    executor_id: str | None = None
    uuid: str | None = None
    timestamp: float | None = None
    framework_id: str | None = None

    @property
    def terminal(self) -> bool:
        """Whether the task will never run again."""
        return is_terminal(self.state)

    @classmethod
    def from_json(cls, status: Mapping[str, Any], *, framework_id: str | None = None) -> "TaskStatus":
        """Build from a v1 JSON ``TaskStatus`` (e.g. ``event["update"]["status"]``)."""
        timestamp = status.get("timestamp")
        return cls(
            task_id=_value(status.get("task_id")) or "",
            state=str(status.get("state", TASK_UNKNOWN)),
            message=str(status.get("message", "")),
            reason=str(status.get("reason", "")),
            source=str(status.get("source", "")),
            agent_id=_value(status.get("agent_id")),
            executor_id=_value(status.get("executor_id")),
            uuid=status.get("uuid") or None,
            timestamp=float(timestamp) if timestamp is not None else None,
            framework_id=framework_id,
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict (for Airflow trigger events)."""
        return asdict(self)
