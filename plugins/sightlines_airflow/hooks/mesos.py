"""Mesos cluster settings from an Airflow connection (default ``sightlines_mesos``).

The ``mesos`` compute backend reaches the cluster through one Airflow
connection. :class:`MesosHook` turns it into a
:class:`~sightlines.mesos.MesosConfig` (the cluster) plus the defaults of every
step task (:class:`MesosTaskDefaults`: image, command, credentials policy ...).
Nothing is read when the hook is built; the connection is resolved on first use
(in the worker, or in the triggerer with :meth:`MesosHook.aget_settings`) and
cached, so parsing a DAG opens no connection.

==============================  ==============================================================
connection field                becomes
==============================  ==============================================================
host, port, schema              the master: ``host`` is ``m1`` or ``m1:5050,m2:5050`` (port
                                default 5050); ``schema`` is ``http`` (default), ``https`` or
                                ``zk`` (then ``host`` lists ZooKeeper servers, port default
                                2181, and ``extra.zk_path`` defaults to ``/mesos``). A ``host``
                                holding ``://`` is taken as it is (``zk://zk1:2181/mesos``).
``extra.master``                the master as one string, winning over host/port/schema
                                (``https://m1:5050,https://m2:5050`` or ``zk://...``)
login / password                ``principal`` / ``secret`` (HTTP basic auth; the secret is
                                masked in every log and never shown)
``extra.role``, ``user``,       the :class:`~sightlines.mesos.MesosConfig` fields of the same
``verify``, ``failover_timeout``  name: ``verify`` is ``true``/``false`` or the path of a CA
``offer_timeout`` ...           bundle; numbers may be given as strings (URI form)
``extra.docker_image``,         :class:`MesosTaskDefaults`: run the step in this image (agents
``docker_force_pull``           with the Docker containerizer), pull it every time
``extra.step_command``          the program that runs a step, before ``step ... --json``
                                (default ``python -m sightlines``; a string or a list)
``extra.credentials``           ``agent`` (default) or ``task_env``: see
                                :mod:`sightlines_airflow.backends.mesos`
``extra.env``, ``labels``,      extra non-secret environment, task labels, and the disk to
``disk_mb``                     reserve (MiB; a number, or ``{"extract": 20480, "*": 2048}``)
==============================  ==============================================================

Examples
--------
A connection in the environment (JSON form; ``airflow connections add`` works too)::

    export AIRFLOW_CONN_SIGHTLINES_MESOS='{"conn_type": "mesos", "host": "m1:5050,m2:5050",
        "schema": "https", "login": "sightlines", "password": "...",
        "extra": {"role": "sightlines", "verify": "/etc/ssl/mesos-ca.pem",
                  "docker_image": "registry.example/sightlines:1.4"}}'

The mapping itself is a pure function:

>>> settings = settings_from_connection("sightlines_mesos", host="m1:5050,m2", schema="https",
...                                     login="sl", password="s3cret", extra={"role": "batch"})
>>> settings.config.masters, settings.config.role, settings.config.principal
(('https://m1:5050', 'https://m2:5050'), 'batch', 'sl')
>>> "s3cret" in repr(settings)
False
>>> settings_from_connection("zk", host="zk1,zk2:2182", schema="zk").config.masters
('zk://zk1:2181,zk2:2182/mesos',)
"""

from __future__ import annotations

import dataclasses
import json
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from airflow.sdk import BaseHook

from sightlines.mesos import MesosConfig, MesosConfigError

__all__ = [
    "CONFIG_KEYS",
    "DEFAULT_CONN_ID",
    "TASK_KEYS",
    "MesosHook",
    "MesosSettings",
    "MesosTaskDefaults",
    "describe_master",
    "override_config",
    "settings_from_connection",
]

DEFAULT_CONN_ID = "sightlines_mesos"
DEFAULT_MASTER_PORT = 5050
DEFAULT_ZK_PORT = 2181
#: the two credential policies of step tasks (see the backend's module docstring)
CREDENTIAL_MODES = ("agent", "task_env")

#: :class:`MesosConfig` fields that a connection's extra may set (master and credentials have their own fields)
CONFIG_KEYS: tuple[str, ...] = tuple(
    name for name in MesosConfig.__dataclass_fields__ if name not in ("master", "principal", "secret"))
#: task-level keys of a connection's extra (also accepted as backend options)
TASK_KEYS: tuple[str, ...] = ("step_command", "docker_image", "docker_force_pull", "credentials", "env",
                              "labels", "disk_mb")
#: other keys of a connection's extra
_OTHER_KEYS = ("master", "zk_path")

