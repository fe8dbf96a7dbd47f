"""The frozen feature schema: which JSON paths become which typed columns.

Profiles have any keys, any nesting and lists of any length. The schema is
learned once from a sample of a snapshot (:func:`learn_schema`), saved under
``schema/`` and reused every day, so the feature table keeps the same columns,
types and categorical levels until somebody deliberately refreshes it
(``sightlines schema refresh``). Keys that appear later are reported, not added.

What becomes what:

* a scalar path (``vars.loyalty.tier``) becomes a numeric, boolean,
  categorical (frequent levels + other) or timestamp (days since) column;
* a list of scalars, or of records without a timestamp, becomes its length;
* a list of timestamped records (``purchases``) becomes counts in the
  1/7/30/90/365-day windows before the as-of date, days since first and last,
  per-day rates (the count over the days the user was around in the window:
  a month-old user with five visits is busier than a two-year-old one), and
  sums and means of the records' numeric fields in each window (a
  timestamp-or-null field such as ``opened`` counts as 1 once it happened).

Only timestamps can be moved back in time, so *time travel* (features as of
an earlier date) keeps the timestamp and event columns and leaves the
``state`` columns missing.

Examples
--------
>>> users = [{"id": "a", "vars": {"tier": "gold"}, "purchases": [{"time": "2026-11-20T10:00:00Z", "total": 10}]},
...          {"id": "b", "vars": {"tier": "silver"}, "purchases": []}]
>>> schema = learn_schema(users, min_support=0.0, min_level_count=1)
>>> [c.name for c in schema.scalars]
['vars.tier']
>>> purchases = [e for e in schema.events if e.name == "purchases"][0]
>>> purchases.time_field, purchases.numeric
('time', ('total',))
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from .config import Roles
from .errors import ConfigError
from .storage import ClientStore

__all__ = [
    "load_schema",
    "save_schema",
    "Schema",
    "ScalarColumn",
    "ListColumn",
    "EventArray",
    "learn_schema",
    "discover_paths",
    "WINDOWS",
    "SCHEMA_FORMAT",
]

SCHEMA_FORMAT = "sightlines-schema/1"
#: windows (days before the as-of instant) for event counts and sums
WINDOWS: tuple[int, ...] = (1, 7, 30, 90, 365)
#: windows for the per-level counts of a categorical record field
LEVEL_WINDOWS: tuple[int, ...] = (30, 365)
#: windows of the per-day event rates (count / days the user was around in the window)
RATE_WINDOWS: tuple[int, ...] = (30, 90, 365)
#: half-lives (days) of the exponentially decayed event counts: recent activity weighs more
HALF_LIVES: tuple[int, ...] = (7, 30, 180)
MAX_DEPTH = 8
OTHER = "__other__"
_NAME_BAD = re.compile(r"[^A-Za-z0-9_.\-]")
_TIME_NAMES = ("time", "timestamp", "ts", "at", "date", "datetime", "created_at", "sent_at")


def column_name(path: Iterable[str]) -> str:
    """A safe column name for a JSON path (LightGBM refuses some characters)."""
    return ".".join(_NAME_BAD.sub("_", str(p)) or "_" for p in path)


@dataclass(frozen=True)
class ScalarColumn:
    """A scalar JSON path and how it is typed.

    ``kind`` is ``numeric``, ``bool``, ``categorical`` (``levels`` + other) or
    ``timestamp`` (days between the value and the as-of instant).
    """

    name: str
    path: tuple[str, ...]
    kind: str
    levels: tuple[str, ...] = ()
    support: float = 0.0

    @property
    def state(self) -> bool:
        """True if the value only describes the present (cannot be time-travelled)."""
        return self.kind != "timestamp"


@dataclass(frozen=True)
class ListColumn:
    """A list (of scalars, or of records without time) summarised by its length (state)."""

    name: str
    path: tuple[str, ...]
    support: float = 0.0


@dataclass(frozen=True)
class EventArray:
    """A list of timestamped records.

    Parameters
    ----------
    name, path : the column prefix and the JSON path of the list.
    time_field : the record field holding the event time.
    numeric : record fields summed and averaged per window.
    flags : timestamp-or-null record fields; 1 once the time has passed.
    lengths : nested list fields whose length is treated as a numeric field (``items`` -> ``items_n``).
    levels : categorical record fields -> their frequent levels (counted per level).
    """

    name: str
    path: tuple[str, ...]
    time_field: str = "time"
    numeric: tuple[str, ...] = ()
    flags: tuple[str, ...] = ()
    lengths: tuple[str, ...] = ()
    levels: dict[str, tuple[str, ...]] = field(default_factory=dict)
    support: float = 0.0

    @property
    def value_fields(self) -> tuple[str, ...]:
        """Names of the per-record numeric values: numeric fields, flags, then ``{length}_n``."""
        return self.numeric + self.flags + tuple(f"{x}_n" for x in self.lengths)


@dataclass(frozen=True)
class Schema:
    """The frozen feature schema of one client (see the module docstring)."""

    scalars: tuple[ScalarColumn, ...]
    lists: tuple[ListColumn, ...]
    events: tuple[EventArray, ...]
    roles: Roles = field(default_factory=Roles)
    windows: tuple[int, ...] = WINDOWS
    version: int = 1
    learned_from: str = ""
    sample_users: int = 0
    ignored: tuple[str, ...] = ()

    # -- columns -----------------------------------------------------------
    def columns(self) -> list[tuple[str, bool]]:
        """Ordered feature columns as ``(name, time_travel_safe)``; ``user_id`` is not included."""
        cols: list[tuple[str, bool]] = []
        for s in self.scalars:
            cols.append((s.name, not s.state))
        for lst in self.lists:
            cols.append((f"{lst.name}.len", False))
        for ev in self.events:
            p = ev.name
            cols.append((f"{p}.n", True))
            cols += [(f"{p}.n_{w}d", True) for w in self.windows]
            cols += [(f"{p}.days_since_first", True), (f"{p}.days_since_last", True)]
            cols += [(f"{p}.per_day_{w}d", True) for w in RATE_WINDOWS if w in self.windows]
            cols += [(f"{p}.decayed_{h}d", True) for h in HALF_LIVES]
            for f in ev.value_fields:
                for w in self.windows:
                    cols.append((f"{p}.{column_name([f])}.sum_{w}d", True))
                    cols.append((f"{p}.{column_name([f])}.mean_{w}d", True))
            for f in ev.flags:
                cols.append((f"{p}.{column_name([f])}.days_since_last", True))
            for f, levels in sorted(ev.levels.items()):
                for lev in levels:
                    for w in LEVEL_WINDOWS:
                        cols.append((f"{p}.{column_name([f])}={column_name([lev])}.n_{w}d", True))
        return cols

    def column_names(self) -> list[str]:
        return [c for c, _ in self.columns()]

    def categorical_columns(self) -> list[str]:
        """Columns holding categorical codes (for LightGBM's ``categorical_feature``)."""
        return [s.name for s in self.scalars if s.kind == "categorical"]

    def fingerprint(self) -> str:
        """Short hash of the column list: equal fingerprints mean identical tables."""
        return hashlib.sha256("\n".join(self.column_names()).encode()).hexdigest()[:16]

    def scalar_paths(self) -> set[tuple[str, ...]]:
        return {s.path for s in self.scalars} | {lst.path for lst in self.lists} | {e.path for e in self.events}

    # -- serialisation -------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["format"] = SCHEMA_FORMAT
        d["fingerprint"] = self.fingerprint()
        d["n_columns"] = len(self.columns())
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Schema:
        if d.get("format") != SCHEMA_FORMAT:
            raise ConfigError(f"schema format {d.get('format')!r} is not {SCHEMA_FORMAT!r}; refresh the schema")
        return cls(
            scalars=tuple(
                ScalarColumn(name=s["name"], path=tuple(s["path"]), kind=s["kind"], levels=tuple(s["levels"]),
                             support=s.get("support", 0.0))
                for s in d["scalars"]
            ),
            lists=tuple(ListColumn(name=x["name"], path=tuple(x["path"]), support=x.get("support", 0.0)) for x in d["lists"]),
            events=tuple(
                EventArray(
                    name=e["name"], path=tuple(e["path"]), time_field=e["time_field"], numeric=tuple(e["numeric"]),
                    flags=tuple(e["flags"]), lengths=tuple(e["lengths"]),
                    levels={k: tuple(v) for k, v in e["levels"].items()}, support=e.get("support", 0.0),
                )
                for e in d["events"]
            ),
            roles=Roles(**d["roles"]),
            windows=tuple(d["windows"]),
            version=int(d["version"]),
            learned_from=d.get("learned_from", ""),
            sample_users=int(d.get("sample_users", 0)),
            ignored=tuple(d.get("ignored", ())),
        )


# ---------------------------------------------------------------------------
# discovery
# ---------------------------------------------------------------------------


class _Stats:
    """What was seen at one JSON path across a sample of users."""

    __slots__ = ("users", "num", "str", "bool", "null", "obj", "list", "ts", "levels", "list_records", "list_items",
                 "records")

    def __init__(self) -> None:
        self.users = 0
        self.num = self.str = self.bool = self.null = self.obj = self.list = self.ts = 0
        self.levels: Counter[str] = Counter()
        self.list_records = 0  # list elements that are objects
        self.list_items = 0  # all list elements
        self.records: dict[str, _Stats] | None = None  # record field stats for lists of objects


_TS_SHAPE = re.compile(r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?")


def _is_ts_string(v: str) -> bool:
    return 10 <= len(v) <= 40 and _TS_SHAPE.fullmatch(v) is not None


def _observe_scalar(st: _Stats, v: Any) -> None:
    t = type(v)
    if v is None:
        st.null += 1
    elif t is bool:
        st.bool += 1
    elif t is int or t is float:
        st.num += 1
    elif t is str:
        st.str += 1
        if _is_ts_string(v):
            st.ts += 1
        elif len(st.levels) < 5000 or v in st.levels:
            st.levels[v] += 1
    elif t is dict:
        st.obj += 1
    elif t is list:
        st.list += 1


def _walk(obj: Mapping[str, Any], prefix: tuple[str, ...], stats: dict[tuple[str, ...], _Stats], depth: int) -> None:
    for k, v in obj.items():
        path = prefix + (str(k),)
        st = stats.get(path)
        if st is None:
            st = stats[path] = _Stats()
        st.users += 1
        t = type(v)
        if t is dict:
            st.obj += 1
            if depth < MAX_DEPTH:
                _walk(v, path, stats, depth + 1)
        elif t is list:
            st.list += 1
            st.list_items += len(v)
            recs = [r for r in v[:200] if type(r) is dict]
            if recs:
                st.list_records += len(recs)
                if st.records is None:
                    st.records = {}
                for r in recs:
                    for rk, rv in r.items():
                        rs = st.records.get(rk)
                        if rs is None:
                            rs = st.records[rk] = _Stats()
                        rs.users += 1
                        if type(rv) is list:
                            rs.list += 1
                        else:
                            _observe_scalar(rs, rv)
        else:
            _observe_scalar(st, v)


def discover_paths(users: Iterable[Mapping[str, Any]]) -> tuple[int, dict[tuple[str, ...], _Stats]]:
    """Walk a sample of user dicts; return the number of users and per-path statistics."""
    stats: dict[tuple[str, ...], _Stats] = {}
    n = 0
    for u in users:
        if isinstance(u, dict):
            n += 1
            _walk(u, (), stats, 1)
    return n, stats


def _split(path: str) -> tuple[str, ...]:
    return tuple(path.split("."))


def _time_field(rec: dict[str, _Stats], n_records: int, preferred: str) -> str | None:
    if preferred in rec and rec[preferred].ts + rec[preferred].num > 0:
        return preferred
    best = None
    for name in _TIME_NAMES:
        rs = rec.get(name)
        if rs is not None and rs.ts >= 0.5 * n_records:
            return name
    for name, rs in sorted(rec.items()):
        if rs.ts >= 0.8 * n_records and (best is None):
            best = name
    return best


def learn_schema(
    users: Iterable[Mapping[str, Any]],
    *,
    roles: Roles | None = None,
    min_support: float = 0.01,
    min_level_count: int = 5,
    max_levels: int = 30,
    max_scalars: int = 150,
    version: int = 1,
    learned_from: str = "",
) -> Schema:
    """Learn the columns, types and levels of a feature table from a sample of profiles.

    Parameters
    ----------
    users : iterable of dict
        Parsed profiles (a few thousand to 50,000 are plenty).
    roles : Roles, optional
        Where the id, ``created`` and the event roles live; their paths are
        always included with the right kind, even if rare in the sample.
    min_support : float, default=0.01
        A path must occur in at least this fraction of users to become a column.
    min_level_count : int, default=5
        A categorical level needs this many occurrences (and 1% of the values).
    max_levels : int, default=30
        At most this many levels per categorical column (the rest is "other").
    max_scalars : int, default=150
        At most this many scalar columns (the most frequent paths win).

    Returns
    -------
    Schema
    """
    roles = roles or Roles()
    n, stats = discover_paths(users)
    if n == 0:
        raise ConfigError("cannot learn a feature schema from a snapshot with no good users")
    need = max(1.0, min_support * n)
    id_path = _split(roles.id)
    role_ts = {_split(roles.created), _split(roles.optout)}
    role_events = {_split(p): name for name, p in roles.event_roles().items()}

    scalars: list[ScalarColumn] = []
    lists: list[ListColumn] = []
    events: list[EventArray] = []
    ignored: list[str] = []
    for path, st in sorted(stats.items()):
        name = column_name(path)
        support = round(st.users / n, 4)
        if path == id_path:
            continue
        is_role_event = path in role_events
        if st.users < need and not is_role_event and path not in role_ts:
            continue
        if st.list and (st.list >= 0.5 * st.users or is_role_event):
            rec = st.records or {}
            tf = _time_field(rec, st.list_records, roles.time_field) if st.list_records >= 0.5 * st.list_items else None
            if is_role_event or (tf is not None):
                events.append(_event_array(name, path, rec, st.list_records, tf or roles.time_field, min_level_count))
            else:
                lists.append(ListColumn(name=name, path=path, support=support))
            continue
        if st.obj >= 0.5 * st.users:
            continue  # an object: its children are columns of their own
        nonnull = st.num + st.str + st.bool
        if path in role_ts:
            scalars.append(ScalarColumn(name=name, path=path, kind="timestamp", support=support))
            continue
        if nonnull == 0:
            continue
        if st.ts >= 0.9 * max(st.str, 1) and st.str >= 0.5 * nonnull:
            kind = "timestamp"
        elif st.num >= 0.9 * nonnull:
            kind = "numeric"
        elif st.bool >= 0.9 * nonnull:
            kind = "bool"
        elif st.str >= 0.5 * nonnull:
            kind = "categorical"
        else:
            ignored.append(f"{name} (mixed types)")
            continue
        levels: tuple[str, ...] = ()
        if kind == "categorical":
            floor = max(min_level_count, 0.01 * st.str)
            levels = tuple(sorted(v for v, c in st.levels.most_common(max_levels) if c >= floor))
            if not levels:
                ignored.append(f"{name} (no frequent values: an identifier or free text)")
                continue
        scalars.append(ScalarColumn(name=name, path=path, kind=kind, levels=levels, support=support))

    for path in sorted(role_events):
        if not any(e.path == path for e in events):  # role never seen in the sample: keep its columns anyway
            events.append(EventArray(name=column_name(path), path=path, time_field=roles.time_field))
    if len(scalars) > max_scalars:
        keep = sorted(scalars, key=lambda s: (-s.support, s.name))[:max_scalars]
        dropped = set(scalars) - set(keep)
        ignored += [f"{s.name} (beyond max_scalars)" for s in sorted(dropped, key=lambda s: s.name)]
        scalars = sorted(keep, key=lambda s: s.name)
    _check_unique([s.name for s in scalars] + [x.name for x in lists] + [e.name for e in events])
    return Schema(
        scalars=tuple(scalars), lists=tuple(lists), events=tuple(sorted(events, key=lambda e: e.name)), roles=roles,
        version=version, learned_from=learned_from, sample_users=n, ignored=tuple(ignored),
    )


def _event_array(name: str, path: tuple[str, ...], rec: dict[str, _Stats], n_records: int, tf: str,
                 min_level_count: int) -> EventArray:
    numeric, flags, lengths = [], [], []
    levels: dict[str, tuple[str, ...]] = {}
    enough = max(1, 0.1 * n_records)
    for fname, rs in sorted(rec.items()):
        if fname == tf or rs.users < enough:
            continue
        nonnull = rs.num + rs.str + rs.bool
        if rs.list >= 0.5 * rs.users:
            lengths.append(fname)
        elif rs.ts > 0 and rs.ts >= 0.9 * max(rs.str, 1) and rs.str >= 0.5 * max(nonnull, 1):
            flags.append(fname)
        elif nonnull and rs.num >= 0.9 * nonnull:
            numeric.append(fname)
        elif rs.str and rs.str >= 0.5 * nonnull:
            top = rs.levels.most_common(8)
            covered = sum(c for _, c in top)
            if len(rs.levels) <= 20 and covered >= 0.9 * rs.str:
                lv = tuple(sorted(v for v, c in top if c >= max(min_level_count, 0.02 * rs.str)))
                if lv:
                    levels[fname] = lv
    return EventArray(name=name, path=path, time_field=tf, numeric=tuple(numeric), flags=tuple(flags),
                      lengths=tuple(lengths), levels=levels)


def _check_unique(names: list[str]) -> None:
    seen: set[str] = set()
    for nm in names:
        if nm in seen:
            raise ConfigError(f"two JSON paths map to the same column name {nm!r}; rename one of the keys")
        seen.add(nm)


def _walk_shape(obj: Mapping[str, Any], prefix: tuple[str, ...], seen: dict[tuple[str, ...], list[int]],
                depth: int) -> None:
    for k, v in obj.items():
        path = prefix + (str(k),)
        c = seen.get(path)
        if c is None:
            c = seen[path] = [0, 0]
        c[0] += 1
        if type(v) is dict:
            c[1] += 1
            if depth < MAX_DEPTH:
                _walk_shape(v, path, seen, depth + 1)


def new_keys(schema: Schema, users: Iterable[Mapping[str, Any]], *, min_support: float = 0.02) -> list[str]:
    """Keys frequent in ``users`` (a sample of today's profiles) that the schema neither has nor ignored.

    The bar is twice the learning support, so that a key that merely hovered
    around the threshold does not show up as new every day.
    """
    seen: dict[tuple[str, ...], list[int]] = {}
    n = 0
    for u in users:
        if isinstance(u, dict):
            n += 1
            _walk_shape(u, (), seen, 1)
    need = max(1.0, min_support * n)
    known = schema.scalar_paths()
    known_prefixes = {p[:i] for p in known for i in range(1, len(p))}
    ignored = {entry.split(" (", 1)[0] for entry in schema.ignored}
    out = []
    for path, (users_with, objects) in seen.items():
        if users_with < need or path in known or path in known_prefixes or objects >= 0.5 * users_with:
            continue
        if path == _split(schema.roles.id) or any(path[: len(k)] == k for k in known):
            continue
        name = column_name(path)
        if name not in ignored:
            out.append(name)
    return sorted(out)


def load_schema(store: ClientStore, version: int | None = None) -> Schema | None:
    """The client's current schema (or a given version); None if none was learned yet."""
    if version is None:
        if not store.exists(store.SCHEMA_CURRENT):
            return None
        version = int(store.read_json(store.SCHEMA_CURRENT)["version"])
    return Schema.from_dict(store.read_json(store.schema_version(version)))


def save_schema(store: ClientStore, schema: Schema) -> Schema:
    """Save ``schema`` as the next version and make it current (version file first, then the pointer)."""
    current = load_schema(store)
    version = (current.version + 1) if current is not None else 1
    schema = replace(schema, version=version)
    store.write_json(store.schema_version(version), schema.to_dict())
    store.write_json(store.SCHEMA_CURRENT, {"version": version, "fingerprint": schema.fingerprint()})
    return schema
