"""What the Mesos client needs to know: the cluster (:class:`MesosConfig`) and the task (:class:`TaskSpec`).

Both are frozen dataclasses that check themselves when built, so a bad value
fails at the caller with a message that names the field and the fix.
Neither ever shows a secret or an environment value in its ``repr``.

Examples
--------
>>> config = MesosConfig(master="http://m1:5050,http://m2:5050", principal="sightlines",
...                      secret="s3cr3t", role="batch")
>>> config.masters
('http://m1:5050', 'http://m2:5050')
>>> "s3cr3t" in repr(config)
False
>>> spec = TaskSpec(task_id="sl.acme.2026-11-24.train", command=["sightlines", "step", "train"],
...                 env={"TOKEN": "x"}, cpus=2, mem_mb=4096)
>>> spec.framework_name("sightlines:")
'sightlines:sl.acme.2026-11-24.train'
>>> "TOKEN" in repr(spec), "'x'" in repr(spec)
(True, False)
"""

from __future__ import annotations

import getpass
import math
import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from .errors import MesosConfigError

__all__ = ["MesosConfig", "TaskSpec"]

#: Mesos task ids become directory names in the agent's sandbox: keep them boring
_TASK_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,199}$")


def _redact(url: str) -> str:
    """``zk://user:password@hosts/path`` -> ``zk://***@hosts/path``."""
    scheme, sep, rest = url.partition("://")
    authority, slash, path = rest.partition("/")
    if sep and "@" in authority:
        return f"{scheme}://***@{authority.rsplit('@', 1)[1]}{slash}{path}"
    return url


def _redact_master(master: str | Sequence[str]) -> str:
    if isinstance(master, str):
        return repr(_redact(master))
    return repr([_redact(m) if isinstance(m, str) else m for m in master])


def _valid_role(role: str) -> bool:
    if role == "*":
        return True
    if not isinstance(role, str) or not role or role.startswith("-") or any(c.isspace() for c in role):
        return False
    return all(part not in ("", ".", "..") for part in role.split("/"))


def _positive(name: str, value: float, *, allow_zero: bool = False) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise MesosConfigError(f"MesosConfig/TaskSpec: {name}={value!r} is invalid; expected a number {bound}.")


