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
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._decode import Plan, _Node
from ._native import scanner as _native
from .config import Roles
from .features import ITEMS_FIELD, Chunk, EventBlock, chunk_from_users
from .profiles import BadRecord, DecodedBlock, decode_block, line_text
from .schema import Schema

log = logging.getLogger(__name__)

__all__ = ["BlockDecoder", "ScannedBlock", "SegmentDecoder", "decode_to_chunk", "make_decoder", "hash_ids",
           "available"]


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


@dataclass
class ScannedBlock:
    """A block of lines after the compiled scan, before :meth:`BlockDecoder.merge`.

    One row per non-blank line. The plain lines' values and events are in
    ``ucols`` and ``groups`` (the scanner's layout); the slow lines' rows are
    still empty there, their users decoded by msgspec in ``slow_users``.
    """

    lines: np.ndarray  # line number of each row
    ids: list[Any]  # id of each row (None: the line is kept aside)
    ucols: list[np.ndarray]
    groups: list[tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]]
    bounds: np.ndarray  # start and end offset of each row's line in the scanned buffer
    hashes: np.ndarray  # the hash of each row's id (:func:`hash_ids`; 0 for bad rows)
    n_lines: int = 0
    blank: int = 0
    lenient: int = 0
    slow_rows: list[int] = field(default_factory=list)
    slow_users: list[Any] = field(default_factory=list)
    bad_at: dict[int, list[BadRecord]] = field(default_factory=dict)
    #: rows kept aside (no user: not JSON, no usable id...), in order; their rows have no values or events
    bad_rows: list[int] = field(default_factory=list)

    def good_rows(self) -> np.ndarray:
        """The rows of the users (every row but the bad ones)."""
        return np.delete(np.arange(len(self.ids), dtype=np.int64), self.bad_rows)


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

    def scan(self, buf: bytes | memoryview, first_lineno: int, file_name: str) -> ScannedBlock:
        """Scan the lines of ``buf`` (``\\n``-separated; the last may lack its newline).

        The plain lines are decoded by the compiled scanner; the others (slow)
        by msgspec, one by one, into typed records whose columns
        :meth:`merge` fills in later, for several blocks at once (the
        reference's column code has a fixed cost per call). ``buf`` is not
        kept: use ``bounds`` before it changes.
        """
        status_b, slow, ids, ucols_b, groups_b, bounds_b, hashes_b = self.scanner.scan(buf)
        status = np.frombuffer(status_b, dtype=np.uint8)
        nonblank = np.flatnonzero(status != 2)
        lines = nonblank + first_lineno
        groups = []
        for (_, dbl, codes), (uidx_b, d_b, c_b) in zip(self.groups, groups_b):
            groups.append((np.frombuffer(uidx_b, dtype=np.int64), [np.frombuffer(b, dtype=np.float64) for b in d_b],
                           [np.frombuffer(b, dtype=np.int16) for b in c_b]))
        out = ScannedBlock(lines=lines, ids=ids, ucols=[np.frombuffer(c, dtype=np.float64) for c in ucols_b],
                           groups=groups, bounds=np.frombuffer(bounds_b, dtype=np.int64),
                           hashes=np.frombuffer(hashes_b, dtype=np.uint64), n_lines=len(status),
                           blank=len(status) - len(nonblank))
        if slow:
            mv = memoryview(buf)
            for row, start, end in slow:
                one = decode_block([bytes(mv[start:end])], int(lines[row]), file_name, self.plan, None,
                                   id_path=self.roles.id)
                out.lenient += one.lenient
                out.blank += one.blank
                if one.bad:
                    out.bad_at[row] = one.bad
                if one.users:
                    out.slow_rows.append(row)
                    out.slow_users.append(one.users[0])
                    ids[row] = one.ids[0]
                else:
                    out.bad_rows.append(row)
            if out.slow_rows:
                out.hashes = out.hashes.copy()
                out.hashes[out.slow_rows] = hash_ids([ids[row] for row in out.slow_rows])
        return out

    def merge(self, blocks: list[ScannedBlock]) -> tuple[DecodedBlock, Chunk, np.ndarray]:
        """The good users of scanned blocks, in line order: their ids, bad records and counts, and their chunk.

        Ids are not compared (a repeated id stays). Also returns the row (in
        the concatenated blocks) of each good user.
        """
        offsets = np.cumsum([0] + [len(b.ids) for b in blocks]).tolist()
        one = len(blocks) == 1
        # the bad rows (few) have no values or events: they are cut out while the blocks are put together
        bad = np.asarray([off + row for b, off in zip(blocks, offsets) for row in b.bad_rows], dtype=np.int64)

        def cat(arrays: list[np.ndarray]) -> np.ndarray:
            return arrays[0] if one else np.concatenate(arrays)

        def users(arrays: list[np.ndarray]) -> np.ndarray:  # a per-row column without the bad rows
            whole = cat(arrays)
            return np.delete(whole, bad) if len(bad) else whole

        def uidx(gi: int) -> np.ndarray:
            u = cat([b.groups[gi][0] + off if off else b.groups[gi][0] for b, off in zip(blocks, offsets)])
            return u - np.searchsorted(bad, u) if len(bad) else u  # rows move up past the bad ones before them

        ids: list[Any] = []
        for b in blocks:
            ids.extend(b.ids)
        slow_rows = [off + row for b, off in zip(blocks, offsets) for row in b.slow_rows]
        slow_users = [u for b in blocks for u in b.slow_users]
        slow_ids = [ids[r] for r in slow_rows]
        ucols = [users([b.ucols[k] for b in blocks]) for k in range(len(blocks[0].ucols))] if blocks else []
        events = {}
        for gi, (path, dbl, codes) in enumerate(self.groups):
            eb = EventBlock(uidx=uidx(gi), t=np.empty(0))
            for k, (kind, name) in enumerate(dbl):
                arr = cat([b.groups[gi][1][k] for b in blocks])
                if kind == "t":
                    eb.t = arr
                elif kind == "f":
                    eb.flag_times[name] = arr
                else:
                    eb.values[name] = arr
            for k, name in enumerate(codes):
                eb.codes[name] = cat([b.groups[gi][2][k] for b in blocks])
            events[path] = eb
        if len(bad):
            ids = list(filter(None, ids))  # usable ids are never empty: only the bad rows' None go
        chunk = Chunk(
            user_ids=ids,
            scalars={name: ucols[slot] for name, slot in self.scalar_slots},
            lists={name: ucols[slot] for name, slot in self.list_slots},
            events=events,
            created=ucols[self.created_slot], optout=ucols[self.optout_slot],
        )
        if slow_rows:
            rows = np.asarray(slow_rows, dtype=np.int64)
            self._patch_slow(chunk, rows - np.searchsorted(bad, rows) if len(bad) else rows, slow_users, slow_ids)
        out = DecodedBlock(blank=sum(b.blank for b in blocks), lenient=sum(b.lenient for b in blocks),
                           n_lines=sum(b.n_lines for b in blocks))
        out.bad = [bad_ for b in blocks for row in sorted(b.bad_at) for bad_ in b.bad_at[row]]
        out.ids = ids
        out.lines = users([b.lines for b in blocks]).tolist() if blocks else []
        good = np.delete(np.arange(offsets[-1], dtype=np.int64), bad)
        return out, chunk, good

    def decode(self, buf: bytes | memoryview, first_lineno: int, file_name: str,
               seen: dict[str, int] | None) -> tuple[DecodedBlock, Chunk]:
        """Decode the lines of ``buf`` (``\\n``-separated; the last may lack its newline).

        Same contract as ``decode_block`` + ``chunk_from_users``: ``seen`` (id ->
        line number) is updated, repeated ids become bad records, and the chunk
        holds the good users in line order.
        """
        scanned = self.scan(buf, first_lineno, file_name)
        out, chunk, good = self.merge([scanned])
        if seen is None:
            return out, chunk
        fresh = dict(zip(out.ids, out.lines))
        if len(fresh) == len(out.ids) and seen.keys().isdisjoint(fresh):  # the usual block: no id repeats
            seen.update(fresh)
            return out, chunk
        # ids in line order: a repeat of an id already seen is kept aside (the first occurrence stays)
        bounds = scanned.bounds
        keep: list[int] = []
        bad_by_line = {b.line: b for b in out.bad}
        for i, (uid, line) in enumerate(zip(out.ids, out.lines)):
            first = seen.get(uid)
            if first is not None:
                row = int(good[i])
                bad_by_line[line] = BadRecord(file_name, line, "duplicate_id",
                                              f"duplicate id {uid!r} (first seen at line {first})",
                                              line_text(bytes(buf[bounds[2 * row]:bounds[2 * row + 1]])))
                continue
            seen[uid] = line
            keep.append(i)
        out.bad = [bad_by_line[line] for line in sorted(bad_by_line)]
        if len(keep) != len(out.ids):
            rows = np.asarray(keep, dtype=np.int64)
            chunk = chunk.take(rows)
            out.lines = [out.lines[i] for i in keep]
            out.ids = chunk.user_ids
        return out, chunk

    def _patch_slow(self, chunk: Chunk, rows: np.ndarray, users: list[Any], ids: list[str]) -> None:
        """Write the columns of the slow lines' users (typed records, at ``rows`` of ``chunk``) into the chunk."""
        ref = chunk_from_users(users, ids, self.plan, self.schema, latest=self.latest, roles=self.roles)
        for name, values in ref.scalars.items():
            chunk.scalars[name][rows] = values
        for name, values in ref.lists.items():
            chunk.lists[name][rows] = values
        chunk.created[rows] = ref.created
        chunk.optout[rows] = ref.optout
        for path, eb in chunk.events.items():
            add = ref.events[path]
            if len(add.uidx) == 0:
                continue
            # the slow rows have no events yet (the scanner rolled them back): their events go in at the
            # places that keep ``uidx`` sorted, in their own order (no sort of the whole block)
            new_uidx = rows[add.uidx]
            at = np.searchsorted(eb.uidx, new_uidx)
            eb.uidx = np.insert(eb.uidx, at, new_uidx)
            eb.t = np.insert(eb.t, at, add.t)
            for name in eb.values:
                eb.values[name] = np.insert(eb.values[name], at, add.values[name])
            for name in eb.flag_times:
                eb.flag_times[name] = np.insert(eb.flag_times[name], at, add.flag_times[name])
            for name in eb.codes:
                eb.codes[name] = np.insert(eb.codes[name], at, add.codes[name])


