"""Finding the leading Mesos master.

Two ways, chosen by :attr:`MesosConfig.master`:

* **a list of master URLs** -- each is asked ``GET_MASTER`` on the operator API
  in turn; the leader answers 200, a standby answers ``307`` with the leader's
  address in ``Location``, which is followed.
* **``zk://host1:2181,host2:2181/mesos``** -- masters that take part in the
  election own sequential ephemeral znodes ``json.info_<sequence>`` under the
  path, holding their ``MasterInfo`` as JSON; the leader is the one with the
  lowest sequence number. Read with kazoo.

Examples
--------
>>> leader_znode(["log_replicas", "json.info_0000000012", "json.info_0000000009"])
'json.info_0000000009'
>>> master_url_from_info(b'{"address": {"hostname": "m2", "ip": "10.0.0.2", "port": 5050}, "port": 5050}')
'http://m2:5050'
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import socket
import struct
import urllib.parse
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Protocol

import httpx

from ._http import describe_transport_error, post_json, auth_error
from .config import MesosConfig
from .errors import MasterNotFoundError, MesosConfigError

__all__ = [
    "MasterDetector",
    "StaticDetector",
    "ZooKeeperDetector",
    "ZkTarget",
    "parse_zk_url",
    "leader_znode",
    "master_url_from_info",
    "detector_for",
]

logger = logging.getLogger(__name__)

#: prefix of the znodes masters register under (JSON-encoded MasterInfo)
ZNODE_PREFIX = "json.info_"


class MasterDetector(Protocol):
    """Anything that can tell the base URL of the leading master."""

    async def detect(self) -> str:  # pragma: no cover - protocol
        """Return the leading master's base URL, e.g. ``https://m2:5050``."""
        ...


class StaticDetector:
    """Find the leader among a fixed list of master URLs.

    Parameters
    ----------
    urls : sequence of str
        Master base URLs, tried in order.
    http : httpx.AsyncClient
        Client to ask with (owned by the caller).
    config : MesosConfig
        For timeouts and error messages.
    """

    def __init__(self, urls: Iterable[str], http: httpx.AsyncClient, config: MesosConfig):
        self.urls = tuple(urls)
        self._http = http
        self._config = config

    async def detect(self) -> str:
        """Ask each master ``GET_MASTER``; follow redirects; return the one that answers 200.

        Raises
        ------
        MasterNotFoundError
            When no URL leads to a master that answers.
        MesosAuthError
            When a master refuses the credentials.
        """
        problems: list[str] = []
        timeout = httpx.Timeout(self._config.request_timeout, connect=self._config.connect_timeout)
        for url in self.urls:
            try:
                response, leader = await post_json(self._http, url, "/api/v1", {"type": "GET_MASTER"}, timeout=timeout)
            except httpx.TransportError as exc:
                problems.append(describe_transport_error(url, exc))
                continue
            if response.status_code == 200:
                if leader != url:
                    logger.info("Mesos master %s redirected to the leader %s", url, leader)
                return leader
            if response.status_code in (401, 403):
                raise auth_error(url, response, self._config, "the operator API call GET_MASTER")
            problems.append(f"{url}: HTTP {response.status_code} {response.text.strip()[:200]}")
        raise MasterNotFoundError(
            "No leading Mesos master found. Tried: " + "; ".join(problems) + ". "
            "Check MesosConfig.master and that a leader is elected."
        )


@dataclass(frozen=True)
class ZkTarget:
    """The parts of a ``zk://`` URL."""

    hosts: str
    path: str
    credentials: str | None = field(default=None, repr=False)

    def __str__(self) -> str:
        return f"zk://{self.hosts}{self.path}"


def parse_zk_url(url: str) -> ZkTarget:
    """Split ``zk://[user:password@]h1:2181,h2:2181/mesos`` into hosts, path and credentials.

    Examples
    --------
    >>> parse_zk_url("zk://z1:2181,z2:2181/mesos")
    ZkTarget(hosts='z1:2181,z2:2181', path='/mesos')
    """
    if not url.startswith("zk://"):
        raise MesosConfigError(f"Not a ZooKeeper URL: it must start with zk:// (got {url[:12]!r}...).")
    rest = url[len("zk://"):]
    credentials = None
    if "@" in rest.split("/", 1)[0]:
        credentials, rest = rest.split("@", 1)
        credentials = urllib.parse.unquote(credentials)
    hosts, slash, path = rest.partition("/")
    path = "/" + path.strip("/") if slash else ""
    if not hosts or not path or path == "/":
        raise MesosConfigError(
            "The ZooKeeper URL needs hosts and a path, e.g. zk://zk1:2181,zk2:2181/mesos "
            f"(got hosts={hosts!r}, path={path!r})."
        )
    return ZkTarget(hosts=hosts, path=path, credentials=credentials)


def _sequence(name: str) -> int | None:
    suffix = name[len(ZNODE_PREFIX):]
    return int(suffix) if name.startswith(ZNODE_PREFIX) and suffix.isdigit() else None


def leader_znode(children: Iterable[str]) -> str | None:
    """The leading master's znode: the ``json.info_*`` child with the lowest sequence number."""
    candidates = [(seq, name) for name in children if (seq := _sequence(name)) is not None]
    return min(candidates)[1] if candidates else None


def _ip_from_int(value: int) -> str:
    # MasterInfo.ip is the IPv4 address in network byte order read as a little-endian uint32
    return socket.inet_ntoa(struct.pack("<I", value & 0xFFFFFFFF))


