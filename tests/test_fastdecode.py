"""The compiled decoder gives exactly what the reference decoder gives, on good and on mangled input.

The reference is ``decode_block`` + ``chunk_from_users`` (msgspec typed
records, a lenient path for bad input, numpy columns). The compiled scanner
must produce the same ids, line numbers, bad records, counts and column
values, bit for bit, whatever the input: these tests compare the two on a
generated snapshot, on thousands of randomly mangled lines, and end to end
through ``extract``.
"""

from __future__ import annotations

import copy
import datetime as dt
import gzip
import json
import random

import numpy as np
import orjson
import pyarrow.parquet as pq
import pytest

from sightlines._decode import build_plan
from sightlines._fastdecode import (
    BlockDecoder,
    available,
    decode_to_chunk,
    make_decoder,
)
from sightlines._timeparse import end_of_day
from sightlines.config import ClientConfig
from sightlines.pipeline import extract
from sightlines.pipeline._extract import learn_client_schema
from sightlines.profiles import RawBlocks, iter_line_blocks, raw_files
from sightlines.synth import generate_client

DATE = "2026-11-24"
LATEST = end_of_day(dt.date(2026, 11, 24)) + 86400.0


def test_the_compiled_scanner_is_built():
    # ./dev.sh builds it; without it extraction silently runs at the reference decoder's speed
    assert available(), "sightlines._native._scanner is not built (is a C compiler installed?)"


def _same(a, b, what: str) -> None:
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape and a.dtype == b.dtype, f"{what}: {a.shape}/{a.dtype} vs {b.shape}/{b.dtype}"
    if a.dtype.kind == "f":  # bit for bit, NaN equal to NaN
        ok = (np.isnan(a) & np.isnan(b)) | (a.view(f"i{a.itemsize}") == b.view(f"i{b.itemsize}"))
    else:
        ok = a == b
    bad = np.flatnonzero(~ok)[:5]
    assert ok.all(), f"{what} differs at {bad.tolist()}: {a[bad].tolist()} vs {b[bad].tolist()}"


def assert_same_result(fast, ref) -> None:
    (fb, fc), (rb, rc) = fast, ref
    assert [b.to_dict() for b in fb.bad] == [b.to_dict() for b in rb.bad]
    assert fb.ids == rb.ids
    assert list(fb.lines) == list(rb.lines)
    assert (fb.blank, fb.lenient) == (rb.blank, rb.lenient)
    assert fc.user_ids == rc.user_ids
    assert set(fc.scalars) == set(rc.scalars) and set(fc.lists) == set(rc.lists)
    for k in rc.scalars:
        _same(fc.scalars[k], rc.scalars[k], f"scalar {k}")
    for k in rc.lists:
        _same(fc.lists[k], rc.lists[k], f"list {k}")
    _same(fc.created, rc.created, "created")
    _same(fc.optout, rc.optout, "optout")
    assert set(fc.events) == set(rc.events)
    for path, e in rc.events.items():
        f = fc.events[path]
        _same(f.uidx, e.uidx, f"{path} uidx")
        _same(f.t, e.t, f"{path} t")
        for attr in ("values", "flag_times", "codes"):
            mine, theirs = getattr(f, attr), getattr(e, attr)
            assert set(mine) == set(theirs), (path, attr)
            for k in theirs:
                _same(mine[k], theirs[k], f"{path} {attr} {k}")


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """A generated client with the generator's bad records and oddities, and its learned schema."""
    from sightlines.storage import Storage

    storage = Storage(str(tmp_path_factory.mktemp("fastdecode") / "root"))
    store = storage.client("acme")
    generate_client(store, users=3000, date=DATE, seed=11, bad_fraction=0.01, workers=1)
    schema = learn_client_schema(store, DATE, ClientConfig(), save=False)
    plan = build_plan(schema, schema.roles, labels=True)
    return storage, store, schema, plan


def _snapshot_lines(store) -> list[bytes]:
    """Every line of the generated snapshot, in file order."""
    return [x for key in raw_files(store, DATE) for _, _, lines in iter_line_blocks(store, key) for x in lines]