def hash_ids(ids: list[str]) -> np.ndarray:
    """Stable 64-bit hashes (uint64) of user ids, the same in every process.

    The compiled scanner's hash where it is built (it hashes the ids it
    decodes as it reads them), else pandas' ``hash_array``: one extraction
    uses one or the other throughout.
    """
    if not ids:
        return np.zeros(0, np.uint64)
    if _native is not None:
        return np.frombuffer(_native.hash_ids(list(ids)), dtype=np.uint64)
    from pandas.util import hash_array

    return hash_array(np.asarray(ids, dtype=object), categorize=False)


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


class SegmentDecoder:
    """Decodes the blocks of one segment of a snapshot file, then gives all its good users at once.

    Ids are not compared here: a repeated id stays (``extract`` finds repeats
    across the whole snapshot). With the compiled ``decoder`` the slow lines of
    all the blocks go through the reference decoder's columns in one call;
    without it, every line does.

    Parameters
    ----------
    plan, schema, roles, latest
        As for :func:`decode_to_chunk`.
    file_name : str
        The snapshot file's name (for bad records).
    decoder : BlockDecoder, optional
        The compiled decoder (:func:`make_decoder`); None for the reference.
    """

    def __init__(self, plan: Plan, schema: Schema | None, roles: Roles, *, latest: float, file_name: str,
                 decoder: BlockDecoder | None = None):
        self.plan, self.schema, self.roles, self.latest = plan, schema, roles, latest
        self.file_name, self.decoder = file_name, decoder
        self._scanned: list[ScannedBlock] = []
        self._blocks: list[DecodedBlock] = []

    def __len__(self) -> int:
        return len(self._scanned) + len(self._blocks)

    def add(self, buf: bytes | memoryview, first_lineno: int) -> tuple[np.ndarray, np.ndarray, Any]:
        """Decode the lines of ``buf``; returns the hashes of this block's good ids (:func:`hash_ids`), their
        line numbers, and a function giving the raw text of the i-th of them (valid until ``buf`` changes),
        and sets :attr:`n_lines`."""
        if self.decoder is not None:
            sb = self.decoder.scan(buf, first_lineno, self.file_name)
            self._scanned.append(sb)
            self.n_lines = sb.n_lines
            rows = sb.good_rows()
            bounds = sb.bounds

            def raw(i: int) -> bytes:
                row = rows[i]
                return bytes(buf[bounds[2 * row]:bounds[2 * row + 1]])

            return sb.hashes[rows], sb.lines[rows], raw
        lines = bytes(buf).split(b"\n")
        if lines and not lines[-1]:
            lines.pop()
        block = decode_block(lines, first_lineno, self.file_name, self.plan, None, id_path=self.roles.id)
        block.n_lines = self.n_lines = len(lines)
        self._blocks.append(block)
        return hash_ids(block.ids), np.asarray(block.lines, dtype=np.int64), \
            lambda i: lines[block.lines[i] - first_lineno]

    def finish(self) -> tuple[DecodedBlock, Chunk]:
        """The segment's good users in line order (ids, line numbers, bad records, counts) and their chunk."""
        if self.decoder is not None:
            out, chunk, _ = self.decoder.merge(self._scanned)
            self._scanned = []
            return out, chunk
        out = DecodedBlock(blank=sum(b.blank for b in self._blocks), lenient=sum(b.lenient for b in self._blocks),
                           n_lines=sum(b.n_lines or 0 for b in self._blocks))
        users = []
        for b in self._blocks:
            users.extend(b.users)
            out.ids.extend(b.ids)
            out.lines.extend(b.lines)
            out.bad.extend(b.bad)
        self._blocks = []
        chunk = chunk_from_users(users, out.ids, self.plan, self.schema, latest=self.latest, roles=self.roles)
        return out, chunk