_FLOAT_KEYS = frozenset({"failover_timeout", "heartbeat_tolerance", "connect_timeout", "request_timeout",
                         "reconnect_timeout", "backoff_initial", "backoff_max", "offer_timeout",
                         "decline_refuse_seconds", "reconcile_interval", "kill_grace_period"})
_INT_KEYS = frozenset({"max_relaunches"})
_BOOL_KEYS = frozenset({"checkpoint", "docker_force_pull"})
_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")


def _mask(value: str | None) -> None:
    """Mask ``value`` in every log (unnamed: Airflow masks a *named* secret only if the name looks sensitive)."""
    if not value:
        return
    try:
        from airflow.sdk.log import mask_secret
    except ImportError:  # pragma: no cover - older Airflow
        from airflow.utils.log.secrets_masker import mask_secret  # type: ignore[no-redef]
    mask_secret(value)


@dataclass(frozen=True)
class MesosTaskDefaults:
    """What every step task gets unless the DAG's backend options say otherwise.

    Parameters
    ----------
    step_command : tuple of str, default=("python", "-m", "sightlines")
        The program that runs a step; ``step STEP --client ... --json`` is appended.
    docker_image : str, optional
        Run steps inside this image (agents need the Docker containerizer); None runs a plain command.
    docker_force_pull : bool, default=False
        Pull the image on every launch.
    credentials : {"agent", "task_env"}, default="agent"
        Where a step's storage credentials come from (see :mod:`sightlines_airflow.backends.mesos`).
    env : mapping of str to str
        Extra, non-secret environment variables of every step.
    labels : mapping of str to str
        Extra Mesos task labels.
    disk_mb : float or mapping, default=0
        Disk to reserve (MiB): one number for every step, or per step (``{"extract": 20480, "*": 2048}``).
    """

    step_command: tuple[str, ...] = ("python", "-m", "sightlines")
    docker_image: str | None = None
    docker_force_pull: bool = False
    credentials: str = "agent"
    env: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    disk_mb: float | Mapping[str, float] = 0.0

    @classmethod
    def build(cls, values: Mapping[str, Any], *, where: str) -> "MesosTaskDefaults":
        """Validate and coerce ``values`` (keys of :data:`TASK_KEYS`); ``where`` names their source in errors."""
        out: dict[str, Any] = {}
        for key, value in values.items():
            if value is None:
                continue
            if key == "step_command":
                out[key] = _command(value, where)
            elif key == "docker_image":
                if not isinstance(value, str) or not value.strip():
                    raise MesosConfigError(f"{where}: docker_image={value!r}; give an image reference like "
                                           "'registry.example/sightlines:1.4', or leave it out to run a plain command.")
                out[key] = value.strip()
            elif key == "docker_force_pull":
                out[key] = _bool(value, key, where)
            elif key == "credentials":
                if value not in CREDENTIAL_MODES:
                    raise MesosConfigError(f"{where}: credentials={value!r}; expected one of {list(CREDENTIAL_MODES)} "
                                           "('agent': the agents hold storage credentials, the safe default; "
                                           "'task_env': pass them in the task's environment).")
                out[key] = value
            elif key in ("env", "labels"):
                out[key] = _str_mapping(value, key, where)
            elif key == "disk_mb":
                out[key] = _disk(value, where)
            else:  # pragma: no cover - callers pass TASK_KEYS only
                raise MesosConfigError(f"{where}: unknown task setting {key!r}.")
        return cls(**out)

    def disk_for(self, step: str) -> float:
        """The disk (MiB) to reserve for ``step`` (0: none)."""
        if isinstance(self.disk_mb, Mapping):
            return float(self.disk_mb.get(step, self.disk_mb.get("*", 0.0)))
        return float(self.disk_mb)


@dataclass(frozen=True)
class MesosSettings:
    """Everything a connection says: the cluster and the defaults of step tasks.

    Parameters
    ----------
    conn_id : str
        The Airflow connection they come from.
    config : MesosConfig
        The cluster (never shows its secret).
    task_defaults : MesosTaskDefaults
        Defaults of every step task.
    """

    conn_id: str
    config: MesosConfig
    task_defaults: MesosTaskDefaults = field(default_factory=MesosTaskDefaults)


