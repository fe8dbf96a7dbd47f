"""The free-form part of a profile: ``vars`` and the optional top-level extras.

Shapes differ a lot between users: common keys (source, loyalty, preferences,
locale ...), rarer blocks (survey, attribution, consents), per-user custom keys
with arbitrary types, a few deeply nested users, and optional top-level lists
(devices, addresses, tags). Every decision comes from the chunk's shape draws
(``u``: one row of uniforms per user, ``seed``: a per-user integer for the rare
structures that need more randomness), never from the snapshot date; only the
loyalty points follow the user's spend so far.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, TypeVar

__all__ = ["SHAPE_COLUMNS", "build_vars", "build_extras", "SplitMix"]

#: uniforms drawn per user for shape decisions
SHAPE_COLUMNS = 32
_M64 = (1 << 64) - 1
_T = TypeVar("_T")


class SplitMix:
    """A tiny deterministic generator (splitmix64) for the rare shapes that need many draws.

    ``random.Random(seed)`` costs ~10 µs to seed; this costs nothing, and its
    stream is fixed by the seed on every platform and Python version.
    """

    __slots__ = ("state",)

    def __init__(self, seed: int):
        self.state = seed & _M64

    def _next(self) -> int:
        self.state = (self.state + 0x9E3779B97F4A7C15) & _M64
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
        return z ^ (z >> 31)

    def random(self) -> float:
        return (self._next() >> 11) / 9007199254740992.0

    def randrange(self, a: int, b: int | None = None) -> int:
        lo, hi = (0, a) if b is None else (a, b)
        return lo + self._next() % (hi - lo)

    def uniform(self, a: float, b: float) -> float:
        return a + (b - a) * self.random()

    def choice(self, seq: Sequence[_T]) -> _T:
        return seq[self._next() % len(seq)]

    def sample(self, seq: Sequence[_T], k: int) -> list[_T]:
        pool = list(seq)
        for i in range(k):
            j = i + self._next() % (len(pool) - i)
            pool[i], pool[j] = pool[j], pool[i]
        return pool[:k]

_LOCALES = ("en-US", "en-GB", "de-DE", "fr-FR", "nl-NL", "es-ES", "it-IT", "sv-SE", "pl-PL", "en-AU")
_SIZES = ("XS", "S", "M", "L", "XL", "XXL")
_COLOURS = ("black", "navy", "olive", "sand", "white", "grey", "burgundy", "rust")
_QUESTIONS = ("fit", "style", "frequency", "budget", "occasion", "fabric", "nps", "recommend")
_ANSWERS = ("yes", "no", "sometimes", "slim", "regular", "relaxed", "weekly", "monthly", "rarely", "work", "casual")
_WORDS = (
    "alpha", "beta", "gamma", "delta", "omega", "north", "south", "pine", "river", "stone", "amber",
    "coral", "ember", "frost", "glade", "haven", "iris", "jade", "karma", "lotus", "maple", "nova",
)
_TAGS = ("vip", "newsletter", "wholesale", "influencer", "returner", "gift-buyer", "outlet", "beta-tester", "staff", "eco")
_CITIES = (("Berlin", "DE"), ("Paris", "FR"), ("London", "GB"), ("Austin", "US"), ("Madrid", "ES"), ("Milan", "IT"),
           ("Utrecht", "NL"), ("Krakow", "PL"), ("Malmo", "SE"), ("Perth", "AU"), ("Denver", "US"), ("Lyon", "FR"))
_DEVICES = (("ios", "iPhone 14"), ("ios", "iPhone 12"), ("android", "Pixel 7"), ("android", "Galaxy S22"), ("web", "Chrome"),
            ("web", "Safari"), ("ipados", "iPad Air"))
_TIERS = ((300, "bronze"), (1000, "silver"), (3000, "gold"))
_UTM = ("spring_drop", "bf_teaser", "brand_video", "retarget_7d", "lookalike", "newsletter_footer")


def _loyalty_tier(points: int) -> str:
    for limit, name in _TIERS:
        if points < limit:
            return name
    return "platinum"


def _custom_value(r: SplitMix, depth: int = 0) -> Any:
    kind = r.randrange(8 if depth < 3 else 5)
    if kind == 0:
        return r.randrange(-5, 10_000)
    if kind == 1:
        return round(r.uniform(-100, 1000), r.randrange(0, 4))
    if kind == 2:
        return r.choice(_WORDS) + ("" if r.random() < 0.5 else f"-{r.randrange(100)}")
    if kind == 3:
        return r.random() < 0.5
    if kind == 4:
        return None
    if kind == 5:
        return [_custom_value(r, depth + 1) for _ in range(r.randrange(0, 6))]
    return {f"{r.choice(_WORDS)}_{i}": _custom_value(r, depth + 1) for i in range(r.randrange(1, 4))}


def _deep(r: SplitMix, depth: int) -> Any:
    node: Any = {"leaf": r.choice(_WORDS), "n": r.randrange(100)}
    for level in range(depth):
        key = r.choice(_WORDS)
        node = {key: node} if level % 3 else {key: node, "level": depth - level, "list": [r.randrange(9)]}
    return node


def build_vars(
    u: list[float], seed: int, source: str, signup: str, member: bool, points: int, top_categories: list[str],
    tier_pref: float, z: float, created_year: int,
) -> dict[str, Any] | None:
    """The ``vars`` object of one user (None: the user has no ``vars`` key).

    ``u`` holds the user's :data:`SHAPE_COLUMNS` uniforms (a list, for speed).
    ``source``, ``signup`` and ``member`` are latent-linked (they shift the
    user's rates), so they carry real signal; the rest is shape.
    """
    if u[0] < 0.07:
        return None if u[0] < 0.04 else {}
    v: dict[str, Any] = {}
    if u[1] < 0.85:
        v["source"] = source
    if u[3] < 0.8:
        v["signup"] = signup
    if member or u[2] < 0.6:
        v["loyalty"] = {"tier": _loyalty_tier(points), "points": points, "since": created_year} if u[3] < 0.3 else {
            "tier": _loyalty_tier(points), "points": points}
    if member:
        v["membership"] = {"plan": "plus", "auto_renew": u[3] < 0.7}
    # engaged users fill in their preferences more often
    if u[4] < 1.0 / (1.0 + math.exp(0.2 - z)):
        prefs: dict[str, Any] = {}
        if u[5] < 0.8:
            prefs["categories"] = top_categories[: 1 + int(u[6] * 3)]
        if u[7] < 0.6:
            k = (tier_pref > 0) + int(u[8] * 3)
            prefs["sizes"] = list(_SIZES[k: k + 1 + int(u[9] * 2)])
        if u[10] < 0.4:
            k = int(u[11] * len(_COLOURS))
            prefs["colours"] = list((_COLOURS + _COLOURS)[k: k + 1 + int(u[12] * 4)])
        if u[13] < 0.5:
            prefs["newsletter"] = u[14] < 0.7
        v["preferences"] = prefs
    if u[15] < 0.5:
        v["locale"] = _LOCALES[int(u[16] * len(_LOCALES))]
    if u[17] < 0.3:
        v["birth_year"] = 1950 + int(u[18] * 55)
    if u[19] < 0.25:
        v["gender"] = ("f", "m", "x", "undisclosed")[int(u[20] * 4)]
    if u[21] < 0.07:
        first = int(u[22] * len(_QUESTIONS))
        v["survey"] = {
            q: (int(u[24] * 11) if q == "nps" else _ANSWERS[int(u[25 + k] * len(_ANSWERS))])
            for k, q in enumerate(_QUESTIONS[first: first + 1 + int(u[23] * 5)])
        }
    elif u[21] < 0.11:
        v["attribution"] = {
            "first_touch": {"utm_source": ("google", "meta", "tiktok", "email")[int(u[22] * 4)],
                            "utm_campaign": _UTM[int(u[23] * len(_UTM))]},
            "touches": 1 + int(u[24] * 30),
        }
    if u[26] < 0.06:
        r = SplitMix(seed)
        if u[26] < 0.006:
            v["profile"] = _deep(r, r.randrange(5, 16))
        for i in range(r.randrange(1, 4)):
            v[f"x_{r.choice(_WORDS)}_{i}"] = _custom_value(r)
    return v


def build_extras(u: list[float], seed: int, has_push: bool) -> dict[str, Any]:
    """Optional top-level keys: devices, addresses, tags, consents."""
    out: dict[str, Any] = {}
    x = u[30]
    y = u[31]
    if has_push or x < 0.1:
        k = int(y * 97) % len(_DEVICES)
        kind, model = _DEVICES[k]
        devices: list[dict[str, Any]] = [{"type": kind, "model": model, "push": has_push}]
        for j in range(1, 1 + int(y * 3)):
            kind, model = _DEVICES[(k + 3 * j) % len(_DEVICES)]
            devices.append({"type": kind, "model": model})
        out["devices"] = devices
    if 0.1 <= x < 0.18:
        first = int(u[27] * len(_CITIES))
        out["addresses"] = [
            {"city": c, "country": k, "zip": f"{10000 + (seed >> (8 * i)) % 90000}"} if u[28] < 0.6 else {"city": c, "country": k}
            for i, (c, k) in enumerate((_CITIES + _CITIES)[first: first + 1 + int(u[29] * 3)])
        ]
    elif 0.18 <= x < 0.3:
        first = int(u[27] * len(_TAGS))
        out["tags"] = list((_TAGS + _TAGS)[first: first + int(u[29] * 8)])
    elif 0.3 <= x < 0.45:
        out["consents"] = {"email": y < 0.9, "sms": y < 0.3, "profiling": y < 0.6}
    return out
