"""The world of one synthetic client: what ``truth/world.json`` fixes, and what follows from it.

A :class:`World` is the small, stored definition (client, seed, anchor date,
users at the anchor). :func:`build_sim` turns it deterministically into a
:class:`Sim`: the calendar and clocks, the catalogue, and the signup curve that
maps a user index to a creation time. Everything random is drawn from
``SeedSequence([seed, crc32(client), stream, ...])``, so a world depends only
on its definition.
"""

from __future__ import annotations

import datetime as dt
import functools
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ConfigError
from ._calendar import Calendar, build_calendar
from ._catalog import Catalogue, build_catalogue
from ._model import (
    CHUNK_SIZE,
    DAYS_AFTER_ANCHOR,
    DAYS_BEFORE_ANCHOR,
    MODEL_VERSION,
    PARAMS,
    STREAM_CREATE,
    STREAM_WORLD,
    ModelParams,
)

__all__ = ["World", "Sim", "build_sim", "sim_for", "rng_for"]

_EPOCH = dt.date(1970, 1, 1)


@dataclass(frozen=True)
class World:
    """The stored definition of a client's synthetic world."""

    client: str
    seed: int
    anchor: dt.date
    users: int
    version: str = MODEL_VERSION
    chunk_size: int = CHUNK_SIZE
    days_before: int = DAYS_BEFORE_ANCHOR
    days_after: int = DAYS_AFTER_ANCHOR

    @property
    def start(self) -> dt.date:
        """First day of the world (00:00Z is time 0)."""
        return self.anchor - dt.timedelta(days=self.days_before)

    @property
    def end(self) -> dt.date:
        """Last day a snapshot may be taken of."""
        return self.anchor + dt.timedelta(days=self.days_after)

    @property
    def n_days(self) -> int:
        return (self.end - self.start).days + 1

    def day(self, date: dt.date) -> int:
        """Index of ``date`` (0 = the world's first day)."""
        return (date - self.start).days

    def check_date(self, date: dt.date) -> None:
        if not self.start <= date <= self.end:
            raise ConfigError(
                f"date {date} is outside the synthetic world of client {self.client!r} "
                f"({self.start} .. {self.end}, anchor {self.anchor}); choose a date in that range, "
                f"or delete clients/{self.client}/truth to start a new world anchored at {date}"
            )

    def definition(self) -> dict[str, Any]:
        return {
            "client": self.client,
            "seed": self.seed,
            "anchor": self.anchor.isoformat(),
            "users_at_anchor": self.users,
            "version": self.version,
            "chunk_size": self.chunk_size,
            "days_before_anchor": self.days_before,
            "days_after_anchor": self.days_after,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> World:
        try:
            return cls(
                client=str(data["client"]),
                seed=int(data["seed"]),
                anchor=dt.date.fromisoformat(data["anchor"]),
                users=int(data["users_at_anchor"]),
                version=str(data["version"]),
                chunk_size=int(data["chunk_size"]),
                days_before=int(data["days_before_anchor"]),
                days_after=int(data["days_after_anchor"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(
                f"truth/world.json of client {data.get('client')!r} is not a synthetic world definition ({exc}); "
                "delete the client's truth/ directory to start a new world"
            ) from None


def rng_for(world: World, stream: int, *key: int) -> np.random.Generator:
    """An independent generator for (world, stream, key...)."""
    entropy = [world.seed, zlib.crc32(world.client.encode()), stream, *[int(k) for k in key]]
    return np.random.default_rng(np.random.SeedSequence(entropy))


@dataclass(frozen=True)
class Sim:
    """Everything derived from a :class:`World` that simulation and the oracle need."""

    world: World
    params: ModelParams
    calendar: Calendar
    catalogue: Catalogue
    #: signup-clock mass per user index (users are created in index order)
    mass_per_user: float
    #: seconds since the Unix epoch of the world's time 0
    epoch0: int
    #: width of the zero-padded number in user ids ("u-0001234")
    id_width: int
    #: users ever created in the world (through its last day)
    users_total: int

    @property
    def n_days(self) -> int:
        return self.world.n_days

    def user_id(self, index: int) -> str:
        return f"u-{index:0{self.id_width}d}"

    def creation_days(self, chunk: int) -> np.ndarray:
        """Creation times (days since time 0) of every index of ``chunk``; inf if after the world's end."""
        n = self.world.chunk_size
        rng = rng_for(self.world, STREAM_CREATE, chunk)
        q = (chunk * n + np.arange(n) + rng.random(n)) * self.mass_per_user
        t = self.calendar.signup.inv(q)
        t[q >= self.calendar.signup.W[-1]] = np.inf
        return t

    def users_before(self, cut_day: int) -> int:
        """Number of users created before time ``cut_day`` (a prefix of the indices)."""
        cut_sec = cut_day * 86400
        guess = int(self.calendar.signup.cum(np.array([float(cut_day)]))[0] / self.mass_per_user)
        n = self.world.chunk_size
        lo_chunk = max(guess - 2, 0) // n
        hi_chunk = (guess + 2) // n
        count = lo_chunk * n
        for chunk in range(lo_chunk, hi_chunk + 1):
            t = self.creation_days(chunk)
            sec = np.floor(np.where(np.isfinite(t), t, 1e9) * 86400.0)
            count += int((sec < cut_sec).sum())
        return count

    def world_json(self) -> dict[str, Any]:
        cat = self.catalogue
        return {
            **self.world.definition(),
            "world_start": self.world.start.isoformat(),
            "world_end": self.world.end.isoformat(),
            "users_at_world_end": self.users_total,
            "id_width": self.id_width,
            "categories": cat.categories,
            "catalogue": cat.to_json(),
            "campaigns": self.calendar.campaign_list(),
            "sales": [{"name": n, "first": a, "last": b} for n, a, b in self.calendar.sales],
            "params": self.params.to_dict(),
        }


def build_sim(world: World) -> Sim:
    """Derive the calendar, catalogue and signup curve of ``world`` (deterministic)."""
    if world.version != MODEL_VERSION:
        raise ConfigError(
            f"client {world.client!r} has a synthetic world of version {world.version!r}, but this generator "
            f"makes {MODEL_VERSION!r}; delete the client's truth/ and raw/ directories to regenerate it"
        )
    rng = rng_for(world, STREAM_WORLD)
    calendar = build_calendar(rng, world.start, world.n_days, PARAMS)
    catalogue = build_catalogue(rng)
    anchor_mass = float(calendar.signup.W[world.day(world.anchor) + 1])
    mass_per_user = anchor_mass / world.users
    users_total = int(calendar.signup.W[-1] / mass_per_user)
    width = max(6, len(str(users_total + world.chunk_size)))
    epoch0 = (world.start - _EPOCH).days * 86400
    return Sim(world, PARAMS, calendar, catalogue, mass_per_user, epoch0, width, users_total)


@functools.lru_cache(maxsize=8)
def sim_for(world: World) -> Sim:
    """The (cached) :class:`Sim` of a world."""
    return build_sim(world)
