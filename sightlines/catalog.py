"""The sightline catalogue: what each prediction measures, over which window, with which objective.

The catalogue is data (``catalog.json`` beside this module): each entry names
an event role, an aggregate over the events in the window ``(T, T + horizon]``,
and a LightGBM objective. A client adds its own entries (a quantile objective
included) in its registry config under ``sightlines``, or disables defaults
with ``disabled_sightlines``.

Aggregates: ``any`` (at least one event, binary), ``count``, ``sum`` of a
field, ``mean`` of a field per event, ``ratio`` of two field sums, ``rate``
(share of events whose flag field happened, weighted by the count). Fields
are role fields: ``order_total``, ``order_items`` (items per order),
``opened`` and ``clicked``, or a numeric record field of the role's list.

Examples
--------
>>> cat = catalog()
>>> [s.name for s in cat][:3]
['purchase_1', 'purchase_7', 'purchase_30']
>>> extra = {"name": "rev_90_p90", "description": "Revenue in 90 days, 90th percentile", "role": "purchases",
...          "aggregate": "sum", "field": "order_total", "horizon": 90, "objective": "quantile", "alpha": 0.9,
...          "unit": "currency"}
>>> catalog(ClientConfig.from_dict({"sightlines": [extra], "disabled_sightlines": ["pv_30"]}))[-1].name
'rev_90_p90'
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

from .config import ClientConfig
from .errors import ConfigError

__all__ = ["Sightline", "catalog", "get_sightline", "OBJECTIVES", "UNITS"]

OBJECTIVES = ("binary", "cross_entropy", "poisson", "gamma", "tweedie", "quantile", "regression")
AGGREGATES = ("any", "count", "sum", "mean", "ratio", "rate")
ROLES = ("purchases", "messages", "pageviews", "optout")
UNITS = ("probability", "rate", "currency", "count", "items")
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


@dataclass(frozen=True)
class Sightline:
    """One catalogue entry (see the module docstring)."""

    name: str
    description: str
    role: str
    aggregate: str
    horizon: int
    objective: str
    unit: str = "count"
    field: str | None = None
    per: str | None = None
    condition: str | None = None
    weight: str | None = None
    alpha: float | None = None
    exclude_happened: bool = False

    @property
    def is_binary(self) -> bool:
        return self.objective == "binary"

    @property
    def keeps_positives(self) -> bool:
        """Whether sampling keeps the (rare) positive examples: events happened in the window."""
        return self.objective in ("binary", "tweedie") or self.condition == "any"

    def validate(self) -> Sightline:
        where = f"sightline {self.name!r}: "
        if not _NAME.fullmatch(self.name):
            raise ConfigError(f"{where}the name must be 1-40 lowercase letters, digits or '_', starting with a letter")
        if self.role not in ROLES:
            raise ConfigError(f"{where}role is {self.role!r}; expected one of {list(ROLES)}")
        if self.aggregate not in AGGREGATES:
            raise ConfigError(f"{where}aggregate is {self.aggregate!r}; expected one of {list(AGGREGATES)}")
        if self.objective not in OBJECTIVES:
            raise ConfigError(f"{where}objective is {self.objective!r}; expected one of {list(OBJECTIVES)}")
        if self.unit not in UNITS:
            raise ConfigError(f"{where}unit is {self.unit!r}; expected one of {list(UNITS)}")
        if not isinstance(self.horizon, int) or not 1 <= self.horizon <= 730:
            raise ConfigError(f"{where}horizon is {self.horizon!r}; expected whole days between 1 and 730")
        if self.aggregate in ("sum", "mean", "ratio", "rate") and not self.field:
            raise ConfigError(f"{where}aggregate {self.aggregate!r} needs a 'field'")
        if self.aggregate == "ratio" and not self.per:
            raise ConfigError(f"{where}aggregate 'ratio' needs 'per' (the denominator field)")
        if self.role == "optout" and self.aggregate != "any":
            raise ConfigError(f"{where}the optout role happens at most once: use aggregate 'any'")
        if self.objective == "quantile" and (self.alpha is None or not 0 < self.alpha < 1):
            raise ConfigError(f"{where}objective 'quantile' needs 'alpha' between 0 and 1, got {self.alpha!r}")
        if self.objective == "binary" and self.aggregate != "any":
            raise ConfigError(f"{where}objective 'binary' needs aggregate 'any'")
        if self.aggregate == "rate" and self.objective != "cross_entropy":
            raise ConfigError(f"{where}aggregate 'rate' needs objective 'cross_entropy'")
        if self.condition not in (None, "any"):
            raise ConfigError(f"{where}condition is {self.condition!r}; expected 'any' or nothing")
        if self.weight not in (None, "count"):
            raise ConfigError(f"{where}weight is {self.weight!r}; expected 'count' or nothing")
        return self

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Sightline:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"sightline {d.get('name')!r}: unknown key(s) {unknown}; known keys are {sorted(known)}")
        missing = sorted({"name", "description", "role", "aggregate", "horizon", "objective"} - set(d))
        if missing:
            raise ConfigError(f"sightline {d.get('name')!r}: missing key(s) {missing}")
        return cls(**d).validate()

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self).items() if v not in (None, False)}


@lru_cache(maxsize=1)
def _defaults() -> tuple[Sightline, ...]:
    text = resources.files("sightlines").joinpath("catalog.json").read_text()
    return tuple(Sightline.from_dict(d) for d in json.loads(text)["sightlines"])


def catalog(config: ClientConfig | None = None) -> list[Sightline]:
    """The client's catalogue: the defaults minus disabled ones, plus the client's own entries."""
    config = config or ClientConfig()
    disabled = set(config.disabled_sightlines)
    names = {s.name for s in _defaults()}
    unknown = sorted(disabled - names - {d.get("name") for d in config.sightlines})
    if unknown:
        raise ConfigError(f"disabled_sightlines names unknown sightline(s) {unknown}; known: {sorted(names)}")
    out = [s for s in _defaults() if s.name not in disabled]
    for d in config.sightlines:
        s = Sightline.from_dict(dict(d))
        if s.name in names:
            out = [x for x in out if x.name != s.name]  # a client may redefine a default
        out.append(s)
    return out


def get_sightline(name: str, config: ClientConfig | None = None) -> Sightline:
    """One sightline of the client's catalogue by name."""
    for s in catalog(config):
        if s.name == name:
            return s
    raise ConfigError(f"unknown sightline {name!r}; this client's sightlines are {[s.name for s in catalog(config)]}",
                      record_id=name)
