"""Event streams of one chunk of users over the whole world span (vectorised).

Every stream is a Poisson process ``rate_u * clock(t)`` on a per-user interval,
sampled by inverse transform of the clock (exact, no thinning):

* page views and purchases: rates ``pv_rate`` and ``purchase_rate = conv * pv_rate``
  on the activity clock over [created, churn), plus the same rates times
  ``honeymoon_boost`` over [created, min(created + honeymoon_days, churn));
* e-mails: ``mail_rate`` on the mail clock over [created, churn + sunset_days),
  each e-mail being the user's last with probability ``optout_prob`` (the
  opt-out is recorded a little later the same UTC day);
* SMS and push: ``sms_rate`` / ``push_rate`` on the mail clock over the same
  interval, not stopped by the (e-mail) opt-out. All messages are drawn as one
  stream of rate ``mail_rate + sms_rate + push_rate`` and marked with a channel
  in proportion to the three rates (the same process, and no sorting);
* each message is opened with probability ``open_prob`` (times
  ``open_after_churn`` if sent after churn), after a lognormal delay; an open
  message is clicked with probability ``click_prob`` a few minutes later.

Purchases carry 1 + Poisson(basket) items, each drawn by category affinity x
price-tier preference x popularity; page views point at product pages drawn the
same way, category pages, home, searches, cart or account.

Events are returned sorted by (user, time). Snapshots cut them later.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._clock import Clock
from ._latent import Latent
from ._model import STREAM_ACTIVITY, STREAM_MAIL
from ._world import Sim, rng_for

__all__ = ["ChunkEvents", "simulate_events", "poisson_times", "CHANNELS", "ORDER_CHANNELS", "url_table"]

CHANNELS = ("email", "sms", "push")
ORDER_CHANNELS = ("web", "app", "store")
_SEARCH_WORDS = ("linen", "black", "sale", "gift", "boots", "wool", "summer", "size+m", "organic", "new", "jacket", "blue")


@dataclass(frozen=True)
class ChunkEvents:
    """All events of one chunk, each stream sorted by (owner, time)."""

    pv_owner: np.ndarray
    pv_t: np.ndarray
    pv_url: np.ndarray
    pur_owner: np.ndarray
    pur_t: np.ndarray
    pur_total: np.ndarray
    pur_channel: np.ndarray  # index into ORDER_CHANNELS (shown on "rich" profiles only)
    item_offsets: np.ndarray  # (n_purchases + 1,)
    item_sku: np.ndarray
    item_qty: np.ndarray
    msg_owner: np.ndarray
    msg_t: np.ndarray
    msg_channel: np.ndarray
    msg_open: np.ndarray  # time or nan
    msg_click: np.ndarray  # time or nan
    msg_campaign: np.ndarray  # campaign index or -1
    optout_t: np.ndarray  # per user: time of the e-mail opt-out, inf if none


def url_table(sim: Sim) -> list[str]:
    """The page-view URLs: product pages, category pages, home, searches, cart, account."""
    cat = sim.catalogue
    return (
        [f"/p/{s.lower()}" for s in cat.sku]
        + [f"/c/{c}" for c in cat.categories]
        + ["/"]
        + [f"/search?q={w}" for w in _SEARCH_WORDS]
        + ["/cart", "/account"]
    )


def _sorted_uniforms(rng: np.random.Generator, owner: np.ndarray) -> np.ndarray:
    """Uniforms on [0, 1), sorted within each owner (``owner`` is grouped and non-decreasing)."""
    key = np.sort(owner + rng.random(len(owner)))
    return np.clip(key - owner, 0.0, 1.0)


def poisson_times(
    rng: np.random.Generator,
    rate: np.ndarray,
    clock: Clock,
    a: np.ndarray,
    b: np.ndarray,
    boost: float = 0.0,
    boost_end: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Events of independent Poisson processes on [a[u], b[u]), sorted by (owner, time).

    The intensity of user u is ``rate[u] * clock(t) * (1 + boost * [t < boost_end[u]])``.
    Counts are Poisson with the integrated intensity; times come from sorted
    uniforms mapped through the (monotone) inverse of the cumulative intensity.
    """
    ya = clock.cum(a)
    yb = clock.cum(b)
    span = np.maximum(yb - ya, 0.0)
    if boost and boost_end is not None:
        yh = np.maximum(clock.cum(np.minimum(boost_end, b)), ya)
        head = (1.0 + boost) * (yh - ya)
    else:
        yh, head = ya, np.zeros_like(ya)
    mass = span + head - (yh - ya)
    counts = rng.poisson(rate * mass)
    owner = np.repeat(np.arange(len(rate), dtype=np.int64), counts)
    y = _sorted_uniforms(rng, owner) * mass[owner]
    h = head[owner]
    x = np.where(y < h, ya[owner] + y / (1.0 + boost), yh[owner] + (y - h))
    return owner, clock.inv(x)


