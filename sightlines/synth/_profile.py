"""Turn one chunk's simulated users into profile dicts as of a snapshot cut.

A snapshot at date D keeps the users created before D+1 00:00Z and only the
events timed before it; opens, clicks and the opt-out show only if they too
happened before the cut (so a message's ``opened`` can be null on D and set on
D+1). The loyalty points follow the spend so far. Everything else about a user
is the same in every snapshot.

For speed, the long event lists (page views, messages) are built directly as
JSON text and put in the dicts as :class:`orjson.Fragment`; :func:`materialize`
turns one back into a list when a user has to be edited.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from ._catalog import N_TIERS
from ._events import CHANNELS, ORDER_CHANNELS, ChunkEvents, url_table
from ._latent import Latent
from ._model import STREAM_SHAPE
from ._timefmt import TimeFormatter
from ._vars import SHAPE_COLUMNS, build_extras, build_vars
from ._world import Sim, rng_for

__all__ = ["Renderer", "Shapes", "draw_shapes", "truth_columns", "materialize", "FRAGMENT_ROLES"]

#: roles whose lists are written as pre-serialised JSON
FRAGMENT_ROLES = ("messages", "pageviews")


@dataclass(frozen=True)
class Shapes:
    """Per-user shape draws of a chunk."""

    u: np.ndarray  # (n, SHAPE_COLUMNS) uniforms
    seed: np.ndarray  # (n,) int64
    omit_empty: np.ndarray  # bool: leave out empty event lists instead of writing []
    omit_optout: np.ndarray  # bool: leave out a null optout
    rich_orders: np.ndarray  # bool: orders carry order_id and channel
    key_order: np.ndarray  # int: 0 = usual order, else a permutation seed


def draw_shapes(sim: Sim, chunk: int) -> Shapes:
    n = sim.world.chunk_size
    rng = rng_for(sim.world, STREAM_SHAPE, chunk)
    u = rng.random((n, SHAPE_COLUMNS))
    seed = rng.integers(0, 2**62, n)
    v = rng.random((4, n))
    return Shapes(u, seed, v[0] < 0.3, v[1] < 0.12, v[2] < 0.15, np.where(v[3] < 0.05, 1 + (v[3] * 1e6).astype(int) % 5, 0))


def materialize(d: dict[str, Any], texts: dict[str, str], role: str) -> Any:
    """The value of ``d[role]`` as plain Python data (parsing a pre-serialised list)."""
    if role in texts and isinstance(d.get(role), orjson.Fragment):
        d[role] = orjson.loads(texts[role])
    return d.get(role)


def _reorder(d: dict[str, Any], k: int) -> dict[str, Any]:
    """The same profile with its keys after ``id`` rotated by ``k`` (reversed when ``k`` is odd)."""
    keys = list(d)[1:]
    r = k % len(keys) if keys else 0
    keys = keys[r:] + keys[:r]
    if k % 2:
        keys.reverse()
    return {"id": d["id"], **{key: d[key] for key in keys}}


def _slice_bounds(owner: np.ndarray, lo: int, hi: int) -> tuple[int, int]:
    return int(np.searchsorted(owner, lo, side="left")), int(np.searchsorted(owner, hi, side="left"))


def _offsets(owner: np.ndarray, lo: int, hi: int) -> list[int]:
    return np.searchsorted(owner, np.arange(lo, hi + 1), side="left").tolist()


def _json_lists(items: list[str], off: list[int]) -> list[str]:
    """Per-user JSON arrays from the per-event JSON texts and the users' offsets."""
    return ["[" + ",".join(items[a:b]) + "]" for a, b in zip(off[:-1], off[1:])]


