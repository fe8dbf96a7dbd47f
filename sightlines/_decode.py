"""Fast, schema-driven decoding of profile lines into typed records.

Profiles are mostly things no feature needs. From the schema (and the event
roles) we build msgspec ``Struct`` types that name exactly the JSON paths that
matter; msgspec then parses a line in C, skipping everything else, which is
several times faster than building a full ``dict``. A line whose *shape*
differs from the schema (a string where an object or a list belongs) fails
the typed decode and goes through :func:`Plan.coerce`, which builds the same
structs from a plain ``dict`` and turns every wrongly-shaped value into
missing. Either way the rest of the pipeline sees one representation.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any, Callable

import msgspec
import orjson

from .config import Roles
from .schema import Schema

__all__ = ["Plan", "build_plan", "parse_json_line", "MAX_LIST"]

#: lists longer than this are absurd for one user: the field becomes missing
MAX_LIST = 20_000
#: nesting deeper than this is cut off (the deep value becomes null) when a parser refuses the line
MAX_NESTING = 64


@dataclass
class _Node:
    """A JSON path tree node: an object with children, a scalar, a list (len) or a list of records."""

    kind: str  # "obj" | "leaf" | "len" | "records" | "items"
    children: dict[str, _Node] = field(default_factory=dict)
    struct: Any = None
    attr: str = ""


def _child(node: _Node, key: str, kind: str) -> _Node:
    cur = node.children.get(key)
    if cur is None:
        cur = node.children[key] = _Node(kind=kind)
    elif cur.kind != kind:
        # keep the richer shape: an object or record list wins over a plain leaf
        rank = {"leaf": 0, "len": 1, "items": 2, "records": 3, "obj": 4}
        if rank[kind] > rank[cur.kind]:
            cur.kind = kind
    return cur


def _add_path(root: _Node, path: tuple[str, ...], kind: str) -> _Node:
    node = root
    for key in path[:-1]:
        node = _child(node, key, "obj")
    return _child(node, path[-1], kind)


class _Counter:
    def __init__(self) -> None:
        self.n = 0

    def __call__(self) -> str:
        self.n += 1
        return f"S{self.n}"


def _build_struct(node: _Node, names: _Counter) -> Any:
    """Create the msgspec Struct type of an "obj" or "records" node (recursively)."""
    fields = []
    rename = {}
    for i, (key, child) in enumerate(sorted(node.children.items())):
        attr = f"f{i}"
        child.attr = attr
        rename[attr] = key
        if child.kind == "obj":
            sub = _build_struct(child, names)
            fields.append((attr, sub, msgspec.field(default_factory=sub)))
        elif child.kind == "records":
            sub = _build_struct(child, names)
            fields.append((attr, list[sub] | None, None))
        elif child.kind == "items":
            sub = _build_struct(child, names)
            fields.append((attr, list[sub] | None, None))
        elif child.kind == "len":
            fields.append((attr, list[msgspec.Raw] | None, None))
        else:
            fields.append((attr, Any, None))
    struct = msgspec.defstruct(names(), fields, rename=rename, omit_defaults=False, gc=False)
    node.struct = struct
    return struct


def _leaf_getter(root: _Node, path: tuple[str, ...]) -> Callable[[Any], Any]:
    node = root
    attrs = []
    for key in path:
        node = node.children[key]
        attrs.append(node.attr)
    return attrgetter(".".join(attrs))


@dataclass
class Plan:
    """How to decode a line and where each schema path ends up.

    Attributes
    ----------
    decoder : msgspec.json.Decoder
        Typed decoder for a whole profile.
    get : dict
        Dotted JSON path -> getter on a decoded profile.
    record_attr : dict
        For each record list path: record field name -> attribute name.
    """

    root: _Node
    decoder: Any
    get: dict[str, Callable[[Any], Any]]
    record_nodes: dict[str, _Node]

    def record_getter(self, list_path: str, fieldname: str) -> Callable[[Any], Any]:
        """Getter of one field of a record of the list at ``list_path``."""
        node = self.record_nodes[list_path]
        return attrgetter(node.children[fieldname].attr)

    def item_getter(self, list_path: str, items_field: str, item_field: str) -> Callable[[Any], Any]:
        """Getter of one field of an item in a record's nested ``items`` list."""
        node = self.record_nodes[list_path].children[items_field]
        return attrgetter(node.children[item_field].attr)

    def decode(self, line: bytes) -> Any:
        """Typed decode; raises ``msgspec.ValidationError``/``DecodeError`` on shape or syntax problems."""
        return self.decoder.decode(line)

    def coerce(self, obj: dict[str, Any]) -> Any:
        """Build the typed record from a plain dict; wrongly shaped values become missing."""
        return _coerce(self.root, obj)


