"""Injected data-quality problems, planned per file and applied while writing.

Two families, both recorded in ``truth/{date}/bad_lines.json`` as
``{"file", "line" (1-based), "kind", "bad", "id"}``:

* **bad records** (``bad: true``): extra lines that are not a usable user —
  ``not_json``, ``not_object``, ``no_id``, ``empty_id``, ``id_object`` and
  ``duplicate_id`` (a later line repeating an earlier user's id; the first
  occurrence is the real user);
* **oddities** (``bad: false``) that a robust reader must survive without
  losing the user: ``blank`` lines, a ``bom`` at the start of a file, and
  ``field:*`` problems inside otherwise good users — ``field:nan`` (a bare
  ``NaN`` literal), ``field:string_for_list``, ``field:bad_timestamp``,
  ``field:amount_string``, ``field:future_time``, ``field:deep_vars`` (depth
  200), ``field:huge_array`` (50,000 numbers).

Every real user is still written exactly once, so the truth table holds every
user of the snapshot.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import numpy as np
import orjson

from ._profile import materialize

__all__ = ["Corruptor", "BAD_KINDS", "FIELD_KINDS", "BOM"]

BAD_KINDS = ("not_json", "not_object", "no_id", "empty_id", "id_object", "duplicate_id")
FIELD_KINDS = (
    "field:nan", "field:string_for_list", "field:bad_timestamp", "field:amount_string",
    "field:future_time", "field:deep_vars", "field:huge_array",
)
BOM = b"\xef\xbb\xbf"
_CAPS = {"field:deep_vars": 2, "field:huge_array": 1}
_NAN = "__SYNTH_NAN_LITERAL__"
_NAN_JSON = orjson.dumps(_NAN)
_GARBAGE = (
    b"<html><body><h1>502 Bad Gateway</h1></body></html>",
    b"{'id': 'u-0', 'vars': {}}",
    b'{"id": "u-x", "created": }',
    b"\\x00\\x00 export aborted",
    b"id,created,vars",
)
_NOT_OBJECTS = (b"[1,2]", b'"x"', b"42", b"null", b"true", b"[]")
_BAD_TIMES = ("not a date", "2026-13-45T25:61:00Z", "yesterday", "31/02/2026 10:00", "")
_BAD_AMOUNTS = ("12,50 EUR", "abc", "", "N/A", "$19.99")
_BAD_LISTS = ("none", "n/a", "", "[]", "null")
_FUTURE = ("2999-12-31T23:59:59Z", "2100-01-01T00:00:00+00:00", 32503680000)
_EVENT_ROLES = ("purchases", "messages", "pageviews")


def dumps(d: dict[str, Any]) -> bytes:
    """One profile line (without newline); the NaN sentinel becomes a bare NaN literal."""
    line = orjson.dumps(d)
    if _NAN_JSON in line:
        line = line.replace(_NAN_JSON, b"NaN")
    return line


class Corruptor:
    """Plans and applies the problems of one file.

    Parameters
    ----------
    rng : numpy.random.Generator
        The file's own generator (seeded by world, date and file index).
    n_users : int
        Real users in the file.
    fraction : float
        Expected bad records per real user; oddities are injected at the same rate.
    file_name : str
        Name recorded in the entries.
    first_index : int
        Global index of the file's first user (earlier files hold the indices below it).
    id_of : callable
        Maps a global user index to its id.
    """

    def __init__(
        self,
        rng: np.random.Generator,
        n_users: int,
        fraction: float,
        file_name: str,
        first_index: int,
        id_of: Callable[[int], str],
    ):
        self.rng = rng
        self.file_name = file_name
        self.first_index = first_index
        self.id_of = id_of
        self.entries: list[dict[str, Any]] = []
        self.bom = False
        self.bad_after: dict[int, list[str]] = {}
        self.blank_after: dict[int, int] = {}
        self.field_at: dict[int, list[str]] = {}
        self.pending: list[str] = []
        if fraction <= 0 or n_users <= 0:
            return
        count = lambda: int(fraction * n_users + rng.random())  # noqa: E731
        n_bad = count()
        for pos, kind in zip(rng.integers(0, n_users, n_bad), rng.integers(0, len(BAD_KINDS), n_bad)):
            self.bad_after.setdefault(int(pos), []).append(BAD_KINDS[int(kind)])
        for pos in rng.integers(0, n_users, max(count() // 2, 0)):
            self.blank_after[int(pos)] = self.blank_after.get(int(pos), 0) + 1
        used = {k: 0 for k in _CAPS}
        n_field = count()
        kinds = rng.integers(0, len(FIELD_KINDS), n_field)
        for pos, k in zip(rng.integers(0, n_users, n_field), kinds):
            kind = FIELD_KINDS[int(k)]
            if kind in _CAPS:
                if used[kind] >= _CAPS[kind]:
                    kind = FIELD_KINDS[int(k) % 5]
                else:
                    used[kind] += 1
            self.field_at.setdefault(int(pos), []).append(kind)
        self.bom = first_index == 0 or rng.random() < 0.3

    # -- oddities inside good users ---------------------------------------
    def apply_fields(self, pos: int, d: dict[str, Any], texts: dict[str, str]) -> list[str]:
        """Apply the field problems planned for (or deferred to) the user at ``pos``; returns the kinds applied.

        ``texts`` holds the JSON of the profile's pre-serialised lists (see :func:`._profile.materialize`).
        """
        todo = self.pending + self.field_at.get(pos, [])
        self.pending = []
        if not todo:
            return []
        applied: list[str] = []
        for kind in todo:
            if applied or not self._apply(kind, d, texts):
                self.pending.append(kind)  # one problem per user; others move to the next users
            else:
                applied.append(kind)
        return applied

    def _apply(self, kind: str, d: dict[str, Any], texts: dict[str, str]) -> bool:
        r = self.rng
        if kind == "field:nan":
            pvs = materialize(d, texts, "pageviews")
            if isinstance(pvs, list) and pvs and r.random() < 0.5:
                pvs[int(r.integers(len(pvs)))]["dwell_seconds"] = _NAN
            else:
                v = d.get("vars")
                d["vars"] = {**(v if isinstance(v, dict) else {}), "score": _NAN}
            return True
        if kind == "field:string_for_list":
            role = _EVENT_ROLES[int(r.integers(3))]
            d[role] = _BAD_LISTS[int(r.integers(len(_BAD_LISTS)))]
            return True
        if kind == "field:bad_timestamp":
            lists = [materialize(d, texts, role) for role in _EVENT_ROLES]
            events = [e for lst in lists if isinstance(lst, list) for e in lst]
            if not events:
                return False
            events[int(r.integers(len(events)))]["time"] = _BAD_TIMES[int(r.integers(len(_BAD_TIMES)))]
            return True
        if kind == "field:amount_string":
            orders = d.get("purchases")
            if not isinstance(orders, list) or not orders:
                return False
            orders[int(r.integers(len(orders)))]["total"] = _BAD_AMOUNTS[int(r.integers(len(_BAD_AMOUNTS)))]
            return True
        if kind == "field:future_time":
            pvs = materialize(d, texts, "pageviews")
            pvs = list(pvs) if isinstance(pvs, list) else []
            pvs.append({"time": _FUTURE[int(r.integers(len(_FUTURE)))], "url": "/"})
            d["pageviews"] = pvs
            return True
        if kind == "field:deep_vars":
            node: Any = {"leaf": True}
            for _ in range(199):
                node = {"d": node}
            v = d.get("vars")
            d["vars"] = {**(v if isinstance(v, dict) else {}), "deep": node}
            return True
        if kind == "field:huge_array":
            v = d.get("vars")
            d["vars"] = {**(v if isinstance(v, dict) else {}), "history": (np.arange(50_000) % 997).tolist()}
            return True
        raise ValueError(kind)

    # -- extra lines --------------------------------------------------------
    def extra_lines(self, pos: int, d: dict[str, Any], line: bytes) -> list[tuple[bytes, str, str | None]]:
        """Lines to write after the user at ``pos``: (bytes without newline, kind, id)."""
        out: list[tuple[bytes, str, str | None]] = []
        for kind in self.bad_after.get(pos, ()):
            out.append(self._bad_line(kind, pos, d, line))
        for _ in range(self.blank_after.get(pos, 0)):
            out.append((b"" if self.rng.random() < 0.7 else b"   ", "blank", None))
        return out

    def _bad_line(self, kind: str, pos: int, d: dict[str, Any], line: bytes) -> tuple[bytes, str, str | None]:
        r = self.rng
        if kind == "not_json":
            if r.random() < 0.6 and len(line) > 3:
                return line[: int(r.integers(1, len(line) - 1))], kind, None
            return _GARBAGE[int(r.integers(len(_GARBAGE)))], kind, None
        if kind == "not_object":
            return _NOT_OBJECTS[int(r.integers(len(_NOT_OBJECTS)))], kind, None
        other = copy.copy(d)
        if kind == "no_id":
            del other["id"]
            return dumps(other), kind, None
        if kind == "empty_id":
            other["id"] = ""
            return dumps(other), kind, ""
        if kind == "id_object":
            other["id"] = {"value": d["id"], "source": "crm"}
            return dumps(other), kind, None
        # duplicate_id: this user's content under the id of a user written earlier
        if self.first_index > 0 and r.random() < 0.3:
            index = int(r.integers(0, self.first_index))
        else:
            index = self.first_index + int(r.integers(0, pos + 1))
        other["id"] = self.id_of(index)
        return dumps(other), "duplicate_id", other["id"]
