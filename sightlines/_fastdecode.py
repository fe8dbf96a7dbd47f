"""A block of profile lines straight to a :class:`~sightlines.features.Chunk`, in compiled code where it can be.

The reference decoder is :func:`sightlines.profiles.decode_block` followed by
:func:`sightlines.features.chunk_from_users`: msgspec typed records, then
numpy columns, with a lenient path for every kind of bad input. It costs about
60 µs of CPU per 1.7 KB profile, most of it in Python objects that only live
long enough to be turned into columns.

:class:`BlockDecoder` configures the compiled scanner
(``sightlines/_native/_scanner.c``) with the same plan: it reads a whole block
in one call, writing the columns directly. It takes only the lines whose every
relevant value is plainly regular and marks the rest *slow*; those (typically
well under 1%) go through the reference decoder, and their rows are patched
into the columns. The result is the same chunk, the same bad records and the
same counts as the reference, row for row (``tests/test_fastdecode.py``
checks this on generated snapshots and on thousands of mangled lines).

Where the compiled module is not available, or a schema has a shape the
scanner does not model, :func:`decode_to_chunk` uses the reference decoder
for the whole block.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import numpy as np

from ._decode import Plan, _Node
from ._native import scanner as _native
from .config import Roles
from .features import ITEMS_FIELD, Chunk, EventBlock, chunk_from_users
from .profiles import BOM, BadRecord, DecodedBlock, _text, decode_block
from .schema import Schema

log = logging.getLogger(__name__)

__all__ = ["BlockDecoder", "decode_to_chunk", "available"]


class Unsupported(ValueError):
    """The plan has a shape the compiled scanner does not model (the reference decoder is used)."""


def available() -> bool:
    """Whether the compiled scanner was built for this installation."""
    return _native is not None


class _TreeBuilder:
    """Turns a :class:`Plan` tree plus the outputs of ``chunk_from_users`` into the scanner's nested tuples."""

    def __init__(self) -> None:
        self.outs: dict[int, list[tuple[int, int, tuple[bytes, ...]]]] = {}
        self.items_slot: dict[int, int] = {}
        self.group_of: dict[int, int] = {}

    def out(self, node: _Node, conv: int, slot: int, levels: tuple[str, ...] = ()) -> None:
        if len(set(levels)) != len(levels):  # the reference's dict keeps the last of a repeated level
            raise Unsupported(f"repeated categorical levels {levels!r}")
        self.outs.setdefault(id(node), []).append((conv, slot, tuple(_utf8(lev) for lev in levels)))

    def tree(self, node: _Node) -> tuple[Any, ...]:
        kind = {"obj": _native.K_OBJ, "leaf": _native.K_LEAF, "len": _native.K_LEN, "records": _native.K_RECORDS,
                "items": _native.K_ITEMS}[node.kind]
        children = tuple((_utf8(key), self.tree(child)) for key, child in sorted(node.children.items()))
        return (kind, children, tuple(self.outs.get(id(node), ())), self.group_of.get(id(node), -1),
                self.items_slot.get(id(node), -1))


def _utf8(text: str) -> bytes:
    try:
        return text.encode()
    except UnicodeEncodeError:  # a lone surrogate (from a lenient parse): no plain line can spell it
        raise Unsupported(f"{text!r} cannot be matched as UTF-8") from None


def _node_at(root: _Node, dotted: str) -> _Node:
    node = root
    for key in dotted.split("."):
        if key not in node.children:
            raise Unsupported(f"{dotted} is not in the plan")
        node = node.children[key]
    return node