@dataclass(frozen=True)
class MesosConfig:
    """How to reach and use the Mesos cluster.

    Parameters
    ----------
    master : str or sequence of str
        Either master URLs (``"https://m1:5050,https://m2:5050"`` or a list; the
        leader is found by following 307 redirects), or a ZooKeeper URL
        ``"zk://[user:password@]host1:2181,host2:2181/mesos"``.
    principal : str, optional
        Principal for HTTP basic authentication and ``FrameworkInfo.principal``.
    secret : str, optional
        Secret for HTTP basic authentication. Never logged, never in ``repr``.
    role : str, default="*"
        The role the framework subscribes with (resources are taken from it).
    user : str, optional
        The Unix user tasks run as on the agents; defaults to the current user.
    verify : bool or str, default=True
        TLS verification for ``https://`` masters: ``True`` (system/certifi
        bundle), a path to a CA bundle, or ``False`` to turn verification off
        (logs a warning every time a client is built; never do this in production).
    framework_name_prefix : str, default="sightlines:"
        Frameworks are named ``prefix + task_id``; the name is how a retry finds
        the framework of an earlier try (see :mod:`sightlines.mesos.runner`).
    failover_timeout : float, default=7 days
        Seconds the master keeps the framework (and its task) alive while no
        scheduler is connected. A retry within that window re-attaches.
    checkpoint : bool, default=True
        Ask agents to checkpoint the task so it survives an agent restart.
    zk_scheme : str, default="http"
        Scheme of the master URL built from ZooKeeper data (which has no scheme).
    heartbeat_tolerance : float, default=5
        Drop and re-subscribe when no event arrived for this many heartbeat intervals.
    connect_timeout, request_timeout : float
        Seconds to open a connection / to get an answer to a call.
    reconnect_timeout : float, default=900
        Give up re-subscribing after this many seconds without a subscription.
    backoff_initial, backoff_max : float
        Exponential backoff (with full jitter) between re-subscription attempts.
    offer_timeout : float, default=600
        Fail a launch when no offer fits the task for this long.
    decline_refuse_seconds : float, default=10
        Refuse filter sent with DECLINE of offers that are too small.
    reconcile_interval : float, default=30
        Re-send RECONCILE this often while the task's state is unknown or unreachable.
    max_relaunches : int, default=2
        How many times a task that was LOST/DROPPED/GONE is launched again.
    kill_grace_period : float, optional
        Seconds between SIGTERM and SIGKILL when a task is killed (agent default when unset).
    """

    master: str | Sequence[str]
    principal: str | None = None
    secret: str | None = field(default=None, repr=False)
    role: str = "*"
    user: str | None = None
    verify: bool | str = True
    framework_name_prefix: str = "sightlines:"
    failover_timeout: float = 7 * 24 * 3600.0
    checkpoint: bool = True
    zk_scheme: str = "http"
    heartbeat_tolerance: float = 5.0
    connect_timeout: float = 10.0
    request_timeout: float = 75.0
    reconnect_timeout: float = 900.0
    backoff_initial: float = 0.5
    backoff_max: float = 15.0
    offer_timeout: float = 600.0
    decline_refuse_seconds: float = 10.0
    reconcile_interval: float = 30.0
    max_relaunches: int = 2
    kill_grace_period: float | None = None

    def __post_init__(self) -> None:
        masters = self.masters  # validates
        if not masters:
            raise MesosConfigError(
                "MesosConfig: master is empty; give master URLs (https://host:5050,...) or zk://host:2181/mesos."
            )
        if any(m.startswith("zk://") for m in masters) and len(masters) > 1:
            raise MesosConfigError(
                "MesosConfig: master mixes a zk:// URL with other URLs; give one zk:// URL "
                "(with all ZooKeeper hosts comma-separated inside it) or only master URLs."
            )
        for url in masters:
            if not url.startswith(("http://", "https://", "zk://")):
                raise MesosConfigError(
                    f"MesosConfig: master URL {_redact(url)!r} has no scheme; write http://host:5050, "
                    "https://host:5050 or zk://host:2181/mesos."
                )
            if url.startswith(("http://", "https://")) and "@" in url.split("://", 1)[1].split("/", 1)[0]:
                raise MesosConfigError(
                    f"MesosConfig: master URL {_redact(url)!r} holds credentials; give them as principal and "
                    "secret instead (they are sent as HTTP basic auth and never logged)."
                )
        if (self.principal is None) != (self.secret is None):
            raise MesosConfigError(
                "MesosConfig: principal and secret go together; give both for HTTP basic auth, or neither."
            )
        if not _valid_role(self.role):
            raise MesosConfigError(
                f"MesosConfig: role={self.role!r} is not a valid Mesos role; use '*' or names like 'batch' "
                "or 'batch/sightlines' (no spaces, no leading '-', no empty, '.' or '..' parts)."
            )
        if not isinstance(self.verify, (bool, str)):
            raise MesosConfigError(
                f"MesosConfig: verify={self.verify!r}; expected True, False or a path to a CA bundle."
            )
        if self.zk_scheme not in ("http", "https"):
            raise MesosConfigError(f"MesosConfig: zk_scheme={self.zk_scheme!r}; expected 'http' or 'https'.")
        for name in ("failover_timeout", "heartbeat_tolerance", "connect_timeout", "request_timeout",
                     "reconnect_timeout", "backoff_initial", "backoff_max", "offer_timeout",
                     "reconcile_interval"):
            _positive(name, getattr(self, name))
        _positive("decline_refuse_seconds", self.decline_refuse_seconds, allow_zero=True)
        if not isinstance(self.max_relaunches, int) or self.max_relaunches < 0:
            raise MesosConfigError(
                f"MesosConfig: max_relaunches={self.max_relaunches!r}; expected an integer >= 0."
            )
        if self.kill_grace_period is not None:
            _positive("kill_grace_period", self.kill_grace_period, allow_zero=True)

    def __repr__(self) -> str:
        shown = [f"master={_redact_master(self.master)}"]
        shown += [f"{name}={getattr(self, name)!r}" for name in self.__dataclass_fields__
                  if name not in ("master", "secret")]
        return f"MesosConfig({', '.join(shown)})"

    @property
    def masters(self) -> tuple[str, ...]:
        """The master URLs (or the one zk:// URL), stripped, without trailing slashes."""
        raw = [self.master] if isinstance(self.master, str) else list(self.master)
        if not all(isinstance(m, str) for m in raw):
            raise MesosConfigError(f"MesosConfig: master={self.master!r}; expected a string or a list of strings.")
        urls: list[str] = []
        for item in raw:
            if item.strip().startswith("zk://"):
                urls.append(item.strip())  # commas separate ZooKeeper hosts inside a zk URL
            else:
                urls.extend(u.strip().rstrip("/") for u in item.split(",") if u.strip())
        return tuple(urls)

    @property
    def framework_user(self) -> str:
        """The Unix user tasks run as (``user`` or the current user)."""
        if self.user:
            return self.user
        try:
            return getpass.getuser()
        except (KeyError, OSError):
            raise MesosConfigError(
                "MesosConfig: user is not set and the current user has no name; set the Unix user tasks run as."
            ) from None