def _bool(value: Any, key: str, where: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
        return value.strip().lower() in _TRUE
    raise MesosConfigError(f"{where}: {key}={value!r}; expected true or false.")


def _number(value: Any, key: str, where: str, kind: type) -> float | int:
    if isinstance(value, bool):
        raise MesosConfigError(f"{where}: {key}={value!r}; expected a number.")
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise MesosConfigError(f"{where}: {key}={value!r}; expected {'an integer' if kind is int else 'a number'}."
                               ) from None
    return number


def _command(value: Any, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        import shlex

        parts = shlex.split(value)
    elif isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        parts = list(value)
    else:
        parts = []
    if not parts or not parts[0]:
        raise MesosConfigError(f"{where}: step_command={value!r}; give the program that runs a step, e.g. "
                               "'python -m sightlines' or ['/opt/sightlines/bin/sightlines'].")
    return tuple(parts)


def _str_mapping(value: Any, key: str, where: str) -> dict[str, str]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            value = None
    if not isinstance(value, Mapping) or not all(isinstance(k, str) and k for k in value):
        raise MesosConfigError(f"{where}: {key} must be a JSON object of names to strings, e.g. "
                               '{"TZ": "UTC"}; got ' f"{value!r}.")
    return {k: str(v) for k, v in value.items()}


def _disk(value: Any, where: str) -> float | dict[str, float]:
    if isinstance(value, str) and value.strip().startswith("{"):
        try:
            value = json.loads(value)
        except ValueError:
            pass
    if isinstance(value, Mapping):
        out = {str(k): float(_number(v, f"disk_mb[{k!r}]", where, float)) for k, v in value.items()}
    else:
        out = float(_number(value, "disk_mb", where, float))
    for amount in (out.values() if isinstance(out, dict) else [out]):
        if amount < 0:
            raise MesosConfigError(f"{where}: disk_mb={value!r}; expected MiB >= 0 (0 reserves no disk).")
    return out


def _master(conn_id: str, host: str | None, port: int | None, schema: str | None,
            extra: Mapping[str, Any]) -> str:
    """The master string of a connection: ``extra.master``, a full URL in ``host``, or host/port/schema."""
    where = f"Airflow connection {conn_id!r}"
    if extra.get("master"):
        return str(extra["master"]).strip()
    host = (host or "").strip()
    if not host:
        raise MesosConfigError(
            f"{where} names no Mesos master: set its host (e.g. 'mesos-master:5050', or 'zk1:2181,zk2:2181' with "
            "schema 'zk') or extra.master (e.g. 'https://m1:5050,https://m2:5050' or 'zk://zk1:2181/mesos').")
    if "://" in host:
        return host
    scheme = (schema or "http").strip().lower() or "http"
    hosts = [h.strip() for h in host.split(",") if h.strip()]
    if scheme == "zk":
        default = port or DEFAULT_ZK_PORT
        path = "/" + str(extra.get("zk_path") or "/mesos").strip("/")
        return "zk://" + ",".join(h if ":" in h else f"{h}:{default}" for h in hosts) + path
    if scheme not in ("http", "https"):
        raise MesosConfigError(f"{where}: schema={schema!r}; expected 'http', 'https' or 'zk'.")
    default = port or DEFAULT_MASTER_PORT
    return ",".join(f"{scheme}://{h if ':' in h else f'{h}:{default}'}" for h in hosts)


def settings_from_connection(
    conn_id: str,
    *,
    host: str | None = None,
    port: int | None = None,
    schema: str | None = None,
    login: str | None = None,
    password: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> MesosSettings:
    """Turn the fields of an Airflow connection into :class:`MesosSettings` (no Airflow needed).

    Parameters
    ----------
    conn_id : str
        The connection's id (named in error messages).
    host, port, schema, login, password
        The connection's fields (see the module docstring).
    extra : mapping, optional
        The connection's extra (``extra_dejson``).

    Returns
    -------
    MesosSettings

    Raises
    ------
    sightlines.mesos.MesosConfigError
        A field is missing, unknown or invalid; the message names the connection and the field.
    """
    extra = dict(extra or {})
    where = f"Airflow connection {conn_id!r}"
    known = set(CONFIG_KEYS) | set(TASK_KEYS) | set(_OTHER_KEYS)
    unknown = sorted(set(extra) - known)
    if unknown:
        raise MesosConfigError(f"{where}: unknown extra key(s) {unknown}; known keys are {sorted(known)}.")
    values: dict[str, Any] = {}
    for key in CONFIG_KEYS:
        if key not in extra or extra[key] is None or extra[key] == "":
            continue
        value = extra[key]
        if key in _FLOAT_KEYS:
            value = _number(value, key, where, float)
        elif key in _INT_KEYS:
            value = _number(value, key, where, int)
        elif key in _BOOL_KEYS:
            value = _bool(value, key, where)
        elif key == "verify":
            value = value if isinstance(value, bool) else (
                _bool(value, key, where) if str(value).strip().lower() in _TRUE + _FALSE else str(value))
        values[key] = value
    master = _master(conn_id, host, port, schema, extra)
    principal = login or None
    secret = password or None
    if principal is None and secret is not None:
        raise MesosConfigError(f"{where} has a password but no login; the login is the Mesos principal.")
    if principal is not None and secret is None:
        raise MesosConfigError(f"{where} has a login ({principal!r}) but no password; give the principal's "
                               "secret as the connection's password, or clear the login to connect without auth.")
    _mask(secret)
    if master.startswith("zk://"):
        authority = master[len("zk://"):].split("/", 1)[0]
        if "@" in authority:  # zk://user:password@hosts/path
            _mask(urllib.parse.unquote(authority.rsplit("@", 1)[0].partition(":")[2]))
    try:
        config = MesosConfig(master=master, principal=principal, secret=secret, **values)
    except MesosConfigError as exc:
        raise MesosConfigError(f"{where}: {exc.message}") from None
    defaults = MesosTaskDefaults.build({k: extra[k] for k in TASK_KEYS if k in extra}, where=where)
    return MesosSettings(conn_id=conn_id, config=config, task_defaults=defaults)


class MesosHook(BaseHook):
    """The Mesos cluster of an Airflow connection, as :class:`MesosSettings` (cached, built on first use).

    Parameters
    ----------
    mesos_conn_id : str, default="sightlines_mesos"
        The Airflow connection (see the module docstring for its fields).

    Notes
    -----
    The worker calls :meth:`get_settings` (or :meth:`get_conn`); the triggerer,
    whose event loop must not block, calls :meth:`aget_settings`. Both cache.
    """

    conn_name_attr = "mesos_conn_id"
    default_conn_name = DEFAULT_CONN_ID
    conn_type = "mesos"
    hook_name = "Sightlines Mesos"

    def __init__(self, mesos_conn_id: str = DEFAULT_CONN_ID) -> None:
        super().__init__()
        self.mesos_conn_id = mesos_conn_id
        self._settings: MesosSettings | None = None

    def _from(self, conn: Any) -> MesosSettings:
        settings = settings_from_connection(
            self.mesos_conn_id, host=conn.host, port=conn.port, schema=conn.schema, login=conn.login,
            password=conn.password, extra=conn.extra_dejson)
        self.log.info("Mesos connection %r: master %s, role %r, %s", self.mesos_conn_id,
                      describe_master(settings.config), settings.config.role,
                      f"steps in image {settings.task_defaults.docker_image}" if settings.task_defaults.docker_image
                      else "steps as plain commands (no image)")
        self._settings = settings
        return settings

    def get_settings(self) -> MesosSettings:
        """The connection's settings (read once, then cached).

        Raises
        ------
        airflow.sdk.exceptions.AirflowNotFoundException
            The connection does not exist: create it (``airflow connections add sightlines_mesos ...``).
        sightlines.mesos.MesosConfigError
            A field is invalid; the message says which and how to fix it.
        """
        if self._settings is None:
            self._from(self.get_connection(self.mesos_conn_id))
        assert self._settings is not None
        return self._settings

    async def aget_settings(self) -> MesosSettings:
        """Same as :meth:`get_settings`, for the triggerer's event loop."""
        if self._settings is None:
            self._from(await self.aget_connection(self.mesos_conn_id))
        assert self._settings is not None
        return self._settings

    def get_conn(self) -> MesosConfig:
        """The cluster's :class:`~sightlines.mesos.MesosConfig`."""
        return self.get_settings().config


def describe_master(config: MesosConfig) -> str:
    """The master URL(s) of ``config`` for a log line, without ZooKeeper credentials."""
    shown = []
    for url in config.masters:
        scheme, sep, rest = url.partition("://")
        authority, slash, path = rest.partition("/")
        if sep and "@" in authority:
            url = f"{scheme}://***@{authority.rsplit('@', 1)[1]}{slash}{path}"
        shown.append(url)
    return ",".join(shown)


def override_config(settings: MesosSettings, overrides: Mapping[str, Any]) -> MesosSettings:
    """``settings`` with some :class:`MesosConfig` fields replaced (a DAG's backend options), validated again.

    Raises
    ------
    sightlines.mesos.MesosConfigError
        An override names the master or the credentials (they come from the connection only), an unknown
        field, or an invalid value.
    """
    if not overrides:
        return settings
    where = f"backend option 'config' (on top of connection {settings.conn_id!r})"
    bad = sorted(set(overrides) - set(CONFIG_KEYS))
    if bad:
        raise MesosConfigError(f"{where}: cannot set {bad}; settable: {sorted(CONFIG_KEYS)} (the master and "
                               "credentials come from the connection only).")
    try:
        config = dataclasses.replace(settings.config, **dict(overrides))
    except MesosConfigError as exc:
        raise MesosConfigError(f"{where}: {exc.message}") from None
    return dataclasses.replace(settings, config=config)