def _activity(rng: np.random.Generator, sim: Sim, lat: Latent, rate: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A stream on the activity clock over [created, churn), boosted during the honeymoon."""
    p = sim.params
    end = np.minimum(lat.churn, float(sim.n_days))
    return poisson_times(
        rng, rate, sim.calendar.activity, lat.created, end, p.honeymoon_boost, lat.created + p.honeymoon_days
    )


def simulate_events(sim: Sim, lat: Latent, chunk: int) -> ChunkEvents:
    """Simulate every event of the chunk's users over the whole world span."""
    p = sim.params
    cat = sim.catalogue
    n_cat = len(cat.categories)
    cum_aff = np.cumsum(lat.affinity, axis=1)
    cum_tier = np.cumsum(lat.tier_probs, axis=1)

    rng = rng_for(sim.world, STREAM_ACTIVITY, chunk)
    # page views
    pv_owner, pv_t = _activity(rng, sim, lat, lat.pv_rate)
    m = len(pv_owner)
    kind = np.searchsorted(np.cumsum(p.pv_kind_probs)[:-1], rng.random(m), side="right")
    sku = cat.draw(rng, cum_aff[pv_owner], cum_tier[pv_owner])
    pv_cat = (rng.random(m)[:, None] > cum_aff[pv_owner, :-1]).sum(axis=1)
    word = rng.integers(0, len(_SEARCH_WORDS), m)
    n_sku = len(cat)
    home = n_sku + n_cat
    pv_url = np.select(
        [kind == 0, kind == 1, kind == 2, kind == 3, kind == 4],
        [sku, n_sku + pv_cat, np.full(m, home), home + 1 + word, np.full(m, home + 1 + len(_SEARCH_WORDS))],
        default=home + 2 + len(_SEARCH_WORDS),
    ).astype(np.int32)

    # purchases and their items
    pur_owner, pur_t = _activity(rng, sim, lat, lat.purchase_rate)
    n_items = 1 + rng.poisson(lat.basket[pur_owner])
    item_offsets = np.concatenate([[0], np.cumsum(n_items)])
    item_owner = np.repeat(pur_owner, n_items)
    item_sku = cat.draw(rng, cum_aff[item_owner], cum_tier[item_owner]).astype(np.int32)
    item_qty = (1 + np.searchsorted(np.cumsum(p.qty_probs)[:-1], rng.random(len(item_owner)), side="right")).astype(np.int8)
    line = cat.price[item_sku] * item_qty
    pur_total = np.round(np.add.reduceat(line, item_offsets[:-1]), 2) if len(line) else np.zeros(0)
    pur_channel = rng.choice(3, len(pur_owner), p=[0.6, 0.25, 0.15]).astype(np.int8)

    # messages
    rng = rng_for(sim.world, STREAM_MAIL, chunk)
    mclock = sim.calendar.mail
    mail_end = np.minimum(lat.mail_end, float(sim.n_days))
    # one stream for all channels, each message marked with a channel in proportion to the rates
    total_rate = lat.mail_rate + lat.sms_rate + lat.push_rate
    msg_owner, msg_t = poisson_times(rng, total_rate, mclock, lat.created, mail_end)
    rates = np.stack([lat.mail_rate, lat.sms_rate, lat.push_rate], axis=1) / np.maximum(total_rate, 1e-300)[:, None]
    cum_rates = np.cumsum(rates, axis=1)[msg_owner]
    msg_channel = (rng.random(len(msg_owner))[:, None] > cum_rates[:, :2]).sum(axis=1).astype(np.int8)
    # each e-mail may be the user's last: the user opts out the same day and gets no more e-mails
    email = msg_channel == 0
    fatal = email & (rng.random(len(msg_owner)) < lat.optout_prob[msg_owner])
    optout_t = np.full(len(lat), np.inf)
    fpos = np.flatnonzero(fatal)
    if len(fpos):
        users, first = np.unique(msg_owner[fpos], return_index=True)
        first_pos = fpos[first]
        t_fatal = msg_t[first_pos]
        room = (np.floor(t_fatal) + 1.0 - t_fatal) * 0.999
        delay = np.minimum(rng.exponential(p.optout_delay_hours / 24.0, len(first_pos)), room)
        optout_t[users] = t_fatal + delay
        last = np.full(len(lat), len(msg_owner), dtype=np.int64)
        last[users] = first_pos
        keep = ~email | (np.arange(len(msg_owner)) <= last[msg_owner])
        msg_owner, msg_t, msg_channel = msg_owner[keep], msg_t[keep], msg_channel[keep]
    k = len(msg_owner)
    open_p = lat.open_prob[msg_owner] * np.where(msg_t < lat.churn[msg_owner], 1.0, p.open_after_churn)
    opened = rng.random(k) < open_p
    open_delay = rng.lognormal(np.log(p.open_delay_hours / 24.0), p.open_delay_sigma, k)
    clicked = opened & (rng.random(k) < lat.click_prob[msg_owner])
    click_delay = rng.exponential(p.click_delay_minutes / 1440.0, k)
    msg_open = np.where(opened, msg_t + open_delay, np.nan)
    msg_click = np.where(clicked, msg_open + click_delay, np.nan)
    msg_campaign = sim.calendar.campaign_of_day[np.minimum(msg_t.astype(np.int64), sim.n_days - 1)]

    return ChunkEvents(
        pv_owner=pv_owner,
        pv_t=pv_t,
        pv_url=pv_url,
        pur_owner=pur_owner,
        pur_t=pur_t,
        pur_total=pur_total,
        pur_channel=pur_channel,
        item_offsets=item_offsets,
        item_sku=item_sku,
        item_qty=item_qty,
        msg_owner=msg_owner,
        msg_t=msg_t,
        msg_channel=msg_channel,
        msg_open=msg_open,
        msg_click=msg_click,
        msg_campaign=msg_campaign,
        optout_t=optout_t,
    )