@dataclass(frozen=True)
class TaskSpec:
    """One task to run on Mesos, exactly once.

    Parameters
    ----------
    task_id : str
        Deterministic id chosen by the caller, e.g. ``sl.acme.2026-11-24.train``:
        the same (client, date, step) must always give the same id, which is what
        makes retries re-attach instead of launching twice. Letters, digits and
        ``. _ : -``, at most 200 characters.
    command : str or sequence of str
        A shell command line (run with ``/bin/sh -c``), or an argv list (run
        without a shell; ``command[0]`` is looked up on the agent's PATH).
    name : str, optional
        Human-readable task name (defaults to ``task_id``).
    env : mapping of str to str
        Environment variables. Values are never logged nor shown in ``repr``;
        note that Mesos itself shows them to anyone who can read the master's
        state, so pass credentials by reference (a file, a secret store).
    cpus, mem_mb, disk_mb : float
        Resources to reserve (``mem_mb``/``disk_mb`` in MiB, as Mesos counts them).
    docker_image : str, optional
        Run inside this image (agents need the Docker containerizer).
    docker_force_pull : bool, default=False
        Pull the image even if the agent has it.
    labels : mapping of str to str
        Task labels (visible in the Mesos UI and APIs).
    """

    task_id: str
    command: str | Sequence[str]
    name: str = ""
    env: Mapping[str, str] = field(default_factory=dict, repr=False)
    cpus: float = 1.0
    mem_mb: float = 1024.0
    disk_mb: float = 0.0
    docker_image: str | None = None
    docker_force_pull: bool = False
    labels: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.task_id, str) or not _TASK_ID_RE.match(self.task_id):
            raise MesosConfigError(
                f"TaskSpec: task_id={self.task_id!r} is not a valid Mesos task id; use 1-200 characters from "
                "letters, digits and '._:-', starting with a letter or digit (e.g. 'sl.acme.2026-11-24.train').",
                record_id=str(self.task_id),
            )
        if isinstance(self.command, str):
            if not self.command.strip():
                raise MesosConfigError(f"TaskSpec {self.task_id}: command is empty.", record_id=self.task_id)
        else:
            command = list(self.command)
            if not command or not all(isinstance(a, str) for a in command) or not command[0]:
                raise MesosConfigError(
                    f"TaskSpec {self.task_id}: command must be a shell string or a non-empty list of strings; "
                    f"got {self.command!r}.",
                    record_id=self.task_id,
                )
            object.__setattr__(self, "command", tuple(command))
        for key, value in dict(self.env).items():
            if not isinstance(key, str) or not key or "=" in key or not isinstance(value, str):
                raise MesosConfigError(
                    f"TaskSpec {self.task_id}: env entry {key!r} is invalid; names must be non-empty strings "
                    "without '=', values must be strings.",
                    record_id=self.task_id,
                )
        _positive("cpus", self.cpus)
        _positive("mem_mb", self.mem_mb)
        _positive("disk_mb", self.disk_mb, allow_zero=True)

    def __repr__(self) -> str:
        env_keys = sorted(self.env)
        return (
            f"TaskSpec(task_id={self.task_id!r}, name={self.display_name!r}, command={self.command!r}, "
            f"env_keys={env_keys!r}, cpus={self.cpus!r}, mem_mb={self.mem_mb!r}, disk_mb={self.disk_mb!r}, "
            f"docker_image={self.docker_image!r}, labels={dict(self.labels)!r})"
        )

    @property
    def display_name(self) -> str:
        """``name`` or, when empty, ``task_id``."""
        return self.name or self.task_id

    @property
    def shell(self) -> bool:
        """Whether ``command`` is a shell command line."""
        return isinstance(self.command, str)

    def framework_name(self, prefix: str) -> str:
        """The deterministic name of the framework that runs this task."""
        return f"{prefix}{self.task_id}"

    def resources(self) -> dict[str, float]:
        """``{"cpus": .., "mem": .., "disk": ..}`` as Mesos names them (disk only when asked)."""
        wanted = {"cpus": float(self.cpus), "mem": float(self.mem_mb)}
        if self.disk_mb:
            wanted["disk"] = float(self.disk_mb)
        return wanted

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict (``env`` included: keep it out of logs)."""
        return {
            "task_id": self.task_id,
            "command": self.command if isinstance(self.command, str) else list(self.command),
            "name": self.name,
            "env": dict(self.env),
            "cpus": self.cpus,
            "mem_mb": self.mem_mb,
            "disk_mb": self.disk_mb,
            "docker_image": self.docker_image,
            "docker_force_pull": self.docker_force_pull,
            "labels": dict(self.labels),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "TaskSpec":
        """Inverse of :meth:`to_dict`; unknown keys are refused."""
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise MesosConfigError(f"TaskSpec: unknown keys {unknown}; known keys are {sorted(known)}.")
        return cls(**dict(data))
