"""Exact window probabilities and expectations from the latent model.

All windows are whole UTC days: (end of day ``start``, end of day ``end``],
i.e. times in [s, e) with s = day(start) + 1 and e = day(end) + 1 in world
days. The arithmetic works on plain arrays (:func:`window_expectations`), so
the generator's own checks and the public functions share it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

from typing import TYPE_CHECKING

import numpy as np

from ..errors import ConfigError
from ._world import Sim, World, sim_for

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["oracle_probability", "oracle_expected_count", "window_expectations", "window_days", "ROLES_PROBABILITY", "ROLES_COUNT"]

ROLES_PROBABILITY = ("purchases", "pageviews", "messages", "optout")
ROLES_COUNT = ROLES_PROBABILITY + ("revenue", "opens", "clicks")


def _activity_mass(sim: Sim, cols: Mapping[str, np.ndarray], s: float, e: float) -> np.ndarray:
    """Integral of the activity clock times the honeymoon factor over the user's alive part of [s, e)."""
    p = sim.params
    clock = sim.calendar.activity
    c, churn = cols["created"], cols["churn"]
    a = np.maximum(s, c)
    b = np.minimum(np.minimum(e, churn), float(sim.n_days))
    honey = np.minimum(b, c + p.honeymoon_days)
    return clock.mass(a, b) + p.honeymoon_boost * clock.mass(a, honey)


def _mail_mass(sim: Sim, cols: Mapping[str, np.ndarray], x: np.ndarray | float, y: np.ndarray | float) -> np.ndarray:
    """Mail-clock mass over the part of [x, y) where the user can be messaged."""
    a = np.maximum(x, cols["created"])
    b = np.minimum(np.minimum(y, cols["mail_end"]), float(sim.n_days))
    return sim.calendar.mail.mass(a, b)


def window_expectations(sim: Sim, cols: Mapping[str, np.ndarray], s: float, e: float, role: str) -> tuple[np.ndarray, np.ndarray]:
    """(P(at least one event), expected number of events) of ``role`` over [s, e) per user.

    ``cols`` holds, per user, times in world days (``created``, ``churn``,
    ``mail_end``, ``optout`` with inf for never) and the latent rates.
    For "optout", "messages", "opens" and "clicks" the result is conditional on
    the state at ``s``: a user who opted out before ``s`` gets no more e-mails
    and cannot opt out again.
    """
    p = sim.params
    if role in ("purchases", "pageviews", "revenue"):
        rate = cols["pv_rate"] if role == "pageviews" else cols["purchase_rate"]
        lam = rate * _activity_mass(sim, cols, s, e)
        prob = -np.expm1(-lam)
        if role == "revenue":
            return prob, lam * cols["aov_mean"]
        return prob, lam
    opted = cols["optout"] < s
    q = cols["optout_prob"]
    mu = np.where(opted, 0.0, cols["mail_rate"])
    other = cols["sms_rate"] + cols["push_rate"]
    m_all = _mail_mass(sim, cols, s, e)
    if role == "optout":
        prob = np.where(opted, 0.0, -np.expm1(-q * mu * m_all))
        return prob, prob
    if role == "messages":
        emails = -np.expm1(-q * mu * m_all) / q
        return -np.expm1(-(mu + other) * m_all), emails + other * m_all
    if role in ("opens", "clicks"):
        # split the window at churn: opens are less likely afterwards
        churn = cols["churn"]
        m_alive = _mail_mass(sim, cols, s, np.minimum(e, churn))
        m_dead = m_all - m_alive
        # expected e-mails in [s, churn) and [churn, e), with the opt-out truncation
        decay_alive = -np.expm1(-q * mu * m_alive) / q
        decay_all = -np.expm1(-q * mu * m_all) / q
        alive = decay_alive + other * m_alive
        dead = (decay_all - decay_alive) + other * m_dead
        opens = cols["open_prob"] * (alive + p.open_after_churn * dead)
        if role == "clicks":
            opens = opens * cols["click_prob"]
        return np.full(len(opens), np.nan), opens
    raise ConfigError(f"unknown role {role!r}; expected one of {list(ROLES_COUNT)}")


def window_days(world: World, start: dt.date, end: dt.date) -> tuple[float, float]:
    """World-day bounds [s, e) of the window (end of ``start``, end of ``end``]."""
    if end < start:
        raise ConfigError(f"window end {end} is before its start {start}; pass start <= end")
    if end > world.end:
        raise ConfigError(
            f"window end {end} is after the world's last day {world.end} (client {world.client!r}); "
            "the world has no events beyond it: choose an earlier end"
        )
    return float(world.day(start) + 1), float(world.day(end) + 1)


def _to_date(value: dt.date | str, name: str) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise ConfigError(f"{name} {value!r} is not a date: use YYYY-MM-DD") from None


