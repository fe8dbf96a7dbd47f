"""The client registry: one small JSON file under the storage root.

``registry.json`` lists every client with the parts of its config that differ
from the defaults (``sightlines clients add`` / ``list``). Airflow reads it at
DAG-parse time, so reading is one file read and one ``orjson`` parse
(about 10 ms for 10,000 clients, see ``bench/bench_registry.py``).

Examples
--------
>>> from sightlines.storage import Storage
>>> store = Storage("memory://doctest-registry")
>>> reg = add_clients(store, ["acme", "globex"], config={"bad_fraction_max": 0.1})
>>> load_registry(store).names()
['acme', 'globex']
>>> load_registry(store).config("acme").bad_fraction_max
0.1
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from .config import ClientConfig
from .errors import ConfigError, NotFoundError
from .storage import Storage, validate_client_id

__all__ = ["Registry", "load_registry", "add_clients", "remove_clients", "REGISTRY_KEY"]

REGISTRY_KEY = "registry.json"


@dataclass
class Registry:
    """Clients and their config overrides (as stored)."""

    clients: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: fleet-wide settings (e.g. ``{"backend": "local"}``)
    fleet: dict[str, Any] = field(default_factory=dict)

    def names(self) -> list[str]:
        """Client ids, sorted."""
        return sorted(self.clients)

    def config(self, client: str) -> ClientConfig:
        """The full config of ``client`` (defaults filled in)."""
        if client not in self.clients:
            raise ConfigError(
                f"client {client!r} is not in the registry; add it with `sightlines clients add {client}`",
                record_id=client,
            )
        return ClientConfig.from_dict(self.clients[client], client=client)

    def backend(self, client: str) -> str:
        """The compute backend of ``client``: its own setting, else the fleet's, else ``local``."""
        own = (self.clients.get(client) or {}).get("backend")
        return own or self.fleet.get("backend") or "local"

    def to_json(self) -> dict[str, Any]:
        return {"version": 1, "fleet": self.fleet, "clients": {k: self.clients[k] for k in sorted(self.clients)}}


def _source(root: Storage | str | None) -> Storage:
    return root if isinstance(root, Storage) else Storage(root)


def load_registry(root: Storage | str | None = None, *, path: str | None = None) -> Registry:
    """Read the registry of ``root`` (or of the local file ``path`` / ``$SIGHTLINES_REGISTRY``).

    A missing registry is an empty one. The registry is parsed but the client
    configs are validated only when :meth:`Registry.config` is called, so that
    one bad entry cannot stop 10,000 DAGs from parsing.
    """
    import orjson

    path = path or os.environ.get("SIGHTLINES_REGISTRY")
    try:
        if path:
            with open(path, "rb") as f:
                data = orjson.loads(f.read())
        else:
            data = _source(root).read_json(REGISTRY_KEY)
    except (NotFoundError, FileNotFoundError):
        return Registry()
    if not isinstance(data, dict) or not isinstance(data.get("clients", {}), dict):
        raise ConfigError(f"registry {path or REGISTRY_KEY} is malformed: expected {{'clients': {{...}}}}")
    return Registry(clients=dict(data.get("clients") or {}), fleet=dict(data.get("fleet") or {}))


def _save(store: Storage, reg: Registry) -> None:
    store.write_json(REGISTRY_KEY, reg.to_json())


@contextlib.contextmanager
def _editing(store: Storage) -> Iterator[None]:
    """Serialise read-modify-write edits of a local registry (two ``sightlines clients ...`` at once).

    On a local root an exclusive ``flock`` on ``.registry.lock`` beside the
    file; the write itself is atomic (temporary name, then rename). Object
    stores have no such lock: there, edit the registry from one place (a
    deploy job or one operator), as concurrent edits may lose one of them.
    """
    if not store.is_local:
        yield
        return
    import fcntl

    lock_path = store.url_of(".registry.lock")  # a local path on a local root
    os.makedirs(os.path.dirname(lock_path), exist_ok=True)
    with open(lock_path, "a+b") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def add_clients(
    root: Storage | str | None, names: list[str], *, config: dict[str, Any] | None = None, replace: bool = False
) -> Registry:
    """Add (or update) clients; ``config`` holds their overrides and is validated first."""
    store = _source(root)
    ClientConfig.from_dict(config)  # validate before writing anything
    for name in names:
        validate_client_id(name)
    with _editing(store):
        reg = load_registry(store)
        for name in names:
            current = {} if replace else dict(reg.clients.get(name) or {})
            current.update(config or {})
            reg.clients[name] = current
        _save(store, reg)
    return reg


def remove_clients(root: Storage | str | None, names: list[str]) -> Registry:
    """Remove clients from the registry (their data stays in storage)."""
    store = _source(root)
    with _editing(store):
        reg = load_registry(store)
        for name in names:
            reg.clients.pop(name, None)
        _save(store, reg)
    return reg


def set_fleet(root: Storage | str | None, **settings: Any) -> Registry:
    """Set fleet-wide settings, e.g. ``set_fleet(root, backend="mesos")``."""
    store = _source(root)
    if "backend" in settings and settings["backend"] not in ("local", "mesos"):
        raise ConfigError(f"fleet backend is {settings['backend']!r}; expected 'local' or 'mesos'")
    with _editing(store):
        reg = load_registry(store)
        reg.fleet.update(settings)
        _save(store, reg)
    return reg