def _compare(buf: bytes, schema, plan, *, first: int = 1, seen_fast=None, seen_ref=None):
    decoder = BlockDecoder(plan, schema, schema.roles, latest=LATEST)
    fast = decode_to_chunk(buf, first, "f.ndjson", plan, schema, {} if seen_fast is None else seen_fast,
                           latest=LATEST, roles=schema.roles, decoder=decoder)
    ref = decode_to_chunk(buf, first, "f.ndjson", plan, schema, {} if seen_ref is None else seen_ref,
                          latest=LATEST, roles=schema.roles)
    assert_same_result(fast, ref)
    return fast, decoder


def test_a_generated_snapshot_decodes_identically(generated):
    _, store, schema, plan = generated
    decoder = BlockDecoder(plan, schema, schema.roles, latest=LATEST)
    seen_fast: dict[str, int] = {}
    seen_ref: dict[str, int] = {}
    users = slow = 0
    for key in raw_files(store, DATE):
        for _, first, buf in RawBlocks(store, key, block_bytes=256 << 10):
            fast = decode_to_chunk(buf, first, "f", plan, schema, seen_fast, latest=LATEST, roles=schema.roles,
                                   decoder=decoder)
            ref = decode_to_chunk(buf, first, "f", plan, schema, seen_ref, latest=LATEST, roles=schema.roles)
            assert_same_result(fast, ref)
            users += len(fast[0].ids)
            slow += len(decoder.scanner.scan(buf)[1])
    assert users >= 2900
    # the oddities and bad records take the reference path; ordinary profiles must not
    assert slow < 0.05 * users, f"{slow} of {users} lines fell back to the reference decoder"


# ---------------------------------------------------------------------------
# mangled input
# ---------------------------------------------------------------------------

_ODD_VALUES = [
    None, True, False, 0, -0, -0.0, 1, -1, 3.5, 1e300, 10**17, 10**30, "", " ", "x", "3.5", "1e3", "NaN",
    "2026-11-20T10:00:00Z", "2026-11-20T10:00:00", "2026-11-20 10:00:00Z", "2026-11-20T10:00:00.123Z",
    "2026-11-20T10:00:00.5Z", "2026-11-20T10:00:00+02:00", "2026-11-20T10:00:00-05:30", "2026-11-20T10:00:60Z",
    "2026-02-30T10:00:00Z", "2024-02-29T23:59:59Z", "1969-12-31T23:59:59Z", "2099-01-01T00:00:00Z",
    "2026-11-20T10:00:00+24:00", "2026-11-20", "  2026-11-20T10:00:00Z ", "2026-11-20T10:00:00Zjunk",
    "2026-11-20T10:00:00.123456789Z", "2026-11-20T10:00:00.123+01:00", "20261120", "ünïcode", "é",
    "2026-11-20T10:00:00Z\u00e9", 1764000000, 1764000000.25, -5, 4e18, [], [1, 2], {}, {"a": 1},
    {"time": "2026-11-20T10:00:00Z"}, [{"time": "2026-11-20T10:00:00Z"}], ["a", "b", "c"], "gold", "silver",
    "email", "sms", "push", 12.34, 0.1, 1.0000000000000002, 123456789012345, 1234567890123456,
]

_RAW_VALUES = [b"NaN", b"Infinity", b"-Infinity", b"1e999", b"-1e999", b"123456789012345678901234567890",
               b"\"\\u0067old\"", b"\"\\ud83d\\ude00\"", b"\"\\udc00x\"", b"\"gold\\n\"", b"\"\\ud800\"", b"\"\xff\xfe\"", b"\"caf\xc3\xa9\"",
               b"\"\xc3\"", b"\"\\q\"", b"-0", b"0.0e0", b"1E2", b"1.5e-3", b"00", b"1.", b".5", b"+1",
               b"tru", b"nul", b"[1,]", b"{\"a\":}", b"\"\x01\"", (b"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["
               b"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]")]


def _paths(obj, depth=0):
    """Every (container, key) pair of a decoded profile (down to 40 levels), for picking a place to mangle."""
    out = []
    if depth > 40:
        return out
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.append((obj, k))
            out.extend(_paths(v, depth + 1))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out.append((obj, i))
            out.extend(_paths(v, depth + 1))
    return out


def _dumps(obj) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


