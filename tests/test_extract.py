"""The extract step: raw snapshots -> feature tables, with every kind of bad input."""

from __future__ import annotations

import datetime as dt
import gzip

import numpy as np
import orjson
import pyarrow.parquet as pq
import pytest

from sightlines.config import ClientConfig
from sightlines.errors import DataQualityError, NotFoundError
from sightlines.pipeline import extract
from sightlines.pipeline._extract import _read_lines
from sightlines.schema import load_schema

DATE = "2026-11-24"


def user(i: int, **extra) -> dict:
    """A well-formed profile in the DESIGN shape."""
    u = {
        "id": f"u-{i:05d}",
        "created": "2025-01-01T00:00:00Z",
        "vars": {"loyalty": {"tier": ["gold", "silver", "bronze"][i % 3], "points": i * 10}},
        "purchases": [{"time": "2026-11-20T10:00:00Z", "total": 10.0 + i % 7,
                       "items": [{"sku": "A", "price": 10.0, "qty": 1}]}] * (i % 3),
        "messages": [{"time": "2026-11-22T08:00:00Z", "channel": "email",
                      "opened": "2026-11-22T09:00:00Z" if i % 2 else None, "clicked": None}],
        "pageviews": [{"time": "2026-11-23T12:00:00Z", "url": "/p/1"}],
        "optout": {"time": None},
    }
    u.update(extra)
    return u


def features(storage, client: str = "acme", date: str = DATE):
    store = storage.client(client)
    keys = store.dataset_files(store.features(date), ".parquet")
    tables = []
    for k in keys:
        with store.open(k) as f:
            tables.append(pq.read_table(f))
    import pyarrow as pa

    return pa.concat_tables(tables).to_pandas().set_index("user_id")


def quarantine(storage, client: str = "acme", date: str = DATE) -> list[dict]:
    store = storage.client(client)
    key = store.dataset_file(store.quarantine(date), "records.ndjson.gz")
    return [orjson.loads(x) for x in gzip.decompress(store.read_bytes(key)).splitlines()]


def test_well_formed_snapshot_becomes_one_row_per_user(storage, write_snapshot):
    store = storage.client("acme")
    write_snapshot(store, DATE, [user(i) for i in range(40)])
    result = extract("acme", DATE, storage, workers=1)
    assert result.n_records == 40
    df = features(storage)
    assert len(df) == 40 and df.index.is_unique
    assert df.loc["u-00004", "purchases.n"] == 1
    assert df.loc["u-00005", "purchases.n_7d"] == 2
    assert df.loc["u-00005", "purchases.total.sum_30d"] == pytest.approx(2 * (10.0 + 5))
    assert df.loc["u-00001", "messages.opened.sum_7d"] == 1 and df.loc["u-00002", "messages.opened.sum_7d"] == 0
    assert df.loc["u-00003", "vars.loyalty.points"] == 30
    # categorical codes follow the schema's sorted levels
    schema = load_schema(store)
    tier = next(s for s in schema.scalars if s.name == "vars.loyalty.tier")
    assert tier.levels == ("bronze", "gold", "silver")
    assert df.loc["u-00000", "vars.loyalty.tier"] == tier.levels.index("gold")
    # days since creation as of the end of the snapshot day
    assert df.loc["u-00000", "created"] == pytest.approx((dt.date(2026, 11, 25) - dt.date(2025, 1, 1)).days)