class BlockDecoder:
    """The compiled fast path for one (plan, schema, roles, latest).

    Raises :class:`Unsupported` when the plan has a shape the scanner does not
    model (a value read both as a scalar and as an object, say); callers then
    use the reference decoder.
    """

    def __init__(self, plan: Plan, schema: Schema, roles: Roles, *, latest: float):
        if _native is None:
            raise Unsupported("the compiled scanner is not built")
        self.plan, self.schema, self.roles, self.latest = plan, schema, roles, latest
        b = _TreeBuilder()
        root = plan.root
        n_user = 0

        def user_leaf(dotted: str, conv: int, levels: tuple[str, ...] = ()) -> int:
            nonlocal n_user
            node = _node_at(root, dotted)
            if node.kind != "leaf":
                raise Unsupported(f"{dotted} is read as a value but is a {node.kind} in the plan")
            b.out(node, conv, n_user, levels)
            n_user += 1
            return n_user - 1

        self.scalar_slots: list[tuple[str, int]] = []
        for s in schema.scalars:
            conv = {"timestamp": _native.C_TIME, "categorical": _native.C_CAT}.get(s.kind, _native.C_NUM)
            levels = tuple(s.levels) if s.kind == "categorical" else ()
            self.scalar_slots.append((s.name, user_leaf(".".join(s.path), conv, levels)))
        self.list_slots: list[tuple[str, int]] = []
        for lst in schema.lists:
            node = _node_at(root, ".".join(lst.path))
            if node.kind not in ("len", "records", "items"):
                raise Unsupported(f"list {lst.name} is a {node.kind} in the plan")
            b.out(node, _native.C_LEN, n_user)
            self.list_slots.append((lst.name, n_user))
            n_user += 1
        self.created_slot = user_leaf(roles.created, _native.C_TIME)
        self.optout_slot = user_leaf(roles.optout, _native.C_TIME)
        id_node = _node_at(root, roles.id)
        if id_node.kind != "leaf":
            raise Unsupported(f"the id path {roles.id} is a {id_node.kind} in the plan")
        b.out(id_node, _native.C_ID, -1)

        # event lists: the same fields, in the same order, as chunk_from_users
        ev_specs = {".".join(e.path): e for e in schema.events}
        role_of = {p: r for r, p in roles.event_roles().items()}
        #: per event list: (path, [(kind, name)] of its float64 slots in order, [name] of its int16 code slots)
        self.groups: list[tuple[str, list[tuple[str, str]], list[str]]] = []
        for gi, (path, node) in enumerate(plan.record_nodes.items()):
            if node.kind != "records":
                raise Unsupported(f"event list {path} is a {node.kind} in the plan")
            b.group_of[id(node)] = gi
            spec = ev_specs.get(path)
            children = node.children
            dbl: list[tuple[str, str]] = []
            codes: list[str] = []

            def rec_leaf(field: str, conv: int, kind: str, name: str, levels: tuple[str, ...] = (), *,
                         path: str = path, children: dict[str, _Node] = children,
                         dbl: list[tuple[str, str]] = dbl, codes: list[str] = codes) -> None:
                """Read ``field`` of each record into the next float64 (or int16 code) slot of this group."""
                child = children[field]
                if child.kind != "leaf":
                    raise Unsupported(f"{path}.{field} is read as a value but is a {child.kind} in the plan")
                if conv == _native.C_RCODE:
                    b.out(child, conv, len(codes), levels)
                    codes.append(name)
                else:
                    b.out(child, conv, len(dbl), levels)
                    dbl.append((kind, name))

            tf = spec.time_field if spec else roles.time_field
            rec_leaf(tf, _native.C_TIME, "t", "t")
            numeric = set(spec.numeric) if spec else set()
            flags = set(spec.flags) if spec else set()
            role = role_of.get(path)
            if role == "purchases" and roles.order_total in children:
                numeric.add(roles.order_total)
            if role == "messages":
                flags.update(f for f in (roles.message_opened, roles.message_clicked) if f in children)
            for f in sorted(numeric):
                rec_leaf(f, _native.C_NUM, "v", f)
            for f in sorted(flags):
                rec_leaf(f, _native.C_TIME, "f", f)
            if spec:
                for f in spec.lengths:
                    child = children[f]
                    if child.kind not in ("len", "items"):
                        raise Unsupported(f"{path}.{f} is counted but is a {child.kind} in the plan")
                    b.out(child, _native.C_LEN, len(dbl))
                    dbl.append(("v", f"{f}_n"))
                for f, levels in spec.levels.items():
                    rec_leaf(f, _native.C_RCODE, "c", f, tuple(levels))
            if role == "purchases" and roles.order_items in children and children[roles.order_items].kind == "items":
                items = children[roles.order_items]
                qty = items.children.get("qty")
                if qty is None or qty.kind != "leaf" or len(items.children) != 1:
                    raise Unsupported(f"{path}.{roles.order_items} has an unexpected shape in the plan")
                b.items_slot[id(items)] = len(dbl)
                dbl.append(("v", ITEMS_FIELD))
                b.out(qty, _native.C_QTY, -1)
            self.groups.append((path, dbl, codes))
        self.scanner = _native.Scanner(b.tree(root), n_user, tuple((len(d), len(c)) for _, d, c in self.groups),
                                       float(latest))

    def decode(self, buf: bytes | memoryview, first_lineno: int, file_name: str,
               seen: dict[str, int]) -> tuple[DecodedBlock, Chunk]:
        """Decode the lines of ``buf`` (``\\n``-separated; the last may lack its newline).

        Same contract as ``decode_block`` + ``chunk_from_users``: ``seen`` (id ->
        line number) is updated, repeated ids become bad records, and the chunk
        holds the good users in line order.
        """
        status_b, slow, ids, ucols_b, groups_b, bounds_b = self.scanner.scan(buf)
        status = np.frombuffer(status_b, dtype=np.uint8)
        nonblank = np.flatnonzero(status != 2)
        lines = nonblank + first_lineno
        out = DecodedBlock(blank=len(status) - len(nonblank), n_lines=len(status))
        ucols = [np.frombuffer(c, dtype=np.float64) for c in ucols_b]
        groups = []
        for (path, dbl, codes), (uidx_b, d_b, c_b) in zip(self.groups, groups_b):
            eb = EventBlock(uidx=np.frombuffer(uidx_b, dtype=np.int64), t=np.empty(0))
            for (kind, name), buf_d in zip(dbl, d_b):
                arr = np.frombuffer(buf_d, dtype=np.float64)
                if kind == "t":
                    eb.t = arr
                elif kind == "f":
                    eb.flag_times[name] = arr
                else:
                    eb.values[name] = arr
            for name, buf_c in zip(codes, c_b):
                eb.codes[name] = np.frombuffer(buf_c, dtype=np.int16)
            groups.append((path, eb))
        chunk = Chunk(
            user_ids=ids,
            scalars={name: ucols[slot] for name, slot in self.scalar_slots},
            lists={name: ucols[slot] for name, slot in self.list_slots},
            events=dict(groups),
            created=ucols[self.created_slot], optout=ucols[self.optout_slot],
        )
        bad_at: dict[int, list[Any]] = {}
        if slow:
            self._patch_slow(buf, slow, lines, file_name, chunk, ids, bad_at, out)
        # ids in line order: drop lines that are bad, and ids already seen (the first occurrence stays)
        line_list = lines.tolist()
        if None in ids:  # lines kept aside (not JSON, no usable id...): their rows go
            good = [row for row, uid in enumerate(ids) if uid is not None]
            good_ids = [ids[row] for row in good]
        else:
            good, good_ids = None, ids
        good_lines = line_list if good is None else [line_list[row] for row in good]
        fresh = dict(zip(good_ids, good_lines))
        if len(fresh) == len(good_ids) and seen.keys().isdisjoint(fresh):  # the usual block: no id repeats
            seen.update(fresh)
            out.bad.extend(b for row in sorted(bad_at) for b in bad_at[row])
            if good is not None:
                chunk = chunk.take(np.asarray(good, dtype=np.int64))
            out.ids, out.lines = good_ids, good_lines
            return out, chunk
        keep: list[int] = []
        bad = out.bad
        bounds = np.frombuffer(bounds_b, dtype=np.int64)  # start and end of each row's line
        for row, uid in enumerate(ids):
            if uid is None:
                bad.extend(bad_at.get(row, ()))
                continue
            first = seen.get(uid)
            if first is not None:
                text = bytes(buf[bounds[2 * row]:bounds[2 * row + 1]])
                bad.append(BadRecord(file_name, line_list[row], "duplicate_id",
                                     f"duplicate id {uid!r} (first seen at line {first})",
                                     _text(text[3:] if text[:3] == BOM else text)))
                continue
            seen[uid] = line_list[row]
            keep.append(row)
        if len(keep) != len(ids):
            rows = np.asarray(keep, dtype=np.int64)
            chunk = chunk.take(rows)
            out.ids = chunk.user_ids
            out.lines = lines[rows].tolist()
        else:
            out.ids = ids
            out.lines = line_list
        return out, chunk

    def _patch_slow(self, buf: bytes, slow: list[tuple[int, int, int]], lines: np.ndarray, file_name: str,
                    chunk: Chunk, ids: list[Any], bad_at: dict[int, list[Any]],
                    out: DecodedBlock) -> None:
        """Decode the slow lines with the reference decoder and write their rows into the chunk."""
        mv = memoryview(buf)
        users, slow_ids, rows = [], [], []
        for row, start, end in slow:
            one = decode_block([bytes(mv[start:end])], int(lines[row]), file_name, self.plan, {},
                               id_path=self.roles.id)
            out.lenient += one.lenient
            out.blank += one.blank
            if one.bad:
                bad_at[row] = one.bad
            if one.users:
                users.append(one.users[0])
                slow_ids.append(one.ids[0])
                rows.append(row)
        if not users:
            return
        ref = chunk_from_users(users, slow_ids, self.plan, self.schema, latest=self.latest, roles=self.roles)
        r = np.asarray(rows, dtype=np.int64)
        for name, values in ref.scalars.items():
            chunk.scalars[name][r] = values
        for name, values in ref.lists.items():
            chunk.lists[name][r] = values
        chunk.created[r] = ref.created
        chunk.optout[r] = ref.optout
        for row, uid in zip(rows, slow_ids):
            ids[row] = uid
        for path, eb in chunk.events.items():
            add = ref.events[path]
            if len(add.uidx) == 0:
                continue
            # the slow rows have no events yet (the scanner rolled them back): their events go in at the
            # places that keep ``uidx`` sorted, in their own order (no sort of the whole block)
            new_uidx = r[add.uidx]
            at = np.searchsorted(eb.uidx, new_uidx)
            eb.uidx = np.insert(eb.uidx, at, new_uidx)
            eb.t = np.insert(eb.t, at, add.t)
            for name in eb.values:
                eb.values[name] = np.insert(eb.values[name], at, add.values[name])
            for name in eb.flag_times:
                eb.flag_times[name] = np.insert(eb.flag_times[name], at, add.flag_times[name])
            for name in eb.codes:
                eb.codes[name] = np.insert(eb.codes[name], at, add.codes[name])