def _mangle(line: bytes, rng: random.Random) -> bytes:
    """One random kind of damage to one profile line."""
    kind = rng.randrange(10)
    if kind == 0:  # raw bytes somewhere in the text
        cut = rng.randrange(len(line) + 1)
        return line[:cut] + rng.choice(_RAW_VALUES + [b"\n", b"\r", b"\t", b" ", b"\xef\xbb\xbf", b","]) + line[cut:]
    if kind == 1:  # truncated
        return line[: rng.randrange(len(line) + 1)]
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        return line
    if not isinstance(obj, dict):
        return line
    places = _paths(obj)
    if kind in (2, 3, 4, 5, 6) and places:  # a value replaced by an odd one (several times)
        for _ in range(rng.randrange(1, 4)):
            container, key = rng.choice(places)
            try:
                container[key] = copy.deepcopy(rng.choice(_ODD_VALUES))
            except (TypeError, IndexError):
                pass
            places = _paths(obj)
            if not places:
                break
        return _dumps(obj)
    if kind == 7 and places:  # a raw token in place of a value
        container, key = rng.choice(places)
        marker = "__RAW__"
        try:
            container[key] = marker
        except (TypeError, IndexError):
            return line
        return _dumps(obj).replace(b'"__RAW__"', rng.choice(_RAW_VALUES), 1)
    if kind == 8:  # a repeated key (the last one wins in the reference)
        text = _dumps(obj)
        extra = rng.choice([b'"id":"dup"', b'"created":"2026-01-01T00:00:00Z"', b'"purchases":[]',
                            b'"optout":{"time":"2026-11-01T00:00:00Z"}', b'"vars":{}'])
        return text[:1] + extra + b"," + text[1:] if len(text) > 2 else text
    # kind 9: the id changed (missing, numeric, padded, repeated, huge)
    obj["id"] = rng.choice([None, 7, -7, 0, 1.5, "  u-1  ", "u-000001", "", "x" * 300, "é-1", True, {"v": 1}])
    if rng.random() < 0.3:
        del obj["id"]
    return _dumps(obj)


@pytest.mark.parametrize("seed", range(6))
def test_mangled_lines_decode_identically(generated, seed):
    _, store, schema, plan = generated
    rng = random.Random(seed)
    good = [x for x in _snapshot_lines(store) if x.strip()]
    lines = []
    for _ in range(800):
        line = rng.choice(good)
        if rng.random() < 0.6:
            line = _mangle(line, rng)
            if rng.random() < 0.2:
                line = _mangle(line, rng)
        lines.append(line)
    lines.insert(rng.randrange(len(lines)), b"")
    lines.insert(rng.randrange(len(lines)), b"  \t ")
    buf = b"\n".join(lines) + (b"\n" if seed % 2 else b"")
    (block, _), _ = _compare(buf, schema, plan, first=17)
    assert block.bad and block.lenient  # the mangling did reach both paths


def test_blocks_share_the_ids_seen_so_far(generated):
    _, store, schema, plan = generated
    key = raw_files(store, DATE)[0]
    lines = next(iter_line_blocks(store, key))[2][:50]
    seen_fast: dict[str, int] = {}
    seen_ref: dict[str, int] = {}
    _compare(b"\n".join(lines[:30]) + b"\n", schema, plan, seen_fast=seen_fast, seen_ref=seen_ref)
    (block, _), _ = _compare(b"\n".join(lines[20:]) + b"\n", schema, plan, first=31, seen_fast=seen_fast,
                             seen_ref=seen_ref)
    assert sum(b.kind == "duplicate_id" for b in block.bad) == 10
    assert seen_fast == seen_ref


def test_extract_writes_the_same_table_with_either_decoder(generated, monkeypatch, tmp_path):
    storage, store, schema, plan = generated
    tables = {}
    for mode in ("compiled", "python"):
        monkeypatch.setenv("SIGHTLINES_DECODER", mode)
        assert (make_decoder(plan, schema, schema.roles, latest=LATEST) is None) == (mode == "python")
        result = extract("acme", DATE, storage, workers=2, config=ClientConfig(bad_fraction_max=0.2))
        keys = store.dataset_files(store.features(DATE), ".parquet")
        parts = []
        for k in keys:
            with store.open(k) as f:
                parts.append(pq.read_table(f))
        tables[mode] = (result.details["bad_by_kind"], result.n_records, parts)
    assert tables["compiled"][:2] == tables["python"][:2]
    assert len(tables["compiled"][2]) == len(tables["python"][2])
    for a, b in zip(tables["compiled"][2], tables["python"][2]):
        assert a.schema == b.schema
        for name in a.column_names:
            if name == "user_id":
                assert a.column(name).to_pylist() == b.column(name).to_pylist()
            else:
                _same(a.column(name).to_numpy(), b.column(name).to_numpy(), name)