def test_bad_lines_are_quarantined_with_file_line_and_reason(storage, write_snapshot):
    store = storage.client("acme")
    good = [user(i) for i in range(200)]
    lines = good[:100] + [
        b"{not json",                       # line 101
        b"[1, 2, 3]",                       # 102: not an object
        b'"just a string"',                 # 103
        orjson.dumps({"vars": {"a": 1}}),   # 104: no id
        orjson.dumps({"id": "", "x": 1}),   # 105: empty id
        orjson.dumps({"id": {"nested": 1}}),  # 106: id is an object
        orjson.dumps(user(3)),              # 107: duplicate of u-00003
    ] + good[100:]
    write_snapshot(store, DATE, lines)
    result = extract("acme", DATE, storage, workers=1)
    assert result.n_records == 200
    assert result.details["bad_records"] == 7
    assert result.details["bad_by_kind"] == {"duplicate_id": 1, "no_id": 3, "not_json": 1, "not_object": 2}
    bad = {r["line"]: r for r in quarantine(storage)}
    assert sorted(bad) == [101, 102, 103, 104, 105, 106, 107]
    assert bad[101]["kind"] == "not_json" and bad[101]["file"] == "part-00000.ndjson.gz"
    assert bad[102]["reason"] == "not a JSON object (got an array)"
    assert bad[104]["reason"] == "no usable id at 'id' (got null)"
    assert bad[106]["reason"] == "no usable id at 'id' (got an object)"
    # every repeat names where its id was first seen, in the same file or another
    assert "duplicate id 'u-00003' (first seen at part-00000.ndjson.gz line 4)" == bad[107]["reason"]
    assert bad[107]["record"] == orjson.dumps(user(3)).decode()
    assert bad[101]["record"] == "{not json"
    # the good users are all there, the duplicate kept its first occurrence
    df = features(storage)
    assert set(df.index) == {f"u-{i:05d}" for i in range(200)}
    assert any("bad record" in w for w in result.warnings)


def test_duplicate_ids_across_files_keep_the_first(storage, write_snapshot):
    store = storage.client("acme")
    write_snapshot(store, DATE, [user(i) for i in range(50)], name="part-00000.ndjson.gz")
    write_snapshot(store, DATE, [user(i) for i in range(49, 100)], name="part-00001.ndjson.gz")
    result = extract("acme", DATE, storage, workers=2)
    assert result.n_records == 100
    assert result.details["bad_by_kind"] == {"duplicate_id": 1}
    [dup] = quarantine(storage)
    assert dup["file"] == "part-00001.ndjson.gz" and dup["line"] == 1
    assert dup["reason"] == "duplicate id 'u-00049' (first seen at part-00000.ndjson.gz line 50)"
    df = features(storage)
    assert df.index.is_unique and len(df) == 100


def test_repeated_ids_are_quarantined_with_their_own_text(storage, write_snapshot, monkeypatch):
    from sightlines.pipeline import _scan

    monkeypatch.setattr(_scan, "BLOCK_BYTES", 16 << 10)  # several segments a file
    monkeypatch.setattr(_scan, "SEGMENT_BLOCKS", 2)
    store = storage.client("acme")
    long_dup = orjson.dumps(user(5, note="x" * 5000))  # a repeat longer than the text kept
    write_snapshot(store, DATE, [user(i) for i in range(300)], name="part-00000.ndjson.gz")
    write_snapshot(store, DATE, [user(i) for i in range(300, 600)] + [long_dup], name="part-00001.ndjson.gz")
    # a re-sent piece of the first file, whose last line has no newline
    resent = b"\n".join(orjson.dumps(user(i)) for i in range(290, 300))
    store.write_bytes(f"{store.raw(DATE)}/part-00002.ndjson.gz", gzip.compress(resent, mtime=0))
    result = extract("acme", DATE, storage, workers=2)
    assert result.n_records == 600
    assert result.details["bad_by_kind"] == {"duplicate_id": 11}
    bad = {(r["file"], r["line"]): r for r in quarantine(storage)}
    assert bad[("part-00001.ndjson.gz", 301)]["record"] == long_dup[:2000].decode()
    assert bad[("part-00001.ndjson.gz", 301)]["reason"] == \
        "duplicate id 'u-00005' (first seen at part-00000.ndjson.gz line 6)"
    for line in range(1, 11):
        assert bad[("part-00002.ndjson.gz", line)]["record"] == orjson.dumps(user(289 + line)).decode()
    df = features(storage)
    assert df.index.is_unique and set(df.index) == {f"u-{i:05d}" for i in range(600)}
    # the event log keeps every scanned row; the rows dropped from the features are listed for its readers
    dropped = store.manifest(store.events(DATE))["dropped"]
    assert sum(len(v) for v in dropped.values()) == 11