#: set to ``python`` to force the reference decoder (debugging, comparisons)
DECODER_ENV = "SIGHTLINES_DECODER"


def make_decoder(plan: Plan, schema: Schema | None, roles: Roles, *, latest: float) -> BlockDecoder | None:
    """The compiled decoder for this plan, or None where the reference decoder must be used."""
    if schema is None or _native is None or os.environ.get(DECODER_ENV, "").lower() == "python":
        return None
    try:
        return BlockDecoder(plan, schema, roles, latest=latest)
    except Unsupported as exc:
        log.info("compiled decoder not used for this schema (%s); using the reference decoder", exc)
        return None


def decode_to_chunk(buf: bytes | memoryview, first_lineno: int, file_name: str, plan: Plan, schema: Schema | None,
                    seen: dict[str, int], *, latest: float, roles: Roles,
                    decoder: BlockDecoder | None = None) -> tuple[DecodedBlock, Chunk]:
    """A block of raw lines -> (its good ids, bad records and counts; the chunk of its good users).

    With ``decoder`` (from :func:`make_decoder`) the compiled path is used,
    otherwise ``decode_block`` + ``chunk_from_users``; both give the same result.
    """
    if decoder is not None:
        return decoder.decode(buf, first_lineno, file_name, seen)
    lines = bytes(buf).split(b"\n")
    if lines and not lines[-1]:
        lines.pop()
    block = decode_block(lines, first_lineno, file_name, plan, seen, id_path=roles.id)
    block.n_lines = len(lines)
    chunk = chunk_from_users(block.users, block.ids, plan, schema, latest=latest, roles=roles)
    block.users = []  # the typed records are no longer needed
    return block, chunk
