"""The brand's calendar: weekly rhythms, seasons, sales and e-mail campaigns.

Three clocks come out of it (see :class:`._clock.Clock`):

* ``activity`` drives page views and purchases: a weekly pattern (weekends
  higher), a yearly season (peak in December), sale days (Black Friday, Cyber
  Monday, January and summer sales) and a small lift on campaign days;
* ``mail`` drives messages: send days (Tuesday/Thursday newsletters) times
  campaign bursts (a few days at 2-4x) and seasonal pushes;
* ``signup`` drives user creation: exponential growth times a weekly pattern.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

from ._clock import Clock
from ._model import ModelParams

__all__ = ["Calendar", "build_calendar"]

# Monday .. Sunday
_ACTIVITY_WEEK = np.array([0.92, 0.88, 0.9, 0.95, 1.05, 1.22, 1.12])
_MAIL_WEEK = np.array([0.8, 1.5, 0.9, 1.4, 1.0, 0.5, 0.4])
_SIGNUP_WEEK = np.array([0.95, 0.95, 0.95, 1.0, 1.05, 1.1, 1.0])
# UTC hours 0 .. 23
_ACTIVITY_HOURS = np.array(
    [0.45, 0.3, 0.22, 0.18, 0.18, 0.25, 0.45, 0.75, 0.95, 1.05, 1.15, 1.25,
     1.35, 1.3, 1.25, 1.25, 1.35, 1.55, 1.85, 2.05, 2.15, 1.95, 1.45, 0.85]
)
_MAIL_HOURS = np.array(
    [0.02, 0.02, 0.02, 0.02, 0.03, 0.08, 0.5, 1.6, 2.4, 1.6, 0.8, 0.5,
     0.45, 0.4, 0.4, 0.5, 0.9, 1.5, 1.3, 0.7, 0.35, 0.15, 0.06, 0.03]
)


@dataclass(frozen=True)
class Calendar:
    """Day weights, clocks and campaigns of one world."""

    start: dt.date
    activity: Clock
    mail: Clock
    signup: Clock
    #: campaign index of each day (-1: none) and the campaign names
    campaign_of_day: np.ndarray
    campaigns: list[str]
    #: (name, first day, last day) of the sales that lift activity
    sales: list[tuple[str, str, str]]

    def campaign_list(self) -> list[dict[str, object]]:
        out = []
        for i, name in enumerate(self.campaigns):
            days = np.flatnonzero(self.campaign_of_day == i)
            out.append({
                "name": name,
                "first": (self.start + dt.timedelta(days=int(days[0]))).isoformat(),
                "days": len(days),
                "mail_boost": round(float(self.mail.w[days[0]] / _MAIL_WEEK[(self.start.weekday() + days[0]) % 7]), 3),
            })
        return out


def _black_friday(year: int) -> dt.date:
    nov1 = dt.date(year, 11, 1)
    thursday = nov1 + dt.timedelta(days=(3 - nov1.weekday()) % 7 + 21)
    return thursday + dt.timedelta(days=1)


def build_calendar(rng: np.random.Generator, start: dt.date, n_days: int, params: ModelParams) -> Calendar:
    """Draw the calendar of a world of ``n_days`` days starting at ``start``."""
    days = np.arange(n_days)
    dates = [start + dt.timedelta(days=int(d)) for d in days]
    dow = np.array([d.weekday() for d in dates])
    doy = np.array([d.timetuple().tm_yday for d in dates])

    act = _ACTIVITY_WEEK[dow] * (1.0 + 0.12 * np.cos(2 * np.pi * (doy - 350) / 365.25))
    mail = _MAIL_WEEK[dow].astype(np.float64).copy()
    campaign_of_day = np.full(n_days, -1, dtype=np.int64)
    campaigns: list[str] = []
    sales: list[tuple[str, str, str]] = []

    def idx(d: dt.date) -> int:
        return (d - start).days

    def add_campaign(name: str, first: int, length: int, boost: float, lift: float) -> None:
        lo, hi = max(first, 0), min(first + length, n_days)
        if lo >= hi or (campaign_of_day[lo:hi] >= 0).any():
            return
        campaign_of_day[lo:hi] = len(campaigns)
        campaigns.append(name)
        mail[lo:hi] *= boost
        act[lo:hi] *= lift

    # seasonal sales first, so that weekly promos do not overlap them
    for year in range(start.year, dates[-1].year + 1):
        bf = _black_friday(year)
        add_campaign(f"black-friday-{year}", idx(bf) - 1, 5, 4.0, 1.0)
        for name, first, length, boost in (
            (f"holiday-{year}", dt.date(year, 12, 5), 12, 1.6),
            (f"winter-sale-{year + 1}", dt.date(year, 12, 26), 12, 2.0),
            (f"summer-sale-{year}", dt.date(year, 6, 24), 10, 2.0),
        ):
            add_campaign(name, idx(first), length, boost, 1.0)
        for name, first, length, lift in (
            (f"black-friday-{year}", bf, 1, 2.2),
            (f"bf-weekend-{year}", bf + dt.timedelta(days=1), 2, 1.5),
            (f"cyber-monday-{year}", bf + dt.timedelta(days=3), 1, 1.8),
            (f"winter-sale-{year + 1}", dt.date(year, 12, 26), 12, 1.25),
            (f"summer-sale-{year}", dt.date(year, 6, 24), 10, 1.15),
        ):
            lo, hi = max(idx(first), 0), min(idx(first) + length, n_days)
            if lo < hi:
                act[lo:hi] *= lift
                sales.append((name, dates[lo].isoformat(), dates[hi - 1].isoformat()))
    # weekly promotions: most weeks, 1-3 days from a Tuesday-Thursday start
    for week_start in range(-int(dow[0]), n_days, 7):
        if rng.random() < 0.55:
            first = week_start + 1 + int(rng.integers(0, 3))
            length = int(rng.integers(1, 4))
            boost = float(np.round(rng.uniform(2.0, 4.0), 2))
            if 0 <= first < n_days:
                add_campaign(f"promo-{dates[first].strftime('%Y%m%d')}", first, length, boost, 1.12)

    growth = np.log(2.0) / params.growth_doubling_days
    signup = _SIGNUP_WEEK[dow] * np.exp(growth * days)
    return Calendar(
        start=start,
        activity=Clock(act, _ACTIVITY_HOURS),
        mail=Clock(mail, _MAIL_HOURS),
        signup=Clock(signup, _ACTIVITY_HOURS),
        campaign_of_day=campaign_of_day,
        campaigns=campaigns,
        sales=sales,
    )
