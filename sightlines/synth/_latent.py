"""Per-user latent parameters of one chunk of users (vectorised).

A chunk is ``world.chunk_size`` consecutive user indices; all of its draws come
from the chunk's own random streams and always cover the whole chunk, so a
user's parameters never depend on the snapshot date, the file layout or the
number of workers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._catalog import N_TIERS
from ._model import STREAM_LATENT
from ._world import Sim, rng_for

__all__ = ["Latent", "draw_latent", "TS_STYLES", "TZ_OFFSETS"]

#: timestamp styles of a user's profile, with their shares
TS_STYLES = ("iso", "iso_ms", "iso_offset", "epoch_int", "epoch_float")
_TS_SHARES = (0.78, 0.06, 0.10, 0.04, 0.02)
#: UTC offsets (minutes) used by "iso_offset" users
TZ_OFFSETS = np.array([60, 120, -300, -240, 330, 540, -480, 600, 0, -180])


def _logistic(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


@dataclass(frozen=True)
class Latent:
    """Latent parameters of the users of one chunk (arrays of length ``chunk_size``).

    Times are days since the world's time 0; ``inf`` means "not within the world".
    """

    index: np.ndarray
    created: np.ndarray
    z: np.ndarray
    source: np.ndarray  # index into params.sources
    member: np.ndarray  # bool
    one_off: np.ndarray  # bool
    signup: np.ndarray  # index into params.signup_channels
    pv_rate: np.ndarray
    conv: np.ndarray
    purchase_rate: np.ndarray
    life_mean: np.ndarray
    churn: np.ndarray
    mail_rate: np.ndarray
    sms_rate: np.ndarray
    push_rate: np.ndarray
    mail_end: np.ndarray
    open_prob: np.ndarray
    click_prob: np.ndarray
    optout_prob: np.ndarray
    basket: np.ndarray
    tier_pref: np.ndarray
    tier_probs: np.ndarray  # (n, 3)
    affinity: np.ndarray  # (n, n_categories)
    aov_mean: np.ndarray
    ts_style: np.ndarray  # int index into TS_STYLES
    tz_offset: np.ndarray  # minutes

    def __len__(self) -> int:
        return len(self.index)


def draw_latent(sim: Sim, chunk: int) -> Latent:
    """Draw the latent parameters of every user index of ``chunk``."""
    p = sim.params
    n = sim.world.chunk_size
    rng = rng_for(sim.world, STREAM_LATENT, chunk)
    created = sim.creation_days(chunk)
    z = rng.standard_normal(n)
    e = rng.standard_normal((10, n))
    source = np.searchsorted(np.cumsum(p.source_shares)[:-1], rng.random(n), side="right")
    a_src = np.asarray(p.source_effect)[source]
    member = rng.random(n) < p.member_share
    pv_rate = np.minimum(p.pv_median * np.exp(a_src + p.pv_z * z + p.pv_noise * e[0]), p.pv_cap)
    conv = np.minimum(p.conv_median * np.exp(p.member_effect * member + p.conv_z * z + p.conv_noise * e[1]), p.conv_cap)
    one_off = rng.random(n) < _logistic(p.oneoff_logit + p.oneoff_z * z + p.oneoff_src * a_src)
    signup = np.where(
        one_off,
        np.searchsorted(np.cumsum(p.signup_oneoff)[:-1], rng.random(n), side="right"),
        np.searchsorted(np.cumsum(p.signup_regular)[:-1], rng.random(n), side="right"),
    )
    life_mean = np.where(
        one_off, p.oneoff_life_days, p.life_median * np.exp(p.life_src * a_src + p.life_z * z + p.life_noise * e[2])
    )
    churn = created + rng.exponential(1.0, n) * life_mean
    mail_rate = np.minimum(p.mail_median * np.exp(p.mail_z * z + p.mail_noise * e[3]), p.mail_cap)
    has_sms = rng.random(n) < p.sms_share
    has_push = rng.random(n) < p.push_share
    sms_rate = np.where(has_sms, p.sms_median * np.exp(p.other_noise * e[9]), 0.0)
    push_rate = np.where(has_push, p.push_median * np.exp(p.other_noise * rng.standard_normal(n)), 0.0)
    open_prob = _logistic(p.open_logit + p.open_z * z + p.open_noise * e[4])
    click_prob = _logistic(p.click_logit + p.click_z * z + p.click_noise * e[5])
    optout_prob = np.minimum(
        p.optout_base * (mail_rate / p.mail_median) ** p.optout_mail_power * np.exp(p.optout_z * z + p.optout_noise * e[6]),
        p.optout_cap,
    )
    basket = np.minimum(p.basket_median * np.exp(p.basket_noise * e[7]), p.basket_cap)
    tier_pref = p.tier_z * z + e[8]
    logits = p.tier_slope * tier_pref[:, None] * (np.arange(N_TIERS) - 1.0)[None, :]
    tier_probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    tier_probs /= tier_probs.sum(axis=1, keepdims=True)
    cat = sim.catalogue
    affinity = rng.gamma(p.affinity_concentration * cat.category_share, size=(n, len(cat.categories)))
    affinity += 1e-12
    affinity /= affinity.sum(axis=1, keepdims=True)
    qty_mean = float(np.dot(np.arange(1, 4), p.qty_probs))
    mean_price = np.einsum("uc,ct,ut->u", affinity, cat.group_mean_price, tier_probs)
    aov_mean = (1.0 + basket) * qty_mean * mean_price
    ts_style = np.searchsorted(np.cumsum(_TS_SHARES), rng.random(n) * 0.999999, side="right")
    tz_offset = np.where(ts_style == 2, TZ_OFFSETS[rng.integers(0, len(TZ_OFFSETS), n)], 0)
    return Latent(
        index=chunk * n + np.arange(n, dtype=np.int64),
        created=created,
        z=z,
        source=source,
        member=member,
        one_off=one_off,
        signup=signup,
        pv_rate=pv_rate,
        conv=conv,
        purchase_rate=conv * pv_rate,
        life_mean=life_mean,
        churn=churn,
        mail_rate=mail_rate,
        sms_rate=sms_rate,
        push_rate=push_rate,
        mail_end=churn + p.sunset_days,
        open_prob=open_prob,
        click_prob=click_prob,
        optout_prob=optout_prob,
        basket=basket,
        tier_pref=tier_pref,
        tier_probs=tier_probs,
        affinity=affinity,
        aov_mean=aov_mean,
        ts_style=ts_style,
        tz_offset=tz_offset,
    )
