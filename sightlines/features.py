"""Profiles -> features: typed records of a block of users become a columnar chunk, then feature columns.

Two pure steps, both independent of storage:

* :func:`chunk_from_users` flattens a block of decoded users into numpy arrays
  (scalar values, and for every list of timestamped records a flat array of
  events: user index, time, numeric fields). This is the only per-user Python.
* :func:`feature_columns` turns a chunk into the schema's feature columns as of
  any instant. ``time_travel=True`` computes what was knowable at that instant:
  events after it are ignored and state columns are missing.

Examples
--------
>>> import datetime as dt
>>> from sightlines._decode import build_plan
>>> from sightlines.profiles import decode_block
>>> from sightlines.schema import learn_schema
>>> users = [{"id": "a", "purchases": [{"time": "2026-11-20T10:00:00Z", "total": 10},
...                                    {"time": "2026-01-02T10:00:00Z", "total": 30}]},
...          {"id": "b", "purchases": []}]
>>> schema = learn_schema(users, min_support=0.0)
>>> plan = build_plan(schema, schema.roles)
>>> import orjson
>>> block = decode_block([orjson.dumps(u) for u in users], 1, "x", plan, {})
>>> chunk = chunk_from_users(block.users, block.ids, plan, schema, latest=end_of_day(dt.date(2026, 11, 24)))
>>> cols = feature_columns(chunk, schema, as_of=end_of_day(dt.date(2026, 11, 24)))
>>> cols["purchases.n"].tolist(), cols["purchases.n_7d"].tolist(), cols["purchases.total.sum_365d"].tolist()
([2.0, 0.0], [1.0, 0.0], [40.0, 0.0])
>>> old = feature_columns(chunk, schema, as_of=end_of_day(dt.date(2026, 6, 1)), time_travel=True)
>>> old["purchases.n"].tolist()
[1.0, 0.0]
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any

import numpy as np
import pyarrow as pa

from ._decode import MAX_LIST, Plan
from ._native import features as _native_features
from ._timeparse import end_of_day, parse_times
from .config import Roles
from .schema import HALF_LIVES, LEVEL_WINDOWS, RATE_WINDOWS, EventArray, Schema, column_name

__all__ = ["Chunk", "EventBlock", "chunk_from_users", "feature_columns", "to_table", "to_float", "end_of_day",
           "ITEMS_FIELD"]

_DAY = 86400.0
#: name of the per-purchase item count (sum of ``qty``, 1 per item without one) in an EventBlock
ITEMS_FIELD = "__items__"


@dataclass
class EventBlock:
    """The events of one list of timestamped records, for a block of users.

    ``uidx`` (sorted) says whose event each is; ``t`` is the event time in
    epoch seconds (NaN if unreadable); ``values`` holds per-record numbers,
    ``flag_times`` per-record timestamps-or-null, ``codes`` per-record
    categorical codes (-1: other or missing).
    """

    uidx: np.ndarray
    t: np.ndarray
    values: dict[str, np.ndarray] = field(default_factory=dict)
    flag_times: dict[str, np.ndarray] = field(default_factory=dict)
    codes: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class Chunk:
    """A block of users in columnar form."""

    user_ids: list[str]
    scalars: dict[str, np.ndarray]
    lists: dict[str, np.ndarray]
    events: dict[str, EventBlock]
    created: np.ndarray
    optout: np.ndarray

    @property
    def n(self) -> int:
        return len(self.user_ids)

    def to_tables(self, event_names: dict[str, str], *, offset: int = 0, scalars: Iterable[str] | None = None,
                  lists: bool = True) -> dict[str, pa.Table]:
        """The chunk as arrow tables: ``users`` (one row per user) and one table per event list.

        ``event_names`` maps each event list's path to a short file-safe name;
        ``offset`` is added to the user index of the events (when several chunks
        are stacked into one file). ``scalars`` (names) and ``lists`` choose
        which of the users' values to keep (default: all). :meth:`from_tables`
        reverses this exactly.
        """
        users = {"user_id": pa.array(self.user_ids, pa.string()), "created": pa.array(self.created),
                 "optout": pa.array(self.optout)}
        keep = self.scalars if scalars is None else {k: self.scalars[k] for k in scalars}
        users.update({f"s:{k}": pa.array(v) for k, v in keep.items()})
        if lists:
            users.update({f"l:{k}": pa.array(v) for k, v in self.lists.items()})
        out = {"users": _required_table(users)}
        for path, b in self.events.items():
            cols = {"uidx": pa.array((b.uidx + offset).astype(np.int32)), "t": pa.array(b.t)}
            cols.update({f"v:{k}": pa.array(v) for k, v in b.values.items()})
            cols.update({f"f:{k}": pa.array(v) for k, v in b.flag_times.items()})
            cols.update({f"c:{k}": pa.array(v) for k, v in b.codes.items()})
            out[event_names[path]] = _required_table(cols)
        return out

    @classmethod
    def from_tables(cls, users: pa.Table, events: dict[str, pa.Table]) -> Chunk:
        """Rebuild a chunk from :meth:`to_tables` output (``events`` keyed by event list path)."""

        def np_(col: Any) -> np.ndarray:
            return col.to_numpy(zero_copy_only=False)

        blocks = {}
        for path, t in events.items():
            b = EventBlock(uidx=np_(t.column("uidx")).astype(np.int64), t=np_(t.column("t")))
            for name in t.column_names:
                kind, _, field_name = name.partition(":")
                if kind == "v":
                    b.values[field_name] = np_(t.column(name))
                elif kind == "f":
                    b.flag_times[field_name] = np_(t.column(name))
                elif kind == "c":
                    b.codes[field_name] = np_(t.column(name)).astype(np.int16)
            blocks[path] = b
        names = users.column_names
        return cls(
            user_ids=users.column("user_id").to_pylist(),
            scalars={n[2:]: np_(users.column(n)) for n in names if n.startswith("s:")},
            lists={n[2:]: np_(users.column(n)) for n in names if n.startswith("l:")},
            events=blocks, created=np_(users.column("created")), optout=np_(users.column("optout")),
        )

    def take(self, rows: np.ndarray) -> Chunk:
        """A chunk of the users at ``rows`` (sorted indices), with their events."""
        rows = np.asarray(rows, dtype=np.int64)
        remap = np.full(self.n, -1, dtype=np.int64)
        remap[rows] = np.arange(len(rows))
        events = {}
        for path, b in self.events.items():
            new_uidx = remap[b.uidx]
            keep = new_uidx >= 0
            if keep.all():  # the rows left out have no events (bad lines, say): only the user index moves
                events[path] = EventBlock(uidx=new_uidx, t=b.t, values=dict(b.values),
                                          flag_times=dict(b.flag_times), codes=dict(b.codes))
                continue
            events[path] = EventBlock(
                uidx=new_uidx[keep], t=b.t[keep],
                values={k: v[keep] for k, v in b.values.items()},
                flag_times={k: v[keep] for k, v in b.flag_times.items()},
                codes={k: v[keep] for k, v in b.codes.items()},
            )
        return Chunk(
            user_ids=[self.user_ids[i] for i in rows.tolist()],
            scalars={k: v[rows] for k, v in self.scalars.items()},
            lists={k: v[rows] for k, v in self.lists.items()},
            events=events, created=self.created[rows], optout=self.optout[rows],
        )


def to_float(values: list[Any]) -> np.ndarray:
    """Numbers (and numeric strings) -> float64; anything else (objects, text, inf) -> NaN."""
    try:
        out = np.array(values, dtype=np.float64)
    except (ValueError, TypeError, OverflowError):
        out = np.empty(len(values), dtype=np.float64)
        for i, v in enumerate(values):
            t = type(v)
            try:
                if t is float or t is int or t is bool:
                    out[i] = v
                elif t is str:
                    out[i] = float(v)
                else:
                    out[i] = np.nan
            except (ValueError, OverflowError):  # text, or an integer beyond any float
                out[i] = np.nan
    if out.ndim != 1:  # e.g. every value a list of the same length
        return np.full(len(values), np.nan)
    out[~np.isfinite(out)] = np.nan
    return out


def _level_index(levels: tuple[str, ...]) -> dict[Any, float]:
    """Value -> code for a categorical column; numbers and booleans also match their spelled-out level."""
    index: dict[Any, float] = {}
    for i, lev in enumerate(levels):
        index[lev] = float(i)
        if lev in ("true", "false"):
            index[lev == "true"] = float(i)
        else:
            try:
                num = float(lev)
            except ValueError:
                continue
            if num == num:
                index.setdefault(num, float(i))  # also matches the equal int (hash(3) == hash(3.0))
    index[None] = np.nan
    return index


def _codes(values: list[Any], levels: tuple[str, ...]) -> np.ndarray:
    """Categorical codes: level index, ``len(levels)`` for other, NaN for missing (or objects, lists)."""
    index = _level_index(levels)
    other = float(len(levels))
    get = index.get
    try:
        return np.array([get(v, other) for v in values], dtype=np.float64)
    except TypeError:  # an unhashable value (an object or a list where a scalar belongs): missing
        out = []
        for v in values:
            try:
                out.append(get(v, other))
            except TypeError:
                out.append(np.nan)
        return np.array(out, dtype=np.float64)


def _record_codes(values: list[Any], levels: tuple[str, ...]) -> np.ndarray:
    index = {lev: i for i, lev in enumerate(levels)}
    return np.array([index.get(v, -1) if type(v) is str else -1 for v in values], dtype=np.int16)


def _field(records: list[Any], attr: str) -> list[Any]:
    """The values of one attribute over a list of typed records (a C-speed loop)."""
    return list(map(attrgetter(attr), records))


def _lengths(values: list[Any]) -> np.ndarray:
    return np.array([len(v) if type(v) is list and len(v) <= MAX_LIST else np.nan for v in values], dtype=np.float64)


def chunk_from_users(users: list[Any], ids: list[str], plan: Plan, schema: Schema | None, *,
                     latest: float, roles: Roles | None = None) -> Chunk:
    """Flatten a block of decoded users into a :class:`Chunk`.

    Parameters
    ----------
    users : list
        Typed records from :func:`sightlines.profiles.decode_block`.
    ids : list of str
        Their user ids.
    plan : Plan
        The decoding plan the records were decoded with.
    schema : Schema or None
        The feature schema (None: only the role fields, e.g. while learning).
    latest : float
        Epoch seconds after which a time is absurd (the snapshot's end plus a
        day): such times become missing.
    roles : Roles, optional
        Where the event roles live; defaults to the schema's.
    """
    roles = roles or (schema.roles if schema is not None else Roles())
    n = len(users)
    scalars: dict[str, np.ndarray] = {}
    lists: dict[str, np.ndarray] = {}
    times = _Times()  # every time value of the chunk, parsed in one call at the end
    if schema is not None:
        for s in schema.scalars:
            get = plan.get[".".join(s.path)]
            vals = list(map(get, users))
            if s.kind == "timestamp":
                times.add(vals, scalars, s.name)
            elif s.kind == "categorical":
                scalars[s.name] = _codes(vals, s.levels)
            else:
                scalars[s.name] = to_float(vals)
        for lst in schema.lists:
            get = plan.get[".".join(lst.path)]
            lists[lst.name] = _lengths(list(map(get, users)))

    ev_specs: dict[str, EventArray] = {}
    if schema is not None:
        ev_specs = {".".join(e.path): e for e in schema.events}
    events: dict[str, EventBlock] = {}
    role_of = {p: r for r, p in roles.event_roles().items()}
    for path, node in plan.record_nodes.items():
        spec = ev_specs.get(path)
        get = plan.get[path]
        per_user = list(map(get, users))
        counts = np.fromiter((len(x) if x is not None else 0 for x in per_user), dtype=np.int64, count=n)
        too_long = counts > MAX_LIST
        if too_long.any():
            for i in np.flatnonzero(too_long):
                per_user[i] = None
            counts[too_long] = 0
        flat = [r for x in per_user if x for r in x]
        uidx = np.repeat(np.arange(n, dtype=np.int64), counts)
        tf = spec.time_field if spec else roles.time_field
        block = EventBlock(uidx=uidx, t=np.empty(0))
        times.add(_field(flat, node.children[tf].attr), block, "t")
        numeric = set(spec.numeric) if spec else set()
        flags = set(spec.flags) if spec else set()
        role = role_of.get(path)
        children = node.children
        if role == "purchases" and roles.order_total in children:
            numeric.add(roles.order_total)
        if role == "messages":
            flags.update(f for f in (roles.message_opened, roles.message_clicked) if f in children)
        for f in sorted(numeric):
            attr = node.children[f].attr
            block.values[f] = to_float(_field(flat, attr))
        for f in sorted(flags):
            attr = node.children[f].attr
            times.add(_field(flat, attr), block.flag_times, f)
        if spec:
            for f in spec.lengths:
                attr = node.children[f].attr
                block.values[f"{f}_n"] = _lengths(_field(flat, attr))
            for f, levels in spec.levels.items():
                attr = node.children[f].attr
                block.codes[f] = _record_codes(_field(flat, attr), levels)
        if role == "purchases" and roles.order_items in children and children[roles.order_items].kind == "items":
            _add_items(block, node, flat, roles)
        events[path] = block

    state: dict[str, np.ndarray] = {}
    times.add(list(map(plan.get[roles.created], users)), state, "created")
    times.add(list(map(plan.get[roles.optout], users)), state, "optout")
    times.parse(latest)
    return Chunk(user_ids=ids, scalars=scalars, lists=lists, events=events, created=state["created"],
                 optout=state["optout"])


class _Times:
    """Time values of several fields, parsed in one :func:`parse_times` call and handed back to each.

    ``parse_times`` reads every value on its own, so one call over all of
    them gives what a call per field gives, at one call's fixed cost (a
    hundred numpy operations: most of the time for a chunk of a few users).
    """

    def __init__(self) -> None:
        self.parts: list[tuple[list[Any], Any, str]] = []

    def add(self, values: list[Any], target: Any, key: str) -> None:
        """Parse ``values`` into ``target[key]`` (a dict) or ``target.key`` (an object)."""
        self.parts.append((values, target, key))

    def parse(self, latest: float) -> None:
        out = parse_times([v for values, _, _ in self.parts for v in values], latest=latest)
        start = 0
        for values, target, key in self.parts:
            part = out[start:start + len(values)]
            start += len(values)
            if isinstance(target, dict):
                target[key] = part
            else:
                setattr(target, key, part)


def _add_items(block: EventBlock, node: Any, flat: list[Any], roles: Any) -> None:
    """Per purchase: number of items (sum of qty; 1 per item without a usable qty)."""
    items_attr = node.children[roles.order_items].attr
    inode = node.children[roles.order_items]
    qty_attr = inode.children["qty"].attr
    per = _field(flat, items_attr)
    per = [x if x is not None and len(x) <= MAX_LIST else None for x in per]
    n_items = np.fromiter((len(x) if x else 0 for x in per), dtype=np.int64, count=len(per))
    flat_items = [it for x in per if x for it in x]
    qty = to_float(_field(flat_items, qty_attr))
    qty = np.where(np.isnan(qty) | (qty < 0) | (qty > 10_000), 1.0, qty)
    rec_of_item = np.repeat(np.arange(len(per), dtype=np.int64), n_items)
    total_qty = np.bincount(rec_of_item, weights=qty, minlength=len(per)).astype(np.float64)
    total_qty[np.array([x is None for x in per], dtype=bool)] = np.nan
    block.values[ITEMS_FIELD] = total_qty


# ---------------------------------------------------------------------------
# feature columns
# ---------------------------------------------------------------------------


def _segment_extreme(uidx: np.ndarray, x: np.ndarray, n: int, fn: Any) -> np.ndarray:
    """Per-user min or max of ``x`` (``uidx`` sorted); NaN for users without values."""
    out = np.full(n, np.nan)
    if len(x) == 0:
        return out
    starts = np.flatnonzero(np.r_[True, uidx[1:] != uidx[:-1]])
    out[uidx[starts]] = fn.reduceat(x, starts)
    return out


def _exposure_days(chunk: Chunk, as_of: float) -> np.ndarray:
    """Days each user had been around at ``as_of`` (since creation or first event; at least 1; NaN if not yet)."""
    n = chunk.n
    with np.errstate(invalid="ignore"):
        first = np.where(chunk.created <= as_of, chunk.created, np.nan)
        for b in chunk.events.values():
            ok = b.t <= as_of
            first = np.fmin(first, _segment_extreme(b.uidx[ok], b.t[ok], n, np.minimum))
        return np.maximum((as_of - first) / _DAY, 1.0)


def _event_features(ev: EventArray, block: EventBlock, n: int, as_of: float, windows: tuple[int, ...],
                    cols: dict[str, np.ndarray], exposure: np.ndarray) -> None:
    p = ev.name
    nb = len(windows) + 1
    with np.errstate(invalid="ignore"):
        age = (as_of - block.t) / _DAY
        valid = age >= 0
    uidx = block.uidx[valid]
    age_v = age[valid]
    bucket = np.searchsorted(np.asarray(windows, dtype=np.float64), age_v, side="right")
    key = uidx * nb + bucket

    def windowed(weights: np.ndarray | None) -> np.ndarray:
        m = np.bincount(key, weights=weights, minlength=n * nb).reshape(n, nb)
        return np.cumsum(m, axis=1)

    cnt = windowed(None)
    cols[f"{p}.n"] = cnt[:, -1]
    for k, w in enumerate(windows):
        cols[f"{p}.n_{w}d"] = cnt[:, k]
    cols[f"{p}.days_since_first"] = _segment_extreme(uidx, age_v, n, np.maximum)
    cols[f"{p}.days_since_last"] = _segment_extreme(uidx, age_v, n, np.minimum)
    for k, w in enumerate(windows):
        if w in RATE_WINDOWS:
            with np.errstate(invalid="ignore"):
                cols[f"{p}.per_day_{w}d"] = cnt[:, k] / np.minimum(float(w), exposure)
    for h in HALF_LIVES:
        cols[f"{p}.decayed_{h}d"] = np.bincount(uidx, weights=np.exp2(-age_v / h), minlength=n).astype(np.float64)

    fields: list[tuple[str, np.ndarray]] = []
    for f in ev.numeric:
        fields.append((f, block.values[f][valid]))
    for f in ev.flags:
        ft = block.flag_times[f]
        with np.errstate(invalid="ignore"):
            fields.append((f, (ft[valid] <= as_of).astype(np.float64)))
    for f in ev.lengths:
        fields.append((f"{f}_n", block.values[f"{f}_n"][valid]))
    for f, x in fields:
        present = ~np.isnan(x)
        s = windowed(np.where(present, x, 0.0))
        c = windowed(present.astype(np.float64))
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = s / c
        name = column_name([f])
        for k, w in enumerate(windows):
            cols[f"{p}.{name}.sum_{w}d"] = s[:, k]
            cols[f"{p}.{name}.mean_{w}d"] = mean[:, k]
    for f in ev.flags:
        ft = block.flag_times[f]
        with np.errstate(invalid="ignore"):
            fage = (as_of - ft) / _DAY
            ok = fage >= 0
        cols[f"{p}.{column_name([f])}.days_since_last"] = _segment_extreme(block.uidx[ok], fage[ok], n, np.minimum)
    for f, levels in sorted(ev.levels.items()):
        codes = block.codes[f][valid]
        lw = np.asarray(LEVEL_WINDOWS, dtype=np.float64)
        lb = np.searchsorted(lw, age_v, side="right")
        for li, lev in enumerate(levels):
            sel = codes == li
            m = np.bincount(uidx[sel] * (len(lw) + 1) + lb[sel], minlength=n * (len(lw) + 1)).reshape(n, len(lw) + 1)
            m = np.cumsum(m, axis=1)
            for k, w in enumerate(LEVEL_WINDOWS):
                cols[f"{p}.{column_name([f])}={column_name([lev])}.n_{w}d"] = m[:, k]


def feature_columns(chunk: Chunk, schema: Schema, *, as_of: float, time_travel: bool = False) -> dict[str, np.ndarray]:
    """The schema's feature columns for a chunk, as of ``as_of`` (epoch seconds).

    Parameters
    ----------
    chunk : Chunk
    schema : Schema
    as_of : float
        The instant the features describe (for a snapshot of day D: the end of D).
    time_travel : bool, default=False
        Compute what was knowable at ``as_of`` only: state columns are missing.

    Returns
    -------
    dict
        Column name -> float32 array, in ``schema.column_names()`` order.

    Notes
    -----
    The window aggregates run in compiled code (``sightlines/_native/_features.c``)
    when it is built; the numpy code here is the reference it must match bit for
    bit. ``SIGHTLINES_DECODER=python`` forces the reference.
    """
    if _native_features is not None and os.environ.get("SIGHTLINES_DECODER", "").lower() != "python":
        return _compiled_feature_columns(chunk, schema, as_of=as_of, time_travel=time_travel)
    return _reference_feature_columns(chunk, schema, as_of=as_of, time_travel=time_travel)


def _state_columns(chunk: Chunk, schema: Schema, as_of: float, time_travel: bool) -> dict[str, np.ndarray]:
    """The columns of scalars and list lengths (float64; timestamps as days before ``as_of``)."""
    n = chunk.n
    cols: dict[str, np.ndarray] = {}
    for s in schema.scalars:  # (a chunk made for time travel may hold only the timestamps)
        if s.kind == "timestamp":
            with np.errstate(invalid="ignore"):
                d = (as_of - chunk.scalars[s.name]) / _DAY
            d[d < 0] = np.nan
            cols[s.name] = d
        else:
            cols[s.name] = np.full(n, np.nan) if time_travel else chunk.scalars[s.name]
    for lst in schema.lists:
        cols[f"{lst.name}.len"] = np.full(n, np.nan) if time_travel else chunk.lists[lst.name]
    return cols


def _reference_feature_columns(chunk: Chunk, schema: Schema, *, as_of: float,
                               time_travel: bool = False) -> dict[str, np.ndarray]:
    """:func:`feature_columns` in numpy alone (the reference of the compiled window aggregates)."""
    n = chunk.n
    cols = _state_columns(chunk, schema, as_of, time_travel)
    exposure = _exposure_days(chunk, as_of)
    for ev in schema.events:
        _event_features(ev, chunk.events[".".join(ev.path)], n, as_of, schema.windows, cols, exposure)
    return {name: _to_float32(cols[name]) for name in schema.column_names()}


def _event_statistics(ev: EventArray, block: EventBlock, windows: tuple[int, ...]
                      ) -> tuple[list[str], tuple[tuple[bool, np.ndarray], ...], tuple[np.ndarray, ...],
                                 tuple[tuple[np.ndarray, int], ...]]:
    """The column names of one event list's statistics in the compiled kernel's order, and its inputs.

    Mirrors :func:`_event_features` name for name (see ``_features.c`` for the order).
    """
    p = ev.name
    names = [f"{p}.n", *(f"{p}.n_{w}d" for w in windows), f"{p}.days_since_first", f"{p}.days_since_last"]
    names += [f"{p}.per_day_{w}d" for w in windows if w in RATE_WINDOWS]
    names += [f"{p}.decayed_{h}d" for h in HALF_LIVES]
    f64 = np.float64
    sums = [(f, False, block.values[f]) for f in ev.numeric]
    sums += [(f, True, block.flag_times[f]) for f in ev.flags]
    sums += [(f"{f}_n", False, block.values[f"{f}_n"]) for f in ev.lengths]
    for f, _, _ in sums:
        name = column_name([f])
        for w in windows:
            names += [f"{p}.{name}.sum_{w}d", f"{p}.{name}.mean_{w}d"]
    names += [f"{p}.{column_name([f])}.days_since_last" for f in ev.flags]
    levels = []
    for f, levs in sorted(ev.levels.items()):
        levels.append((np.ascontiguousarray(block.codes[f], dtype=np.int16), len(levs)))
        names += [f"{p}.{column_name([f])}={column_name([lev])}.n_{w}d" for lev in levs for w in LEVEL_WINDOWS]
    return (names, tuple((flag, np.ascontiguousarray(x, dtype=f64)) for _, flag, x in sums),
            tuple(np.ascontiguousarray(block.flag_times[f], dtype=f64) for f in ev.flags), tuple(levels))


def _compiled_feature_columns(chunk: Chunk, schema: Schema, *, as_of: float,
                              time_travel: bool = False) -> dict[str, np.ndarray]:
    """:func:`feature_columns` with the window aggregates in ``_features.c``: one pass over the events."""
    assert _native_features is not None
    n = chunk.n
    names = schema.column_names()
    index = {name: i for i, name in enumerate(names)}
    out = np.full((len(names), n), np.nan, dtype=np.float32)
    for name, values in _state_columns(chunk, schema, as_of, time_travel).items():
        if name in index:
            out[index[name]] = _to_float32(values)
    blocks = [chunk.events[".".join(ev.path)] for ev in schema.events]
    contiguous = [(np.ascontiguousarray(b.uidx, dtype=np.int64), np.ascontiguousarray(b.t, dtype=np.float64))
                  for b in chunk.events.values()]
    exposure = np.frombuffer(_native_features.exposure_days(
        n, float(as_of), np.ascontiguousarray(chunk.created, dtype=np.float64), tuple(contiguous)), dtype=np.float64)
    windows = tuple(float(w) for w in schema.windows)
    rate = tuple(1.0 if w in RATE_WINDOWS else 0.0 for w in schema.windows)
    for ev, block in zip(schema.events, blocks):
        stat_names, sums, flags, levels = _event_statistics(ev, block, schema.windows)
        rows = np.array([index.get(name, -1) for name in stat_names], dtype=np.int32)
        _native_features.event_features(
            out, n, rows, float(as_of), np.ascontiguousarray(block.uidx, dtype=np.int64),
            np.ascontiguousarray(block.t, dtype=np.float64), sums, flags, levels, windows, rate,
            tuple(float(h) for h in HALF_LIVES), tuple(float(w) for w in LEVEL_WINDOWS), exposure)
    return dict(zip(names, out))


def _to_float32(values: Any) -> np.ndarray:
    """float32 for the table; a value beyond float32's range (an absurd amount) becomes missing, not inf.

    (Infinite inputs were already made missing when the values were read, so any inf here is an overflow.)
    """
    with np.errstate(over="ignore", invalid="ignore"):
        out = np.asarray(values, dtype=np.float32)
    inf = np.isinf(out)
    if inf.any():
        out = out.copy() if out is values else out
        out[inf] = np.nan
    return out


def _required_table(columns: dict[str, pa.Array]) -> pa.Table:
    """A table whose fields are declared non-nullable (the arrays, from numpy and ids, have no nulls).

    Parquet writes no definition levels for required columns: a quarter less
    work for a table of floats. NaN, our missing value, is a value, not a null.
    """
    schema = pa.schema([pa.field(name, arr.type, nullable=False) for name, arr in columns.items()])
    return pa.Table.from_arrays(list(columns.values()), schema=schema)


def to_table(user_ids: list[str], cols: dict[str, np.ndarray], extra: dict[str, Any] | None = None) -> pa.Table:
    """A pyarrow table: ``user_id`` first, then ``extra`` columns, then the features.

    ``user_id`` and the features are non-nullable fields (missing is NaN);
    readers that stack tables of different days or versions should concatenate
    with ``promote_options="permissive"``.
    """
    fields = [pa.field("user_id", pa.string(), nullable=False)]
    arrays = [pa.array(user_ids, type=pa.string())]
    for k, v in (extra or {}).items():
        arrays.append(pa.array(v))
        fields.append(pa.field(k, arrays[-1].type))
    for k, v in cols.items():
        arrays.append(pa.array(v, type=pa.float32()))
        fields.append(pa.field(k, pa.float32(), nullable=False))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))