class Renderer:
    """Builds profile dicts for one world; holds lookup tables shared by all chunks."""

    def __init__(self, sim: Sim):
        self.sim = sim
        cat = sim.catalogue
        self.fmt = TimeFormatter(sim.epoch0, sim.world.start, sim.n_days)
        self.url_tail = np.array([',"url":' + orjson.dumps(u).decode() + "}" for u in url_table(sim)], dtype=object)
        self.sku = cat.sku
        self.title = cat.title
        self.price = cat.price.tolist()
        self.categories = cat.categories
        self.sources = sim.params.sources
        self.signups = sim.params.signup_channels
        campaigns = [orjson.dumps(c).decode() for c in sim.calendar.campaigns]
        # message tails by (channel, campaign + 1): the campaign is shown on e-mails only
        n_camp = len(campaigns) + 1
        self.n_camp = n_camp
        self.camp_tail = np.array(["}"] + [',"campaign":' + c + "}" for c in campaigns], dtype=object)
        self.channel_head = np.array([f',"channel":"{c}","opened":' for c in CHANNELS], dtype=object)
        plain = []
        for ch in range(len(CHANNELS)):
            for g in range(n_camp):
                tail = self.camp_tail[g] if ch == 0 else "}"
                plain.append(f'{self.channel_head[ch]}null,"clicked":null{tail}')
        self.unopened_tail = np.array(plain, dtype=object)

    def _sec(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = t * 86400.0
        sec = np.floor(x)
        ms = np.minimum(((x - sec) * 1000.0).astype(np.int64), 999)
        return sec.astype(np.int64) + self.sim.epoch0, ms

    def _tokens(self, t: np.ndarray, owner: np.ndarray, lat: Latent) -> list[object]:
        sec, ms = self._sec(t)
        return self.fmt.tokens(sec, ms, lat.ts_style[owner], lat.tz_offset[owner])

    def _json_tokens(self, t: np.ndarray, owner: np.ndarray, lat: Latent) -> np.ndarray:
        sec, ms = self._sec(t)
        return self.fmt.json_tokens(sec, ms, lat.ts_style[owner], lat.tz_offset[owner])

    def render(
        self, lat: Latent, ev: ChunkEvents, shapes: Shapes, lo: int, hi: int, cut_day: int
    ) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
        """Profiles of the chunk's users ``lo <= i < hi`` (chunk-local) as of time ``cut_day``.

        Returns the profile dicts and, per profile, the JSON text of its
        pre-serialised lists (see :func:`materialize`).
        """
        if hi <= lo:
            return [], []
        cut_sec = float(cut_day) * 86400.0
        users = np.arange(lo, hi)

        def before(t: np.ndarray) -> np.ndarray:
            # compare whole seconds, exactly as the timestamps are written (nan -> False)
            return np.floor(t * 86400.0) < cut_sec

        # page views: JSON text per event, then per user
        a, b = _slice_bounds(ev.pv_owner, lo, hi)
        keep = before(ev.pv_t[a:b])
        owner = ev.pv_owner[a:b][keep]
        pv_json = ('{"time":' + self._json_tokens(ev.pv_t[a:b][keep], owner, lat) + self.url_tail[ev.pv_url[a:b][keep]]).tolist()
        pv_off = _offsets(owner, lo, hi)
        pv_text = _json_lists(pv_json, pv_off)

        # messages
        a, b = _slice_bounds(ev.msg_owner, lo, hi)
        keep = before(ev.msg_t[a:b])
        owner = ev.msg_owner[a:b][keep]
        channel = ev.msg_channel[a:b][keep].astype(np.int64)
        campaign = ev.msg_campaign[a:b][keep] + 1
        msg = '{"time":' + self._json_tokens(ev.msg_t[a:b][keep], owner, lat)
        tails = self.unopened_tail[channel * self.n_camp + campaign]
        t_open = ev.msg_open[a:b][keep]
        opened = before(t_open)
        if opened.any():
            t_click = ev.msg_click[a:b][keep][opened]
            clicked = before(t_click)
            o_owner = owner[opened]
            click_tok = np.full(len(o_owner), "null", dtype=object)
            if clicked.any():
                click_tok[clicked] = self._json_tokens(t_click[clicked], o_owner[clicked], lat)
            camp = np.where(channel[opened] == 0, campaign[opened], 0)
            tails[opened] = (
                self.channel_head[channel[opened]] + self._json_tokens(t_open[opened], o_owner, lat)
                + ',"clicked":' + click_tok + self.camp_tail[camp]
            )
        msg_text = _json_lists((msg + tails).tolist(), _offsets(owner, lo, hi))
        msg_off = _offsets(owner, lo, hi)

        # purchases: plain dicts (few per user, nested items)
        a, b = _slice_bounds(ev.pur_owner, lo, hi)
        keep_idx = a + np.flatnonzero(before(ev.pur_t[a:b]))
        owner = ev.pur_owner[keep_idx]
        toks = self._tokens(ev.pur_t[keep_idx], owner, lat)
        starts, ends = ev.item_offsets[keep_idx], ev.item_offsets[keep_idx + 1]
        n_items = ends - starts
        item_idx = np.repeat(ends - n_items.cumsum(), n_items) + np.arange(int(n_items.sum())) if len(n_items) else np.zeros(0, int)
        sku, title, price = self.sku, self.title, self.price
        items = [
            {"sku": sku[s], "title": title[s], "price": price[s], "qty": q}
            for s, q in zip(ev.item_sku[item_idx].tolist(), ev.item_qty[item_idx].tolist())
        ]
        item_off = np.concatenate([[0], n_items.cumsum()]).tolist()
        pur = [
            {"time": t, "total": tot, "items": items[item_off[j]:item_off[j + 1]]}
            for j, (t, tot) in enumerate(zip(toks, ev.pur_total[keep_idx].tolist()))
        ]
        rich = shapes.rich_orders[owner]
        if rich.any():
            first = np.searchsorted(owner, owner)  # position of each owner's first order
            for j in np.flatnonzero(rich).tolist():
                pur[j]["order_id"] = f"o-{int(lat.index[owner[j]])}-{j - int(first[j])}"
                pur[j]["channel"] = ORDER_CHANNELS[int(ev.pur_channel[keep_idx[j]])]
        pur_off = _offsets(owner, lo, hi)
        spend = np.bincount(owner - lo, weights=ev.pur_total[keep_idx], minlength=hi - lo)

        # per-user fields
        created_tok = self._tokens(lat.created[lo:hi], users, lat)
        opt = ev.optout_t[lo:hi]
        opt_mask = before(opt)
        opt_tok: list[object] = [None] * (hi - lo)
        if opt_mask.any():
            for j, tok in zip(np.flatnonzero(opt_mask).tolist(), self._tokens(opt[opt_mask], users[opt_mask], lat)):
                opt_tok[j] = tok
        cats = self.categories
        top_cats = [[cats[c] for c in row] for row in np.argsort(-lat.affinity[lo:hi], axis=1)[:, :3].tolist()]
        created_date = np.datetime64(self.sim.world.start) + lat.created[lo:hi].astype(np.int64)
        created_year = (created_date.astype("datetime64[Y]").astype(np.int64) + 1970).tolist()
        points = (np.floor(spend) + 100).astype(int).tolist()
        sources = [self.sources[k] for k in lat.source[lo:hi].tolist()]
        signups = [self.signups[k] for k in lat.signup[lo:hi].tolist()]
        uniforms = shapes.u[lo:hi].tolist()
        seeds = shapes.seed[lo:hi].tolist()
        width = self.sim.id_width
        ids = [f"u-{i:0{width}d}" for i in lat.index[lo:hi].tolist()]
        member = lat.member[lo:hi].tolist()
        tier_pref = lat.tier_pref[lo:hi].tolist()
        z = lat.z[lo:hi].tolist()
        has_push = (lat.push_rate[lo:hi] > 0).tolist()
        omit_empty = shapes.omit_empty[lo:hi].tolist()
        omit_optout = shapes.omit_optout[lo:hi].tolist()
        key_order = shapes.key_order[lo:hi].tolist()
        fragment = orjson.Fragment
        profiles = []
        texts = []
        for j in range(hi - lo):
            d: dict[str, Any] = {"id": ids[j], "created": created_tok[j]}
            u = uniforms[j]
            v = build_vars(u, seeds[j], sources[j], signups[j], member[j], points[j], top_cats[j], tier_pref[j], z[j], created_year[j])
            if v is not None:
                d["vars"] = v
            keep_empty = not omit_empty[j]
            if pur_off[j + 1] > pur_off[j] or keep_empty:
                d["purchases"] = pur[pur_off[j]:pur_off[j + 1]]
            t: dict[str, str] = {}
            if msg_off[j + 1] > msg_off[j] or keep_empty:
                d["messages"] = fragment(msg_text[j])
                t["messages"] = msg_text[j]
            if pv_off[j + 1] > pv_off[j] or keep_empty:
                d["pageviews"] = fragment(pv_text[j])
                t["pageviews"] = pv_text[j]
            if opt_tok[j] is not None or not omit_optout[j]:
                d["optout"] = {"time": opt_tok[j]}
            if u[30] < 0.45 or has_push[j]:
                d.update(build_extras(u, seeds[j], has_push[j]))
            if key_order[j]:
                d = _reorder(d, key_order[j])
            profiles.append(d)
            texts.append(t)
        return profiles, texts


def truth_columns(sim: Sim, lat: Latent, ev: ChunkEvents, lo: int, hi: int) -> dict[str, np.ndarray]:
    """The latent parameters of users ``lo <= i < hi`` (chunk-local) as plain arrays (times in world days)."""
    s = slice(lo, hi)
    cols = {
        "index": lat.index[s],
        "created_day": lat.created[s],
        "churn_day": lat.churn[s],
        "mail_end_day": lat.mail_end[s],
        "optout_day": ev.optout_t[s],
        "z": lat.z[s],
        "source": lat.source[s],
        "signup": lat.signup[s],
        "member": lat.member[s],
        "one_off": lat.one_off[s],
        "pv_rate": lat.pv_rate[s],
        "conv": lat.conv[s],
        "purchase_rate": lat.purchase_rate[s],
        "life_mean": lat.life_mean[s],
        "mail_rate": lat.mail_rate[s],
        "sms_rate": lat.sms_rate[s],
        "push_rate": lat.push_rate[s],
        "open_prob": lat.open_prob[s],
        "click_prob": lat.click_prob[s],
        "optout_prob": lat.optout_prob[s],
        "basket": lat.basket[s],
        "tier_pref": lat.tier_pref[s],
        "aov_mean": lat.aov_mean[s],
        "ts_style": lat.ts_style[s],
        "tz_offset": lat.tz_offset[s],
    }
    for k in range(N_TIERS):
        cols[f"tier_prob_{k}"] = lat.tier_probs[s, k]
    for c, name in enumerate(sim.catalogue.categories):
        cols[f"affinity_{name}"] = lat.affinity[s, c]
    return cols
