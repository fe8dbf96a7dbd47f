"""Per-client configuration: thresholds, where the event roles live in the JSON, training knobs.

A client's entry in the registry holds only what differs from the defaults;
:func:`ClientConfig.from_dict` fills in the rest and refuses unknown keys with a
message that lists the known ones.

Examples
--------
>>> cfg = ClientConfig.from_dict({"bad_fraction_max": 0.1, "roles": {"purchases": "orders"}})
>>> cfg.bad_fraction_max, cfg.roles.purchases, cfg.roles.messages
(0.1, 'orders', 'messages')
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigError

__all__ = ["ClientConfig", "Roles", "TrainingConfig"]


@dataclass(frozen=True)
class Roles:
    """Where each event role lives in a profile, as dotted paths.

    The defaults are DESIGN §2's known shape. ``optout`` points at a timestamp
    (a user opted out at most once); the other event roles point at arrays of
    records that carry a ``time`` field (``time_field``).
    """

    id: str = "id"
    created: str = "created"
    purchases: str = "purchases"
    messages: str = "messages"
    pageviews: str = "pageviews"
    optout: str = "optout.time"
    time_field: str = "time"
    #: inside a purchase: the order total, and the list of items (with ``sku``/``title``/``price``/``qty``)
    order_total: str = "total"
    order_items: str = "items"
    item_sku: str = "sku"
    #: inside a message: the open and click timestamps (null when it did not happen)
    message_opened: str = "opened"
    message_clicked: str = "clicked"

    def event_roles(self) -> dict[str, str]:
        """Role name -> path, for the roles that are arrays of timestamped records."""
        return {"purchases": self.purchases, "messages": self.messages, "pageviews": self.pageviews}


@dataclass(frozen=True)
class TrainingConfig:
    """Training knobs (DESIGN §3). Defaults are what the benchmarks were run with."""

    sample_size: int = 200_000
    cv_sample_size: int = 20_000
    depths: tuple[int, ...] = (3, 5, 7)
    learning_rates: tuple[float, ...] = (0.05, 0.1, 0.2)
    folds: int = 5
    max_trees: int = 250
    early_stopping: int = 10
    min_users: int = 200
    min_positives: int = 20
    seed: int = 7


@dataclass(frozen=True)
class ClientConfig:
    """Everything configurable about one client.

    Parameters
    ----------
    bad_fraction_max : float, default=0.05
        A snapshot with more than this fraction of bad records fails extraction.
    roles : Roles
        Where the event roles live in the profile JSON.
    sightlines : tuple of dict
        Extra catalogue entries (see :mod:`sightlines.catalog`).
    disabled_sightlines : tuple of str
        Catalogue sightlines this client does not want.
    training : TrainingConfig
        Sample size, grid, folds.
    backend : str or None
        Compute backend for this client's Airflow tasks (``local``/``mesos``);
        None uses the fleet default.
    """

    bad_fraction_max: float = 0.05
    roles: Roles = field(default_factory=Roles)
    sightlines: tuple[dict[str, Any], ...] = ()
    disabled_sightlines: tuple[str, ...] = ()
    training: TrainingConfig = field(default_factory=TrainingConfig)
    backend: str | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None, *, client: str | None = None) -> ClientConfig:
        """Build a config from a (partial) dict; unknown keys raise :class:`ConfigError`."""
        data = dict(data or {})
        where = f"client {client!r}: " if client else ""
        _reject_unknown(cls, data, where)
        kwargs: dict[str, Any] = {}
        if "bad_fraction_max" in data:
            v = data["bad_fraction_max"]
            if not isinstance(v, (int, float)) or not 0 <= v <= 1:
                raise ConfigError(f"{where}bad_fraction_max is {v!r}; expected a number between 0 and 1")
            kwargs["bad_fraction_max"] = float(v)
        if "roles" in data:
            roles = dict(data["roles"] or {})
            _reject_unknown(Roles, roles, f"{where}roles: ")
            for k, v in roles.items():
                if not isinstance(v, str) or not v or v.startswith(".") or v.endswith(".") or ".." in v:
                    raise ConfigError(f"{where}roles.{k} is {v!r}; expected a dotted JSON path like 'orders' or 'optout.time'")
            kwargs["roles"] = Roles(**roles)
        if "sightlines" in data:
            items = data["sightlines"] or []
            if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
                raise ConfigError(f"{where}sightlines must be a list of objects")
            kwargs["sightlines"] = tuple(items)
        if "disabled_sightlines" in data:
            kwargs["disabled_sightlines"] = tuple(str(s) for s in data["disabled_sightlines"] or ())
        if "training" in data:
            tr = dict(data["training"] or {})
            _reject_unknown(TrainingConfig, tr, f"{where}training: ")
            for k in ("depths", "learning_rates"):
                if k in tr:
                    if not isinstance(tr[k], (list, tuple)) or not tr[k]:
                        raise ConfigError(f"{where}training.{k} must be a non-empty list")
                    tr[k] = tuple(tr[k])
            for k in ("sample_size", "cv_sample_size", "folds", "max_trees", "early_stopping", "min_users",
                      "min_positives"):
                if k in tr and (not isinstance(tr[k], int) or tr[k] < 1):
                    raise ConfigError(f"{where}training.{k} is {tr[k]!r}; expected a positive integer")
            if tr.get("folds", 5) < 2:
                raise ConfigError(f"{where}training.folds must be at least 2")
            kwargs["training"] = TrainingConfig(**tr)
        if "backend" in data:
            if data["backend"] not in (None, "local", "mesos"):
                raise ConfigError(f"{where}backend is {data['backend']!r}; expected 'local', 'mesos' or null")
            kwargs["backend"] = data["backend"]
        return cls(**kwargs)

    def to_dict(self, *, only_changes: bool = True) -> dict[str, Any]:
        """The config as plain data; by default only the fields that differ from the defaults."""
        full = dataclasses.asdict(self)
        if not only_changes:
            return full
        default = dataclasses.asdict(ClientConfig())
        out: dict[str, Any] = {}
        for k, v in full.items():
            if isinstance(v, dict):
                diff = {kk: vv for kk, vv in v.items() if default[k].get(kk) != vv}
                if diff:
                    out[k] = diff
            elif v != default[k]:
                out[k] = list(v) if isinstance(v, tuple) else v
        return out


def _reject_unknown(cls: type, data: dict[str, Any], where: str) -> None:
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"{where}unknown setting(s) {unknown}; known settings are {sorted(known)}")