def _coerce(node: _Node, value: Any) -> Any:
    kind = node.kind
    if kind == "obj":
        if type(value) is not dict:
            return node.struct()
        kwargs = {}
        for key, child in node.children.items():
            if key in value:
                kwargs[child.attr] = _coerce(child, value[key])
        return node.struct(**kwargs)
    if kind in ("records", "items"):
        if type(value) is not list:
            return None
        out = []
        for r in value:
            if type(r) is dict:
                kw = {}
                for key, child in node.children.items():
                    if key in r:
                        kw[child.attr] = _coerce(child, r[key])
                out.append(node.struct(**kw))
        return out
    if kind == "len":
        return value if type(value) is list else None
    if type(value) is float and not math.isfinite(value):
        return None
    return value


def build_plan(schema: Schema | None, roles: Roles, *, labels: bool = True) -> Plan:
    """Build the decoding plan for a schema plus the event roles.

    With ``labels=True`` the plan also decodes what outcomes need (order totals,
    items, open and click times) even where the schema has no column for them.
    """
    root = _Node(kind="obj")
    leaves: list[tuple[str, ...]] = []

    def split(p: str) -> tuple[str, ...]:
        return tuple(p.split("."))

    for p in (roles.id, roles.created, roles.optout):
        _add_path(root, split(p), "leaf")
        leaves.append(split(p))
    record_paths: dict[str, tuple[str, ...]] = {}
    for role, p in roles.event_roles().items():
        node = _add_path(root, split(p), "records")
        _child(node, roles.time_field, "leaf")
        if labels and role == "purchases":
            _child(node, roles.order_total, "leaf")
            items = _child(node, roles.order_items, "items")
            _child(items, "qty", "leaf")
        if labels and role == "messages":
            _child(node, roles.message_opened, "leaf")
            _child(node, roles.message_clicked, "leaf")
        record_paths[p] = split(p)
    if schema is not None:
        for s in schema.scalars:
            _add_path(root, s.path, "leaf")
            leaves.append(s.path)
        for lst in schema.lists:
            _add_path(root, lst.path, "len")
            leaves.append(lst.path)
        for ev in schema.events:
            node = _add_path(root, ev.path, "records")
            _child(node, ev.time_field, "leaf")
            for f in ev.numeric + ev.flags + tuple(ev.levels):
                _child(node, f, "leaf")
            for f in ev.lengths:
                if f not in node.children:
                    _child(node, f, "len")
            record_paths[".".join(ev.path)] = ev.path
    struct = _build_struct(root, _Counter())
    getters = {}
    for path in leaves:
        getters[".".join(path)] = _leaf_getter(root, path)
    for dotted, path in record_paths.items():
        getters[dotted] = _leaf_getter(root, path)
    record_nodes = {}
    for dotted, path in record_paths.items():
        node = root
        for key in path:
            node = node.children[key]
        record_nodes[dotted] = node
    return Plan(root=root, decoder=msgspec.json.Decoder(struct), get=getters, record_nodes=record_nodes)


# ---------------------------------------------------------------------------
# lenient JSON parsing for the lines the fast path refuses
# ---------------------------------------------------------------------------


def _nan_to_none(_: str) -> None:
    return None


def _skip_string(text: str, i: int) -> int:
    """Index just after the JSON string starting at ``text[i] == '"'``."""
    n = len(text)
    j = i + 1
    while j < n:
        c = text[j]
        if c == "\\":
            j += 2
            continue
        if c == '"':
            return j + 1
        j += 1
    return n


def _skip_container(text: str, i: int) -> int:
    """Index just after the array/object starting at ``text[i]``."""
    n = len(text)
    depth = 0
    while i < n:
        c = text[i]
        if c == '"':
            i = _skip_string(text, i)
            continue
        if c in "[{":
            depth += 1
        elif c in "]}":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return n


def _trim_depth(text: str, limit: int) -> str:
    """Replace every array/object nested deeper than ``limit`` with ``null`` (string-aware)."""
    out = []
    depth = 0
    start = 0
    i = 0
    n = len(text)
    while i < n:
        c = text[i]
        if c == '"':
            i = _skip_string(text, i)
            continue
        if c in "[{":
            if depth == limit:
                out.append(text[start:i])
                out.append("null")
                i = _skip_container(text, i)
                start = i
                continue
            depth += 1
        elif c in "]}":
            depth -= 1
        i += 1
    out.append(text[start:])
    return "".join(out)


def parse_json_line(line: bytes) -> Any:
    """Parse one line leniently: orjson, then ``NaN``/``Infinity`` literals, then cut absurd nesting.

    Raises ``ValueError`` with a readable reason when the line is not JSON at all.
    """
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        first = str(exc)
    # invalid UTF-8 inside a string (a mangled name, say) spoils that string, not the user: U+FFFD stands in
    text = line.decode("utf-8", "replace")
    try:
        return json.loads(text, parse_constant=_nan_to_none)
    except RecursionError:
        pass
    except json.JSONDecodeError:
        if "recursion" not in first.lower() and "depth" not in first.lower():
            raise ValueError(f"not valid JSON ({first})") from None
    try:
        return json.loads(_trim_depth(text, MAX_NESTING), parse_constant=_nan_to_none)
    except (json.JSONDecodeError, RecursionError):
        raise ValueError(f"not valid JSON ({first})") from None