def test_repeats_keep_their_text_from_the_scan_or_read_it_back(storage, write_snapshot, monkeypatch):
    from sightlines.pipeline import _extract, _scan

    monkeypatch.setattr(_scan, "BLOCK_BYTES", 16 << 10)  # several blocks and segments a file
    monkeypatch.setattr(_scan, "SEGMENT_BLOCKS", 2)
    store = storage.client("acme")
    lines = [user(i) for i in range(400)]
    lines[10] = user(9, vars={"note": "soon"})  # line 11 repeats line 10, in the same block
    lines[150] = user(7, vars={"note": "again"})  # line 151 repeats line 8, in a later segment
    lines.append(b"\xef\xbb\xbf" + orjson.dumps(user(3)))  # a repeat with a byte-order mark
    write_snapshot(store, DATE, lines[:300], name="part-00000.ndjson.gz")
    write_snapshot(store, DATE, lines[300:] + [user(299)], name="part-00001.ndjson.gz")

    def no_reads(*args, **kwargs):
        raise AssertionError("the scan kept every repeated line's text: nothing is read back")

    monkeypatch.setattr(_extract, "_read_lines", no_reads)
    result = extract("acme", DATE, storage, workers=1)
    kept = {(r["file"], r["line"]): r for r in quarantine(storage)}
    assert result.details["bad_by_kind"] == {"duplicate_id": 4}
    assert sorted(kept) == [("part-00000.ndjson.gz", 11), ("part-00000.ndjson.gz", 151),
                            ("part-00001.ndjson.gz", 101), ("part-00001.ndjson.gz", 102)]
    first = "part-00000.ndjson.gz"
    assert kept[(first, 11)]["reason"] == f"duplicate id 'u-00009' (first seen at {first} line 10)"
    assert kept[(first, 11)]["record"] == orjson.dumps(user(9, vars={"note": "soon"})).decode()
    assert kept[(first, 151)]["reason"] == f"duplicate id 'u-00007' (first seen at {first} line 8)"
    assert kept[(first, 151)]["record"] == orjson.dumps(user(7, vars={"note": "again"})).decode()
    assert kept[("part-00001.ndjson.gz", 101)]["record"] == orjson.dumps(user(3)).decode()  # without the mark
    assert kept[("part-00001.ndjson.gz", 102)]["reason"] == f"duplicate id 'u-00299' (first seen at {first} line 300)"
    df = features(storage)
    assert df.index.is_unique and len(df) == 398 and df.loc["u-00009", "vars.loyalty.points"] == 90

    # without the filter (no compiled module, say) every repeated line is read back: the same quarantine
    monkeypatch.setattr(_extract, "_read_lines", _read_lines)
    monkeypatch.setattr(_scan.SeenFilter, "create", classmethod(lambda cls, path, expected: None))
    again = extract("acme", DATE, storage, workers=2)
    assert again.details["bad_by_kind"] == result.details["bad_by_kind"]
    assert {(r["file"], r["line"]): r for r in quarantine(storage)} == kept