def _columns(truth: pd.DataFrame) -> tuple[Sim, dict[str, np.ndarray]]:
    """The world and the oracle's input arrays (times in world days) from a truth table."""
    world_def = truth.attrs.get("world")
    if not world_def:
        raise ConfigError(
            "the truth table has no world attached (attrs['world']); load it with "
            "sightlines.synth.load_truth(store, date), and keep attrs when filtering it"
        )
    import pandas as pd

    sim = sim_for(World.from_json(world_def))
    cols: dict[str, np.ndarray] = {}
    for name, col in (("created", "created"), ("churn", "churn_at"), ("mail_end", "messaging_end"), ("optout", "optout_at")):
        s = truth[col]
        if isinstance(s.dtype, pd.DatetimeTZDtype):
            s = s.dt.tz_convert("UTC").dt.tz_localize(None)
        arr = s.to_numpy(dtype="datetime64[us]")
        days = (arr.astype(np.int64) / 1e6 - sim.epoch0) / 86400.0
        days[np.isnat(arr)] = np.inf
        cols[name] = days
    for name in ("pv_rate", "purchase_rate", "mail_rate", "sms_rate", "push_rate", "optout_prob",
                 "open_prob", "click_prob", "aov_mean"):
        cols[name] = truth[name].to_numpy(dtype=np.float64)
    return sim, cols


def oracle_probability(truth: pd.DataFrame, start: dt.date | str, end: dt.date | str, role: str = "purchases") -> np.ndarray:
    """The true probability that each user has at least one ``role`` event in (end of ``start``, end of ``end``].

    Computed from the generator's latent parameters, not from sampled events:
    every stream is a Poisson process, so P = 1 - exp(-expected count). For
    ``"optout"`` and ``"messages"`` it is conditional on the state at the end
    of ``start`` (a user who already opted out gets no more e-mails and
    cannot opt out again).

    Parameters
    ----------
    truth : pandas.DataFrame
        From :func:`load_truth` (any subset of its rows, with ``attrs`` kept).
    start, end : datetime.date or str
        The window is (end of ``start``, end of ``end``], i.e. ``end - start`` days.
    role : {"purchases", "pageviews", "messages", "optout"}, default="purchases"

    Returns
    -------
    numpy.ndarray of float, one per row of ``truth``

    Raises
    ------
    ConfigError
        Unknown role, ``end`` before ``start`` or after the world's last day,
        or a truth table without its world.

    Examples
    --------
    >>> from sightlines.storage import Storage
    >>> from sightlines.synth import generate_client, load_truth, oracle_probability
    >>> acme = Storage("memory://doctest-synth-oracle").client("acme")
    >>> _ = generate_client(acme, users=500, date="2026-11-24", workers=1)
    >>> p = oracle_probability(load_truth(acme, "2026-11-24"), "2026-11-24", "2026-12-01")
    >>> p.shape, bool(((p >= 0) & (p <= 1)).all())
    ((500,), True)
    """
    if role not in ROLES_PROBABILITY:
        raise ConfigError(f"unknown role {role!r} for oracle_probability; expected one of {list(ROLES_PROBABILITY)}")
    sim, cols = _columns(truth)
    s, e = window_days(sim.world, _to_date(start, "start"), _to_date(end, "end"))
    return window_expectations(sim, cols, s, e, role)[0]


def oracle_expected_count(
    truth: pd.DataFrame, start: dt.date | str, end: dt.date | str, role: str = "purchases"
) -> np.ndarray:
    """The true expected number of ``role`` events per user in (end of ``start``, end of ``end``].

    Roles as in :func:`oracle_probability`, plus ``"revenue"`` (expected sum of
    order totals), ``"opens"`` and ``"clicks"`` (expected opens / clicks of the
    messages *sent* in the window, whenever they happen).

    Parameters
    ----------
    truth : pandas.DataFrame
        From :func:`load_truth`.
    start, end : datetime.date or str
        The window (end of ``start``, end of ``end``].
    role : str, default="purchases"
        One of "purchases", "pageviews", "messages", "optout", "revenue", "opens", "clicks".

    Returns
    -------
    numpy.ndarray of float, one per row of ``truth``

    Raises
    ------
    ConfigError
        As :func:`oracle_probability`.

    Examples
    --------
    >>> from sightlines.storage import Storage
    >>> from sightlines.synth import generate_client, load_truth, oracle_expected_count
    >>> acme = Storage("memory://doctest-synth-expected").client("acme")
    >>> _ = generate_client(acme, users=500, date="2026-11-24", workers=1)
    >>> truth = load_truth(acme, "2026-11-24")
    >>> rev = oracle_expected_count(truth, "2026-11-24", "2026-12-24", role="revenue")
    >>> bool((rev >= 0).all())
    True
    """
    if role not in ROLES_COUNT:
        raise ConfigError(f"unknown role {role!r} for oracle_expected_count; expected one of {list(ROLES_COUNT)}")
    sim, cols = _columns(truth)
    s, e = window_days(sim.world, _to_date(start, "start"), _to_date(end, "end"))
    return window_expectations(sim, cols, s, e, role)[1]
