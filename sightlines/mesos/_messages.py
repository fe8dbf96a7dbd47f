"""Builders and readers of the v1 JSON messages the scheduler exchanges with the master.

Pure functions over dicts: no I/O, so every rule (which offered resources a
task may use, how a command is encoded) is tested without a master.
"""

from __future__ import annotations

import socket
import urllib.parse
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from .config import MesosConfig, TaskSpec
from .states import _value

__all__ = [
    "framework_info",
    "task_info",
    "OfferSummary",
    "summarize_offer",
    "take_resources",
    "sandbox_virtual_path",
    "agent_base_url",
]

#: Mesos keeps scalar resources with three decimal digits
_EPSILON = 1e-6
#: framework label that records which task a framework exists for
TASK_LABEL = "sightlines.task_id"


def framework_info(
    config: MesosConfig, name: str, *, framework_id: str | None = None, task_id: str | None = None
) -> dict[str, Any]:
    """``FrameworkInfo`` for a (re-)subscription.

    The framework is ``MULTI_ROLE`` (subscribes with ``roles``) and
    ``PARTITION_AWARE`` (gets ``TASK_UNREACHABLE``/``TASK_GONE`` instead of a
    blanket ``TASK_LOST``, which is what makes "never run twice" possible).
    """
    info: dict[str, Any] = {
        "user": config.framework_user,
        "name": name,
        "roles": [config.role],
        "failover_timeout": float(config.failover_timeout),
        "checkpoint": bool(config.checkpoint),
        "hostname": socket.gethostname(),
        "capabilities": [{"type": "MULTI_ROLE"}, {"type": "PARTITION_AWARE"}, {"type": "TASK_KILLING_STATE"}],
    }
    if config.principal:
        info["principal"] = config.principal
    if framework_id:
        info["id"] = {"value": framework_id}
    if task_id:
        info["labels"] = {"labels": [{"key": TASK_LABEL, "value": task_id}]}
    return info


def _command_info(spec: TaskSpec) -> dict[str, Any]:
    if isinstance(spec.command, str):
        command: dict[str, Any] = {"shell": True, "value": spec.command}
    else:
        argv = list(spec.command)
        if spec.docker_image:
            # the Docker containerizer runs `docker run IMAGE <value> <arguments...>`
            command = {"shell": False, "value": argv[0], "arguments": argv[1:]}
        else:
            # the Mesos containerizer execs <value> with <arguments> as the whole argv (argv[0] included)
            command = {"shell": False, "value": argv[0], "arguments": argv}
    if spec.env:
        command["environment"] = {"variables": [{"name": k, "value": v} for k, v in sorted(spec.env.items())]}
    return command


def task_info(
    spec: TaskSpec, agent_id: str, resources: list[dict[str, Any]], *, kill_grace_period: float | None = None
) -> dict[str, Any]:
    """``TaskInfo`` for a LAUNCH operation (command executor, optionally in a Docker image)."""
    info: dict[str, Any] = {
        "name": spec.display_name,
        "task_id": {"value": spec.task_id},
        "agent_id": {"value": agent_id},
        "resources": resources,
        "command": _command_info(spec),
    }
    if spec.labels:
        info["labels"] = {"labels": [{"key": k, "value": str(v)} for k, v in sorted(spec.labels.items())]}
    if spec.docker_image:
        info["container"] = {
            "type": "DOCKER",
            "docker": {"image": spec.docker_image, "network": "HOST", "force_pull_image": spec.docker_force_pull},
        }
    if kill_grace_period is not None:
        info["kill_policy"] = {"grace_period": {"nanoseconds": int(kill_grace_period * 1e9)}}
    return info


def _usable(resource: Mapping[str, Any], role: str) -> bool:
    """Whether a task of this framework may take from ``resource`` as a plain scalar."""
    if resource.get("type", "SCALAR") != "SCALAR" or "scalar" not in resource:
        return False
    if "revocable" in resource or "shared" in resource:
        return False
    disk = resource.get("disk")
    if disk and ("persistence" in disk or "source" in disk or "volume" in disk):
        return False  # persistent volumes and MOUNT/PATH disks need explicit handling
    allocated = (resource.get("allocation_info") or {}).get("role")
    return allocated is None or allocated == role