def test_a_later_share_keeps_the_text_of_its_repeats_of_the_lines_it_read_past(storage, write_snapshot, tmp_path):
    # whatever the other processes have marked yet: ids that lead the lines inflated on the way are known
    from dataclasses import asdict

    from sightlines._timeparse import end_of_day
    from sightlines.pipeline._scan import ScanSpec, SeenFilter, Share, iter_segments
    from sightlines.profiles import raw_files

    store = storage.client("acme")
    odd = {"created": "2025-01-01T00:00:00Z", "id": "u-odd"}  # its id does not lead the line
    lines = [user(i) for i in range(20)] + [odd] + [user(i) for i in range(20, 1500)]
    lines += [user(7), user(1600), {"id": "u-odd"}]  # lines 1502-1504
    write_snapshot(store, DATE, lines)
    extract("acme", DATE, storage, workers=1)  # learns the schema
    spec = ScanSpec(root=storage.url, client="acme", date=DATE, schema=load_schema(store).to_dict(),
                    roles=asdict(ClientConfig().roles), latest=end_of_day(dt.date(2026, 11, 25)), labels=True,
                    block_bytes=32 << 10, segment_blocks=2)
    share = Share(key=raw_files(store, DATE)[0], file_index=0, first=3, segment_blocks=2)
    seen = SeenFilter.create(str(tmp_path / "seen.bits"), 10_000)  # empty: nothing marked by anyone else
    texts, lines_read = {}, []
    for _, block, _ in iter_segments(spec, store, share, seen=seen):
        texts.update(block.texts)
        lines_read += list(block.lines)
    assert lines_read[0] > 100 and lines_read[-1] == 1504  # the share starts well past line 8
    assert texts.get(1502) == orjson.dumps(user(7)).decode()
    assert 1503 not in texts
    assert 1504 not in texts  # its earlier line was passed over: extract reads this one back (below)
    result = extract("acme", DATE, storage, workers=1)
    assert result.details["bad_by_kind"] == {"duplicate_id": 2}
    assert {r["line"]: r["record"] for r in quarantine(storage)} == \
        {1502: orjson.dumps(user(7)).decode(), 1504: '{"id":"u-odd"}'}