@pytest.mark.parametrize("block_bytes", [7, 64, 1000])
@pytest.mark.parametrize("gz", [True, False])
def test_raw_blocks_are_the_line_blocks_unsplit(storage, block_bytes, gz):
    store = storage.client("acme")
    rng = random.Random(block_bytes)
    lines = [b'{"id": "%d"}' % i + b" " * rng.randrange(40) for i in range(60)]
    lines[10] = b'{"id": "long", "x": "' + b"y" * 5000 + b'"}'
    lines[20] = b""
    data = b"\n".join(lines)  # no newline at the end
    key = f"raw/{DATE}/a.ndjson" + (".gz" if gz else "")
    store.write_bytes(key, gzip.compress(data) if gz else data)
    for select in (None, lambda i: i % 3 == 1):
        # the file's last line has no newline
        split = [(i, first, b"\n".join(ls) + (b"" if first + len(ls) - 1 == len(lines) else b"\n"))
                 for i, first, ls in iter_line_blocks(store, key, block_bytes=block_bytes, select=select)]
        raw = [(i, first, bytes(v)) for i, first, v in RawBlocks(store, key, block_bytes=block_bytes, select=select)]
        assert raw == split


def test_very_long_integers_take_the_reference_path(generated):
    # msgspec refuses integers of thousands of digits even where no feature reads them (not JSON, kept aside)
    _, store, schema, plan = generated
    key = raw_files(store, DATE)[0]
    obj = next(u for _, _, ls in iter_line_blocks(store, key) for x in ls if x.startswith(b"{")
               for u in [orjson.loads(x)] if isinstance(u, dict) and len((u.get("purchases") or [{}])[0]) > 4)
    assert any(ev.levels for ev in schema.events)  # a field read as a level code (purchases' channel)
    huge = b"7" * 4301
    lines = []
    for field in obj["purchases"][0]:
        mangled = copy.deepcopy(obj)
        mangled["purchases"][0][field] = "__RAW__"
        lines.append(_dumps(mangled).replace(b'"__RAW__"', huge))
    (block, _), _ = _compare(b"\n".join(lines) + b"\n", schema, plan)
    assert len(block.bad) >= 3  # time, total, channel: read, so refused; a field nobody reads is only skipped


def test_repeated_levels_use_the_reference_decoder(generated):
    import dataclasses

    _, _, schema, _ = generated
    cat = next(s for s in schema.scalars if s.kind == "categorical")
    odd = dataclasses.replace(cat, levels=(*cat.levels, cat.levels[0]))
    schema2 = dataclasses.replace(schema, scalars=tuple(odd if s is cat else s for s in schema.scalars))
    plan2 = build_plan(schema2, schema2.roles, labels=True)
    assert make_decoder(plan2, schema2, schema2.roles, latest=LATEST) is None


def test_the_scanner_refuses_a_plan_out_of_range_and_an_uninitialised_use():
    from sightlines._native import scanner as native

    with pytest.raises(RuntimeError, match="not initialised"):
        native.Scanner.__new__(native.Scanner).scan(b'{"id": "a"}\n')
    leaf = (native.K_LEAF, (), ((native.C_NUM, 5, ()),), -1, -1)  # slot 5 of 1 column
    root = (native.K_OBJ, ((b"x", leaf),), (), -1, -1)
    with pytest.raises(ValueError, match="slot out of range"):
        native.Scanner(root, 1, (), 0.0)
    events = (native.K_RECORDS, (), (), 3, -1)  # group 3 of none
    with pytest.raises(ValueError, match="group out of range"):
        native.Scanner((native.K_OBJ, ((b"e", events),), (), -1, -1), 0, (), 0.0)
    ok_leaf = (native.K_LEAF, (), ((native.C_NUM, 0, ()),), -1, -1)
    id_leaf = (native.K_LEAF, (), ((native.C_ID, -1, ()),), -1, -1)
    good = native.Scanner((native.K_OBJ, ((b"id", id_leaf), (b"x", ok_leaf)), (), -1, -1), 1, (), 1e12)
    with pytest.raises(ValueError):
        good.__init__(root, 1, (), 0.0)  # a failed re-initialisation keeps the plan it had
    status, _, ids, cols, _, _, _ = good.scan(b'{"id": "a", "x": 2.5}\n')
    assert bytes(status) == b"\x00" and ids == ["a"] and np.frombuffer(cols[0]).tolist() == [2.5]


