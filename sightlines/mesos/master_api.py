"""The few operator-API calls (``POST /api/v1``) the runner needs.

``GET_FRAMEWORKS`` finds the framework of an earlier try by its deterministic
name, ``GET_TASKS`` tells what became of a task (also after its framework was
torn down, while the master remembers it), ``GET_AGENTS`` turns an agent id
into the address of its ``/files`` endpoints. All are read-only.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Mapping

import httpx

from ._http import auth_error, describe_transport_error, post_json
from .config import MesosConfig
from .detector import MasterDetector
from .errors import MesosCallError, MesosConnectionError
from .states import ACTIVE_STATES, TASK_UNREACHABLE, TaskStatus, _value

__all__ = ["MasterAPI", "FrameworkRecord", "TaskRecord"]

logger = logging.getLogger(__name__)

OPERATOR_PATH = "/api/v1"


@dataclass(frozen=True)
class FrameworkRecord:
    """A framework as the operator API lists it."""

    framework_id: str
    name: str
    active: bool
    connected: bool
    completed: bool
    registered_time: float = 0.0
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class TaskRecord:
    """A task as the operator API lists it, with its latest status."""

    status: TaskStatus
    framework_id: str
    listed_as: str  # "tasks", "completed_tasks", "unreachable_tasks", "orphan_tasks"

    @property
    def live(self) -> bool:
        """Whether the task may still be running (active or unreachable)."""
        return self.status.state in ACTIVE_STATES or self.status.state == TASK_UNREACHABLE


def _seconds(obj: Any) -> float:
    if isinstance(obj, Mapping) and "nanoseconds" in obj:
        return int(obj["nanoseconds"]) / 1e9
    return 0.0


def _framework(entry: Mapping[str, Any], completed: bool) -> FrameworkRecord:
    info = entry.get("framework_info") or {}
    labels = {
        str(item.get("key")): str(item.get("value", ""))
        for item in (info.get("labels") or {}).get("labels", [])
    }
    return FrameworkRecord(
        framework_id=_value(info.get("id")) or "",
        name=str(info.get("name", "")),
        active=bool(entry.get("active", False)) and not completed,
        connected=bool(entry.get("connected", False)) and not completed,
        completed=completed,
        registered_time=_seconds(entry.get("registered_time")),
        labels=labels,
    )


def _task(entry: Mapping[str, Any], listed_as: str) -> TaskRecord:
    framework_id = _value(entry.get("framework_id")) or ""
    statuses = entry.get("statuses") or []
    latest = max(statuses, key=lambda s: float(s.get("timestamp") or 0.0)) if statuses else {}
    state = str(entry.get("state") or latest.get("state") or "TASK_UNKNOWN")
    status = TaskStatus(
        task_id=_value(entry.get("task_id")) or "",
        state=state,
        message=str(latest.get("message", "")),
        reason=str(latest.get("reason", "")),
        source=str(latest.get("source", "")),
        agent_id=_value(entry.get("agent_id")) or _value(latest.get("agent_id")),
        executor_id=_value(entry.get("executor_id")) or _value(latest.get("executor_id")),
        timestamp=float(latest["timestamp"]) if latest.get("timestamp") is not None else None,
        framework_id=framework_id,
    )
    return TaskRecord(status=status, framework_id=framework_id, listed_as=listed_as)


class MasterAPI:
    """Read-only operator-API client.

    Parameters
    ----------
    config : MesosConfig
        For auth errors and timeouts.
    http : httpx.AsyncClient
        Shared client (owned by the caller).
    detector : MasterDetector
        Finds the leader the calls go to.
    """

    def __init__(self, config: MesosConfig, http: httpx.AsyncClient, detector: MasterDetector):
        self.config = config
        self._http = http
        self._detector = detector
        self.master_url: str | None = None

    async def call(self, kind: str, payload: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """POST one operator call and return its JSON answer.

        Raises
        ------
        MesosAuthError, MesosCallError, MesosConnectionError
        """
        if self.master_url is None:
            self.master_url = await self._detector.detect()
        body: dict[str, Any] = {"type": kind}
        if payload is not None:
            body[kind.lower()] = dict(payload)
        for attempt in range(2):  # these calls only read: one retry covers a stale pooled connection
            try:
                response, self.master_url = await post_json(self._http, self.master_url, OPERATOR_PATH, body)
                break
            except httpx.TransportError as exc:
                problem = describe_transport_error(self.master_url, exc)
                if attempt == 1:
                    self.master_url = None  # re-detect next time
                    raise MesosConnectionError(f"Operator call {kind} failed: {problem}") from None
                logger.debug("Operator call %s failed (%s); retrying once", kind, problem)
        if response.status_code in (401, 403):
            raise auth_error(self.master_url, response, self.config, f"the operator call {kind}")
        if response.status_code != 200:
            raise MesosCallError(
                f"Operator call {kind} to {self.master_url} answered HTTP {response.status_code}: "
                f"{response.text.strip()[:300]}",
                status_code=response.status_code,
            )
        try:
            return response.json()
        except ValueError:
            raise MesosCallError(f"Operator call {kind} to {self.master_url} did not answer JSON.") from None

    async def get_frameworks(self) -> list[FrameworkRecord]:
        """Every framework the master knows: registered ones, then completed (torn down) ones."""
        answer = (await self.call("GET_FRAMEWORKS")).get("get_frameworks") or {}
        records = [_framework(f, completed=False) for f in answer.get("frameworks", [])]
        records += [_framework(f, completed=True) for f in answer.get("completed_frameworks", [])]
        return records

    async def get_tasks(self) -> list[TaskRecord]:
        """Every task the master knows, with the list it appears in."""
        answer = (await self.call("GET_TASKS")).get("get_tasks") or {}
        records: list[TaskRecord] = []
        for listed_as in ("tasks", "unreachable_tasks", "orphan_tasks", "pending_tasks", "completed_tasks"):
            records += [_task(t, listed_as) for t in answer.get(listed_as, [])]
        return records

    async def get_agents(self) -> list[dict[str, Any]]:
        """Raw ``GET_AGENTS`` entries (``agent_info``, ``pid``, ...)."""
        answer = (await self.call("GET_AGENTS")).get("get_agents") or {}
        return list(answer.get("agents", []))

    async def find_agent(self, agent_id: str) -> dict[str, Any] | None:
        """The ``GET_AGENTS`` entry of one agent, or ``None``."""
        for agent in await self.get_agents():
            if _value((agent.get("agent_info") or {}).get("id")) == agent_id:
                return agent
        return None