def _host_for_url(host: str) -> str:
    try:
        if ipaddress.ip_address(host).version == 6:
            return f"[{host}]"
    except ValueError:
        pass
    return host


def master_url_from_info(data: bytes | str, scheme: str = "http") -> str:
    """Base URL of a master from its JSON ``MasterInfo`` (the data of a ``json.info_*`` znode).

    The hostname is preferred (TLS certificates name hosts), then the IP
    address, then the address in ``pid`` (``master@10.0.0.2:5050``), then the
    packed integer ``ip``.

    Raises
    ------
    MasterNotFoundError
        When the data is not a MasterInfo with an address.
    """
    try:
        info: dict[str, Any] = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MasterNotFoundError(
            f"The leader's znode does not hold JSON MasterInfo ({exc}); is this a Mesos master path?"
        ) from None
    if not isinstance(info, dict):
        raise MasterNotFoundError("The leader's znode does not hold a JSON object; is this a Mesos master path?")
    address = info.get("address") or {}
    port = address.get("port") or info.get("port")
    host = address.get("hostname") or info.get("hostname") or address.get("ip")
    pid = str(info.get("pid", ""))
    if (not host or not port) and "@" in pid:
        pid_host, _, pid_port = pid.split("@", 1)[1].rpartition(":")
        host = host or pid_host
        port = port or (int(pid_port) if pid_port.isdigit() else None)
    if not host and isinstance(info.get("ip"), int):
        host = _ip_from_int(info["ip"])
    if not host or not port:
        raise MasterNotFoundError(f"The leader's MasterInfo has no usable address (keys: {sorted(info)}).")
    return f"{scheme}://{_host_for_url(str(host))}:{int(port)}"


class KazooLike(Protocol):
    """The part of ``kazoo.client.KazooClient`` the detector uses."""

    def start(self, timeout: float = ...) -> None: ...  # pragma: no cover
    def get_children(self, path: str) -> list[str]: ...  # pragma: no cover
    def get(self, path: str) -> tuple[bytes, Any]: ...  # pragma: no cover
    def stop(self) -> None: ...  # pragma: no cover
    def close(self) -> None: ...  # pragma: no cover


def _kazoo_client(target: ZkTarget, timeout: float) -> KazooLike:
    from kazoo.client import KazooClient  # imported lazily: only zk:// users need it

    auth = [("digest", target.credentials)] if target.credentials else None
    return KazooClient(hosts=target.hosts, timeout=timeout, auth_data=auth, read_only=True)


class ZooKeeperDetector:
    """Find the leader from ZooKeeper.

    Parameters
    ----------
    url : str
        ``zk://[user:password@]host1:2181,host2:2181/mesos``.
    scheme : str, default="http"
        Scheme of the returned master URL (ZooKeeper does not record it).
    timeout : float, default=10
        Seconds to connect to ZooKeeper.
    client_factory : callable, optional
        ``(ZkTarget, timeout) -> KazooClient``-like object; tests inject a fake here.
    """

    def __init__(
        self,
        url: str,
        *,
        scheme: str = "http",
        timeout: float = 10.0,
        client_factory: Callable[[ZkTarget, float], KazooLike] | None = None,
    ):
        self.target = parse_zk_url(url)
        self.scheme = scheme
        self.timeout = timeout
        self._client_factory = client_factory or _kazoo_client

    async def detect(self) -> str:
        """Read the leader's MasterInfo from ZooKeeper (in a worker thread: kazoo blocks)."""
        return await asyncio.to_thread(self.detect_sync)

    def detect_sync(self) -> str:
        """Blocking version of :meth:`detect`."""
        from kazoo.exceptions import KazooException, NoNodeError

        client = self._client_factory(self.target, self.timeout)
        try:
            try:
                client.start(timeout=self.timeout)
            except Exception as exc:  # kazoo raises its own timeout type from its handler module
                raise MasterNotFoundError(
                    f"Could not connect to ZooKeeper {self.target} within {self.timeout:g}s ({type(exc).__name__}). "
                    "Check the zk:// hosts in MesosConfig.master."
                ) from None
            for _ in range(3):  # the leader can step down between listing and reading
                try:
                    name = leader_znode(client.get_children(self.target.path))
                    if name is None:
                        raise MasterNotFoundError(
                            f"No Mesos master is registered under {self.target} (no {ZNODE_PREFIX}* znodes): "
                            "no leader is elected, or the path is wrong."
                        )
                    data, _stat = client.get(f"{self.target.path}/{name}")
                except NoNodeError:
                    continue
                except KazooException as exc:
                    raise MasterNotFoundError(f"Reading {self.target} failed: {type(exc).__name__}: {exc}") from None
                url = master_url_from_info(data, self.scheme)
                logger.info("ZooKeeper %s names %s (%s) as the leading Mesos master", self.target, url, name)
                return url
            raise MasterNotFoundError(f"The leading master kept changing while reading {self.target}; try again.")
        finally:
            try:
                client.stop()
                client.close()
            except Exception:  # pragma: no cover - best effort
                logger.debug("Closing the ZooKeeper client failed", exc_info=True)


def detector_for(config: MesosConfig, http: httpx.AsyncClient) -> MasterDetector:
    """The detector that :attr:`MesosConfig.master` asks for."""
    masters = config.masters
    if masters[0].startswith("zk://"):
        return ZooKeeperDetector(masters[0], scheme=config.zk_scheme, timeout=config.connect_timeout)
    return StaticDetector(masters, http, config)