def test_the_scanner_hashes_ids_as_hash_ids_does(generated):
    # repeats are found by hash: the rows the scanner decodes and the slow rows (hashed afterwards) must agree
    from sightlines._fastdecode import hash_ids

    _, store, schema, plan = generated
    decoder = BlockDecoder(plan, schema, schema.roles, latest=LATEST)
    key = raw_files(store, DATE)[0]
    _, first, buf = next(iter(RawBlocks(store, key)))
    sb = decoder.scan(buf, first, "f")
    rows = sb.good_rows()
    assert len(sb.slow_rows) and len(rows) > 100
    assert sb.hashes[rows].tolist() == hash_ids([sb.ids[r] for r in rows]).tolist()
    odd = ["u-1", "1234", "é-1", "\udc80x", "x" * 300, "a" * 8, "a" * 16]
    assert len(set(hash_ids(odd).tolist())) == len(odd)
    assert hash_ids(["u-1"]).tolist() == hash_ids(["u-1"]).tolist() != hash_ids(["u-2"]).tolist()


@pytest.mark.parametrize("seed", range(3))
def test_leading_ids_are_the_ids_the_decoder_reads(generated, seed):
    # a share that starts mid-file marks the ids of the lines it reads past by the hash of their leading id:
    # a hash it gives must be the one the decoder gives the line (a line that repeats its id key aside)
    from sightlines._fastdecode import hash_ids
    from sightlines._native import scanner as native
    from sightlines.profiles import decode_block

    _, store, schema, plan = generated
    rng = random.Random(seed)
    good = _snapshot_lines(store)
    lines = [_mangle(line, rng) if rng.random() < 0.5 else line for line in rng.sample(good, 800)]
    lines += [b'\xef\xbb\xbf{"id":"bom"}', b' { "id" : 42 , "x": 1}', b'{"id":-0}', b'{"id":07}', b'{"id":0}',
              b'{"id":"a\\u0041"}', b'{"id":" pad"}', b'{"x":1,"id":"later"}', b'{"id":"u-9" "x"}', b"", b"[1]"]
    buf = b"\n".join(lines)
    n, hashes = native.leading_ids(buf, b"id")
    assert n == buf.count(b"\n")
    found = 0
    for line in lines:
        _, h = native.leading_ids(line, b"id")
        if not h:
            continue
        found += 1
        block = decode_block([line], 1, "f", plan, None)
        if line.count(b'"id"') > 1 or not block.ids:  # the id key twice, or a line the decoder keeps aside
            continue
        assert np.frombuffer(h, np.uint64).tolist() == hash_ids(block.ids).tolist(), line[:200]
    assert len(hashes) == 8 * found and found > 300
    got = set(np.frombuffer(hashes, np.uint64).tolist())
    assert set(hash_ids(["bom", "42", "0"]).tolist()) <= got
    assert not set(hash_ids(["later", "-0", "aA", "pad", " pad"]).tolist()) & got  # passed over: never a wrong id


def test_strip_lists_keeps_the_keys_new_keys_reads(generated):
    # the new-keys check parses its sample without the lists' contents: the same keys come out
    from sightlines._native import scanner as native
    from sightlines.schema import new_keys

    _, store, schema, _ = generated
    assert native.strip_lists(b'{"a":[1,[2,"]"],{"b":[3]}],"c":{"d":["x\\"]"]},"e":"[q]"}') == \
        b'{"a":[],"c":{"d":[]},"e":"[q]"}'
    for cut in (b'{"a":[1,2', b'{"a":"ab', b'{"a":"\\'):  # ends inside a list or a string: returned as it is
        assert native.strip_lists(cut) == cut
    lines = _snapshot_lines(store)
    full, shapes = [], []
    for line in lines:
        try:
            user = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if type(user) is dict:
            full.append(user)
            shapes.append(orjson.loads(native.strip_lists(line)))
    assert len(full) > 2500
    changed = [dict(u, brandnew={"k": 1}) if i % 10 == 0 else u for i, u in enumerate(full)]
    changed_shapes = [dict(u, brandnew={"k": 1}) if i % 10 == 0 else u for i, u in enumerate(shapes)]
    assert new_keys(schema, changed) == new_keys(schema, changed_shapes) == ["brandnew.k"]
    assert new_keys(schema, full) == new_keys(schema, shapes)