@dataclass(frozen=True)
class OfferSummary:
    """What an offer holds that a task of ours could use."""

    offer_id: str
    agent_id: str
    hostname: str
    scalars: Mapping[str, float]

    def fits(self, wanted: Mapping[str, float]) -> bool:
        """Whether every wanted scalar is available."""
        return all(self.scalars.get(name, 0.0) + _EPSILON >= amount for name, amount in wanted.items())

    def closeness(self, wanted: Mapping[str, float]) -> float:
        """The smallest offered/wanted ratio (1.0 or more means it fits)."""
        return min((self.scalars.get(n, 0.0) / a for n, a in wanted.items() if a > 0), default=1.0)

    def describe(self) -> str:
        """``cpus=2 mem=1024 disk=4096 on host-a``."""
        parts = " ".join(f"{n}={_fmt(self.scalars.get(n, 0.0))}" for n in ("cpus", "mem", "disk"))
        return f"{parts} on {self.hostname}"


def _fmt(value: float) -> str:
    return f"{value:g}"


def summarize_offer(offer: Mapping[str, Any], role: str) -> OfferSummary:
    """The usable scalar totals of an ``Offer``."""
    totals: dict[str, float] = {}
    for resource in offer.get("resources", []):
        if _usable(resource, role):
            name = resource.get("name", "")
            totals[name] = totals.get(name, 0.0) + float(resource["scalar"].get("value", 0.0))
    return OfferSummary(
        offer_id=_value(offer.get("id")) or "",
        agent_id=_value(offer.get("agent_id")) or "",
        hostname=str(offer.get("hostname", "")),
        scalars=totals,
    )


def take_resources(
    offer: Mapping[str, Any], wanted: Mapping[str, float], role: str
) -> list[dict[str, Any]] | None:
    """The task ``resources`` to take from ``offer``, or ``None`` when it does not fit.

    Each taken resource keeps the reservation and allocation fields of the
    offered one it comes from (Mesos requires task resources to be a subset of
    the offer), with the amount cut to what is needed.
    """
    remaining = {name: round(float(amount), 3) for name, amount in wanted.items() if amount > 0}
    taken: list[dict[str, Any]] = []
    for resource in offer.get("resources", []):
        name = resource.get("name", "")
        if remaining.get(name, 0.0) <= _EPSILON or not _usable(resource, role):
            continue
        available = float(resource["scalar"].get("value", 0.0))
        amount = round(min(available, remaining[name]), 3)
        if amount <= _EPSILON:
            continue
        piece = {k: v for k, v in resource.items() if k in ("name", "type", "role", "reservation",
                                                           "reservations", "allocation_info", "disk")}
        piece["type"] = "SCALAR"
        piece["scalar"] = {"value": amount}
        taken.append(piece)
        remaining[name] = round(remaining[name] - amount, 3)
    if any(left > _EPSILON for left in remaining.values()):
        return None
    return taken


def sandbox_virtual_path(framework_id: str, executor_id: str) -> str:
    """The path under which an agent's ``/files`` endpoints expose an executor's latest sandbox."""
    return f"/frameworks/{framework_id}/executors/{executor_id}/runs/latest"


def agent_base_url(agent: Mapping[str, Any], scheme: str) -> str | None:
    """``scheme://ip:port`` of an agent from an operator-API ``GET_AGENTS`` entry.

    The ``pid`` (``slave(1)@10.0.0.5:5051``) is preferred: it holds the address
    the agent actually listens on. Falls back to ``agent_info.hostname``/``port``.
    """
    pid = str(agent.get("pid", ""))
    if "@" in pid:
        return f"{scheme}://{pid.split('@', 1)[1]}"
    info = agent.get("agent_info") or {}
    if info.get("hostname"):
        return f"{scheme}://{info['hostname']}:{int(info.get('port', 5051))}"
    return None


def files_url(base: str, endpoint: str, path: str, **params: Any) -> str:
    """``base/files/<endpoint>?path=...`` with the path and parameters URL-encoded."""
    query = urllib.parse.urlencode({"path": path, **params})
    return f"{base}/files/{endpoint}?{query}"


def ids(values: Iterable[str]) -> list[dict[str, str]]:
    """``["a", "b"]`` -> ``[{"value": "a"}, {"value": "b"}]``."""
    return [{"value": v} for v in values]
