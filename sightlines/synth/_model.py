"""The constants of the synthetic latent model (version ``synth/1``).

Everything the generator draws is described here, so that models, quality
tests and the oracle can be written against it. Rates are per day while the
relevant interval is open; time-of-week and time-of-year effects come from the
world's clocks (see :mod:`._calendar`). Changing any value changes every world:
bump :data:`MODEL_VERSION` when you do.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

#: stored in ``truth/world.json``; a world made by another version is refused
MODEL_VERSION = "synth/1"
#: the world starts this many days before the anchor date ...
DAYS_BEFORE_ANCHOR = 800
#: ... and ends this many days after it (the last day a snapshot may be taken)
DAYS_AFTER_ANCHOR = 400
#: users are simulated in fixed blocks of this many consecutive indices
CHUNK_SIZE = 4096

# independent random streams, so that a change to one part never shifts another
STREAM_WORLD = 1
STREAM_CREATE = 2
STREAM_LATENT = 3
STREAM_ACTIVITY = 4
STREAM_MAIL = 5
STREAM_SHAPE = 6
STREAM_BAD = 7


@dataclass(frozen=True)
class ModelParams:
    """Parameters of the per-user latent model.

    ``z`` is a user's standard-normal engagement; each ``*_noise`` term is an
    independent standard normal. A "median" is the rate of a user with z = 0
    and zero noise.
    """

    #: signups grow exponentially, doubling every this many days
    growth_doubling_days: float = 180.0

    #: acquisition source of a user (shown as ``vars.source`` to most users): names, shares and
    #: their effect ``a_src`` on the log page-view rate (also on the log lifetime, times life_src)
    sources: tuple[str, ...] = ("referral", "store", "organic", "search", "social", "popup", "giveaway")
    source_shares: tuple[float, ...] = (0.1, 0.12, 0.25, 0.2, 0.15, 0.1, 0.08)
    source_effect: tuple[float, ...] = (0.3, 0.2, 0.1, 0.0, -0.1, -0.25, -0.45)
    #: share of users with a paid membership (``vars.membership.plan == "plus"``), and its
    #: effect on the log conversion rate
    member_share: float = 0.12
    member_effect: float = 0.4
    #: page views per day while alive: pv_median * exp(a_src + pv_z * z + pv_noise * e1), capped
    pv_median: float = 0.1
    pv_z: float = 0.2
    pv_noise: float = 0.2
    pv_cap: float = 30.0
    #: purchases per page view (conversion): conv_median * exp(member_effect * member + conv_z * z + conv_noise * e2), capped
    conv_median: float = 0.16
    conv_z: float = 0.1
    conv_noise: float = 0.1
    conv_cap: float = 0.8
    #: new users are more active: page view and purchase rates are multiplied
    #: by (1 + honeymoon_boost) during the first honeymoon_days after creation
    honeymoon_boost: float = 1.0
    honeymoon_days: float = 14.0
    #: lifetime (creation -> churn) ~ Exponential(mean); for regular users
    #: mean = life_median * exp(life_src * a_src + life_z * z + life_noise * e3)
    life_median: float = 500.0
    life_src: float = 0.5
    life_z: float = 0.45
    life_noise: float = 0.45
    #: a share of users are "one-offs" whose mean lifetime is oneoff_life_days instead:
    #: P(one-off) = logistic(oneoff_logit + oneoff_z * z + oneoff_src * a_src)
    oneoff_logit: float = -0.3
    oneoff_z: float = -0.7
    oneoff_src: float = -0.8
    oneoff_life_days: float = 4.0
    #: how the account was created (``vars.signup``): shares for one-offs and for regular users
    signup_channels: tuple[str, ...] = ("checkout", "newsletter", "account", "app")
    signup_oneoff: tuple[float, ...] = (0.5, 0.3, 0.15, 0.05)
    signup_regular: tuple[float, ...] = (0.2, 0.2, 0.4, 0.2)

    #: e-mails per day: mail_median * exp(mail_z * z + mail_noise * e4), capped
    mail_median: float = 0.013
    mail_z: float = 0.2
    mail_noise: float = 0.8
    mail_cap: float = 2.0
    #: the brand stops messaging a user this many days after the user churned (sunset policy)
    sunset_days: float = 60.0
    #: share of users reachable by SMS / push, and their rates per day (median * exp(other_noise * e));
    #: SMS and push are not stopped by the (e-mail) opt-out
    sms_share: float = 0.15
    sms_median: float = 0.012
    push_share: float = 0.22
    push_median: float = 0.015
    other_noise: float = 0.5
    #: open probability per message: logistic(open_logit + open_z * z + open_noise * e5) while alive,
    #: times open_after_churn once the user has churned (by message time)
    open_logit: float = -1.05
    open_z: float = 0.5
    open_noise: float = 0.8
    open_after_churn: float = 0.3
    #: delay message -> open: lognormal, median open_delay_hours, log-sd open_delay_sigma
    open_delay_hours: float = 1.5
    open_delay_sigma: float = 1.4
    #: click probability given an open: logistic(click_logit + click_z * z + click_noise * e6)
    click_logit: float = -2.2
    click_z: float = 0.3
    click_noise: float = 0.6
    #: delay open -> click: exponential, mean in minutes
    click_delay_minutes: float = 4.0
    #: each e-mail makes the user opt out with probability
    #: optout_base * (mail_rate / mail_median) ** optout_mail_power * exp(optout_z * z + optout_noise * e7), capped;
    #: the opt-out is recorded later the same UTC day, and that e-mail is the last one the user gets
    optout_base: float = 0.004
    optout_mail_power: float = 0.7
    optout_z: float = -0.3
    optout_noise: float = 0.6
    optout_cap: float = 0.25
    optout_delay_hours: float = 2.0

    #: items per order: 1 + Poisson(basket), basket = basket_median * exp(basket_noise * e8), capped
    basket_median: float = 0.4
    basket_noise: float = 0.6
    basket_cap: float = 3.0
    #: quantity of an item line: 1, 2 or 3 with these probabilities
    qty_probs: tuple[float, float, float] = (0.86, 0.11, 0.03)
    #: price tier (budget, regular, premium) ~ softmax(tier_slope * (k - 1) * pref), pref = tier_z * z + e9
    tier_slope: float = 1.2
    tier_z: float = 0.3
    #: category affinity ~ Dirichlet(affinity_concentration * category share)
    affinity_concentration: float = 3.0
    #: page view kinds: product, category, home, search, cart, account
    pv_kind_probs: tuple[float, ...] = (0.5, 0.2, 0.15, 0.08, 0.04, 0.03)

    def to_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(self).items()}


#: the parameters every world of :data:`MODEL_VERSION` uses
PARAMS = ModelParams()
