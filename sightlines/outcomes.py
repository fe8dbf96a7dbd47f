"""What actually happened after a cutoff: the labels of each sightline, and which cutoffs a client can use.

A training example is a user at a past cutoff ``c`` (the end of day ``c``);
its label aggregates the user's events in ``(c, c + horizon]``, read from
today's snapshot, which holds the full history. Users who did not exist yet
at ``c``, users outside a conditional sightline's population (e.g. no order
in the window for ``aov_7``) and users for whom a once-only event already
happened (an earlier opt-out) are not examples: their label is NaN.

Examples
--------
>>> import numpy as np
>>> from sightlines.features import Chunk, EventBlock
>>> day = 86400.0
>>> block = EventBlock(uidx=np.array([0, 0, 1]), t=np.array([1.5, 3.5, 9.5]) * day,
...                    values={"total": np.array([10.0, 30.0, 5.0])})
>>> chunk = Chunk(user_ids=["a", "b"], scalars={}, lists={}, events={"purchases": block},
...               created=np.array([0.0, 0.0]), optout=np.array([np.nan, np.nan]))
>>> from sightlines.catalog import get_sightline
>>> out = labels(chunk, get_sightline("rev_30"), Roles(), start=1 * day, end=31 * day)
>>> out.label.tolist()
[40.0, 5.0]
>>> labels(chunk, get_sightline("purchase_7"), Roles(), start=1 * day, end=8 * day).label.tolist()
[1.0, 0.0]
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

from .catalog import Sightline
from .config import Roles
from .features import ITEMS_FIELD, Chunk, EventBlock

__all__ = ["Outcome", "labels", "plan_cutoffs", "MIN_HISTORY_DAYS"]

_DAY = 86400.0
#: days of history a cutoff needs before it, so that its features mean something
MIN_HISTORY_DAYS = 28


@dataclass
class Outcome:
    """Labels of one sightline at one cutoff for a chunk of users.

    ``label`` is NaN for users that are not examples; ``weight`` is the
    example weight the objective needs (the message count for rates, else 1);
    ``positive`` marks users whose event happened (what sampling keeps).
    """

    label: np.ndarray
    weight: np.ndarray
    positive: np.ndarray


def _role_path(roles: Roles, role: str) -> str:
    return {"purchases": roles.purchases, "messages": roles.messages, "pageviews": roles.pageviews}[role]


def _field(block: EventBlock, name: str, roles: Roles) -> tuple[np.ndarray, bool]:
    """Per-event values of a role field; the flag is True when the field is a timestamp-or-null."""
    if name == "order_total":
        return block.values[roles.order_total], False
    if name == "order_items":
        return block.values[ITEMS_FIELD], False
    if name == "opened":
        return block.flag_times[roles.message_opened], True
    if name == "clicked":
        return block.flag_times[roles.message_clicked], True
    if name in block.values:
        return block.values[name], False
    if name in block.flag_times:
        return block.flag_times[name], True
    raise KeyError(f"the event records have no field {name!r} (known: {sorted(block.values) + sorted(block.flag_times)})")


def _bincount(idx: np.ndarray, n: int, weights: np.ndarray | None = None) -> np.ndarray:
    """``np.bincount`` that always returns float64 of length ``n`` (also for empty input)."""
    return np.bincount(idx, weights=weights, minlength=n).astype(np.float64)


def labels(chunk: Chunk, sightline: Sightline, roles: Roles, *, start: float, end: float) -> Outcome:
    """The labels of ``sightline`` for the events in ``(start, end]`` (epoch seconds).

    Parameters
    ----------
    chunk : Chunk
        A block of users, decoded with a plan that includes the role fields.
    sightline : Sightline
    roles : Roles
    start, end : float
        The window: the cutoff instant and cutoff + horizon.
    """
    n = chunk.n
    with np.errstate(invalid="ignore"):
        exists = ~(chunk.created > start)  # unknown creation time: assume the user existed
    weight = np.ones(n)
    if sightline.role == "optout":
        t = chunk.optout
        with np.errstate(invalid="ignore"):
            happened = (t > start) & (t <= end)
            before = t <= start
        label = happened.astype(np.float64)
        valid = exists & ~before if sightline.exclude_happened else exists
        label[~valid] = np.nan
        return Outcome(label=label, weight=weight, positive=happened & valid)

    block = chunk.events[_role_path(roles, sightline.role)]
    with np.errstate(invalid="ignore"):
        inwin = (block.t > start) & (block.t <= end)
    uidx = block.uidx[inwin]
    count = _bincount(uidx, n)
    agg = sightline.aggregate
    if agg == "any":
        label = (count > 0).astype(np.float64)
    elif agg == "count":
        label = count
    else:
        values, is_flag = _field(block, sightline.field or "", roles)
        v = values[inwin]
        if is_flag:
            with np.errstate(invalid="ignore"):
                v = (v <= end).astype(np.float64)
        present = ~np.isnan(v)
        total = _bincount(uidx, n, np.where(present, v, 0.0))
        with np.errstate(invalid="ignore", divide="ignore"):
            if agg == "sum":
                label = total
            elif agg in ("mean", "rate"):
                label = total / _bincount(uidx, n, present.astype(np.float64))
            else:  # ratio
                per, _ = _field(block, sightline.per or "", roles)
                p = per[inwin]
                label = total / _bincount(uidx, n, np.where(np.isnan(p), 0.0, p))
        label[~np.isfinite(label)] = np.nan
    if sightline.weight == "count":
        weight = count.copy()
    valid = exists.copy()
    if sightline.condition == "any":
        valid &= count > 0
    label[~valid] = np.nan
    positive = valid & (count > 0)
    return Outcome(label=label, weight=weight, positive=positive)


def plan_cutoffs(sightline: Sightline, run_date: dt.date, history_days: float, *,
                 min_history_days: int = MIN_HISTORY_DAYS) -> tuple[list[dt.date], str | None]:
    """The cutoff dates a sightline trains on, newest first, or ``([], reason)`` if it has none.

    A cutoff ``c`` needs its label window to have ended (``c + horizon <= run_date``)
    and ``min_history_days`` of history before it. Short horizons stack more
    cutoffs (horizon 1: the last 7 days, so every weekday is seen); long ones fewer.
    """
    h = sightline.horizon
    if h <= 1:
        stride, k = 1, 7
    elif h <= 7:
        stride, k = h, 4
    elif h <= 90:
        stride, k = h, 3
    else:
        stride, k = 30, 2
    out = []
    for i in range(k):
        c = run_date - dt.timedelta(days=h + i * stride)
        if (run_date - c).days + min_history_days <= history_days:
            out.append(c)
    if not out:
        need = h + min_history_days
        return [], (f"not enough history for a {h}-day horizon: the client's data covers about "
                    f"{history_days:.0f} days and this sightline needs at least {need}")
    return out, None