def test_wrong_typed_fields_become_missing_and_the_user_stays(storage, write_snapshot):
    store = storage.client("acme")
    base = [user(i) for i in range(60)]
    write_snapshot(store, DATE, base, name="part-00000.ndjson.gz")
    extract("acme", DATE, storage, workers=1)  # learn the schema from clean data first
    deep: dict = {}
    cur = deep
    for _ in range(3000):  # deeper than any JSON parser allows
        cur["d"] = {}
        cur = cur["d"]
    odd = [
        user(1000, purchases="not a list"),
        user(1001, purchases=[{"time": "yesterday-ish", "total": 10.0}]),
        user(1002, purchases=[{"time": "2026-11-20T10:00:00Z", "total": "ten dollars"}]),
        user(1003, purchases=[{"time": "2226-11-20T10:00:00Z", "total": 10.0}]),  # far future
        user(1004, vars={"loyalty": "gold"}),  # a string where an object belongs
        user(1005, pageviews=[{"time": "2026-11-23T12:00:00Z", "url": "/x"}] * 30_000),  # absurd size
        user(1006, messages=[1, "two", None]),  # records that are not objects
        user(1007, created=1764000000),  # epoch seconds are fine
    ]
    lines = [orjson.dumps(u) for u in odd]
    lines.append(b'{"id": "u-01008", "vars": {"loyalty": {"points": NaN}}, "purchases": []}')
    deep_line = orjson.dumps({"id": "u-01009", "purchases": []})[:-1] + b', "vars": ' + b"[" * 3000 + b"]" * 3000 + b"}"
    lines.append(deep_line)
    # absurd nesting in a key the schema does not use, invalid UTF-8 in a used string, numbers beyond any float
    lines.append(orjson.dumps({"id": "u-01010"})[:-1] + b', "x": ' + b"[" * 5000 + b"]" * 5000 + b"}")
    lines.append(b'{"id": "u-01011", "vars": {"loyalty": {"tier": "g\xffld", "points": 1' + b"0" * 400 + b"}}}")
    lines.append(b'{"id": "u-01012", "purchases": [{"time": 1' + b"0" * 400 + b', "total": 1' + b"0" * 400 + b"}]}")
    lines.append(b'{"id": "u-01013", "purchases": [{"time": "2026-11-20T10:00:00Z", "total": 1e39}]}')
    write_snapshot(store, "2026-11-25", [x for x in lines] + [b""] * 3 + base, bom=True)
    result = extract("acme", "2026-11-25", storage, workers=1)
    assert result.details["bad_records"] == 0, quarantine(storage, date="2026-11-25")
    assert result.details["blank_lines"] == 3
    df = features(storage, date="2026-11-25")
    assert len(df) == 74
    assert {"u-01010", "u-01011", "u-01012", "u-01013"} <= set(df.index)
    assert np.isnan(df.loc["u-01011", "vars.loyalty.points"]) and df.loc["u-01012", "purchases.n"] == 0
    assert df.loc["u-01013", "purchases.n"] == 1 and np.isnan(df.loc["u-01013", "purchases.total.sum_30d"])
    assert np.isfinite(df.select_dtypes("number").to_numpy(dtype=float)[~df.select_dtypes("number").isna()
                                                                          .to_numpy()]).all()
    assert df.loc["u-01000", "purchases.n"] == 0 and np.isnan(df.loc["u-01000", "purchases.days_since_last"])
    assert df.loc["u-01001", "purchases.n"] == 0  # the unreadable time is missing: no countable event
    assert df.loc["u-01002", "purchases.n"] == 1 and df.loc["u-01002", "purchases.total.sum_30d"] == 0
    assert np.isnan(df.loc["u-01002", "purchases.total.mean_30d"])
    assert df.loc["u-01003", "purchases.n"] == 0  # a far-future time is missing
    assert np.isnan(df.loc["u-01004", "vars.loyalty.points"])
    assert df.loc["u-01005", "pageviews.n"] == 0  # the absurd list became missing
    assert df.loc["u-01006", "messages.n"] == 0
    end_of_day = (dt.date(2026, 11, 26) - dt.date(1970, 1, 1)).days * 86400
    assert df.loc["u-01007", "created"] == pytest.approx((end_of_day - 1764000000) / 86400, rel=1e-6)
    assert np.isnan(df.loc["u-01008", "vars.loyalty.points"])
    assert "u-01009" in df.index


def test_too_many_bad_records_fail_and_write_no_features(storage, write_snapshot):
    store = storage.client("acme")
    junk = [{"uid": f"x{i}", "junk_field": i} for i in range(10)]  # objects without an id
    write_snapshot(store, DATE, junk + [user(i) for i in range(90)])
    with pytest.raises(DataQualityError, match=r"10 of 100 records are bad \(10\.0%\), above this client's limit of 5\.0%"):
        extract("acme", DATE, storage, workers=1)
    assert store.manifest(store.features(DATE)) is None
    assert load_schema(store) is None  # a rejected first snapshot does not fix the client's columns
    assert len(quarantine(storage)) == 10  # kept for inspection
    # the threshold is per client
    result = extract("acme", DATE, storage, workers=1, config=ClientConfig(bad_fraction_max=0.2))
    assert result.n_records == 90
    assert "junk_field" not in load_schema(store).column_names()  # learned from good users only


def test_a_damaged_gzip_file_fails_the_step_naming_the_file(storage):
    store = storage.client("acme")
    data = gzip.compress(b"\n".join(orjson.dumps(user(i)) for i in range(2000)) + b"\n")
    store.write_bytes(f"{store.raw(DATE)}/part-00000.ndjson.gz", data[: len(data) // 2])  # cut in transfer
    with pytest.raises(DataQualityError, match=r"part-00000\.ndjson\.gz: the file is damaged \(EOFError"):
        extract("acme", DATE, storage, workers=1)
    assert store.manifest(store.features(DATE)) is None


def test_a_failed_rerun_keeps_the_previous_good_table(storage, write_snapshot):
    store = storage.client("acme")
    write_snapshot(store, DATE, [user(i) for i in range(30)])
    extract("acme", DATE, storage, workers=1)
    before = store.manifest(store.features(DATE))
    write_snapshot(store, DATE, [b"garbage"] * 30)
    with pytest.raises(DataQualityError):
        extract("acme", DATE, storage, workers=1)
    assert store.manifest(store.features(DATE)) == before


def test_missing_snapshot_says_where_it_looked(storage):
    with pytest.raises(NotFoundError, match=r"acme: no snapshot for 2026-11-24 \(expected \*\.ndjson\.gz files under"):
        extract("acme", DATE, storage)


def test_schema_stays_fixed_when_a_new_key_appears(storage, write_snapshot):
    store = storage.client("acme")
    write_snapshot(store, DATE, [user(i) for i in range(50)])
    extract("acme", DATE, storage, workers=1)
    day1 = features(storage)
    later = "2026-11-25"
    write_snapshot(store, later, [user(i, newkey={"shiny": i}, vars={"loyalty": {"tier": "platinum"}})
                                  for i in range(50)])
    result = extract("acme", later, storage, workers=1)
    day2 = features(storage, date=later)
    assert list(day2.columns) == list(day1.columns)
    assert "newkey.shiny" in result.details["new_keys"]
    assert "vars.loyalty.points" in result.details["vanished_keys"]
    assert any("new key" in w for w in result.warnings)
    tier = next(s for s in load_schema(store).scalars if s.name == "vars.loyalty.tier")
    assert day2["vars.loyalty.tier"].eq(len(tier.levels)).all()  # an unseen level is "other"
    assert load_schema(store).version == 1


def test_reruns_are_byte_identical(storage, write_snapshot):
    store = storage.client("acme")
    write_snapshot(store, DATE, [user(i) for i in range(30)])
    extract("acme", DATE, storage, workers=1)
    first = store.manifest(store.features(DATE))
    extract("acme", DATE, storage, workers=1)
    assert store.manifest(store.features(DATE))["files"] == first["files"]


@pytest.mark.parametrize(("workers", "size_hint"), [(2, "true"), (3, "true"), (3, "half"), (3, "double")])
def test_one_big_file_shared_by_several_processes_gives_the_same_table(storage, write_snapshot, monkeypatch,
                                                                        workers, size_hint):
    from sightlines.pipeline import _extract, _scan

    monkeypatch.setattr(_scan, "BLOCK_BYTES", 32 << 10)
    monkeypatch.setattr(_scan, "SEGMENT_BLOCKS", 2)
    store = storage.client("acme")
    lines = [user(i) for i in range(1500)] + [user(7)] + [user(i) for i in range(1500, 3000)]
    write_snapshot(store, DATE, lines)
    one = extract("acme", DATE, storage, workers=1)
    first = store.manifest(store.features(DATE))
    key = f"{store.raw(DATE)}/part-00000.ndjson.gz"
    raw = _extract.gzip_size(store, key, store.size(key))
    assert raw == len(gzip.decompress(store.read_bytes(key)))  # what the trailer says: where the split points go
    # a wrong hint (a multi-member file, say) only moves the split points: every segment is still read once
    hint = {"true": raw, "half": raw // 2, "double": raw * 2}[size_hint]
    monkeypatch.setattr(_extract, "gzip_size", lambda store, key, size: hint)

    shared = extract("acme", DATE, storage, workers=workers)
    assert len(first["files"]) > 2  # several segments
    assert store.manifest(store.features(DATE))["files"] == first["files"]
    assert one.n_records == shared.n_records == 3000
    assert shared.details["bad_by_kind"] == {"duplicate_id": 1}
    [dup] = quarantine(storage)
    assert dup["line"] == 1501 and dup["reason"] == "duplicate id 'u-00007' (first seen at part-00000.ndjson.gz line 8)"
