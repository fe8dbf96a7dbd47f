"""Scanning machinery shared by extract and sample: shares of a file, the filter of ids seen by every worker."""

from __future__ import annotations

import gzip
import multiprocessing
import zlib

import numpy as np
import pytest

from sightlines._fastdecode import hash_ids
from sightlines.pipeline._scan import SeenFilter, plan_shares
from sightlines.profiles import RawBlocks, gzip_size
from sightlines.storage import Storage


def _mark_in_child(f: SeenFilter, ids: list[str], out) -> None:
    out.put(f.mark(hash_ids(ids)).tolist())


def test_seen_filter_tells_repeats_within_a_call_across_calls_and_processes(tmp_path):
    f = SeenFilter.create(str(tmp_path / "seen.bits"), expected_ids=1000)
    assert f is not None
    first = [f"u-{i}" for i in range(1000)]
    assert f.mark(hash_ids(first)).sum() <= 1  # fresh ids (a false "maybe" is rare, not impossible)
    assert f.mark(hash_ids(["u-5", "new-1", "new-1"])).tolist() == [True, False, True]
    # another process (spawned: it maps the file itself) sees the same bits, and its marks are seen here
    ctx = multiprocessing.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_mark_in_child, args=(f, ["u-7", "child-1"], q))
    p.start()
    got = q.get(timeout=60)
    p.join(60)
    assert got == [True, False]
    assert f.mark(hash_ids(["child-1"])).tolist() == [True]


def test_seen_filter_false_alarms_are_rare_at_its_size(tmp_path):
    n = 200_000
    f = SeenFilter.create(str(tmp_path / "seen.bits"), expected_ids=n)
    assert f.mark(hash_ids([f"a-{i}" for i in range(n)])).sum() < n * 0.005
    maybe = f.mark(hash_ids([f"b-{i}" for i in range(n)]))  # none of these was seen
    assert maybe.sum() < n * 0.005


def test_hash_ids_is_stable():
    assert hash_ids([]).dtype == np.uint64 and len(hash_ids([])) == 0
    assert hash_ids(["a", "b"]).tolist() == hash_ids(["a", "b"]).tolist()
    assert len(set(hash_ids([str(i) for i in range(10_000)]).tolist())) == 10_000


@pytest.mark.parametrize("name", ["a.ndjson.gz", "a.ndjson"])
def test_shares_of_one_file_read_every_block_once_whatever_the_size_hint(name):
    store = Storage(f"memory://shares-{name}").client("acme")
    text = b"".join(b'{"id": "u-%d", "pad": "%s"}\n' % (i, b"x" * (i % 700)) for i in range(3000))
    text += b'{"id": "long", "pad": "' + b"y" * 5000 + b'"}'  # longer than a block, no final newline
    data = gzip.compress(text, mtime=0) if name.endswith(".gz") else text
    store.write_bytes(name, data)
    size, block = len(data), 4096
    whole = [(i, first, bytes(v)) for i, first, v in RawBlocks(store, name, block_bytes=block)]
    assert gzip_size(store, name, size) == (len(text) if name.endswith(".gz") else None)
    for workers in (1, 2, 3, 5):
        for hint in (None, len(text), len(text) // 3, len(text) * 4):
            shares = plan_shares([name], workers, [size], raw_sizes=[hint], block_bytes=block, most=2)
            assert len(shares) <= workers and shares[0].first == 0 and shares[-1].stop is None
            got = []
            for sh in shares:
                seg = sh.segment_blocks
                blocks = RawBlocks(store, name, block_bytes=block, select=lambda b, sh=sh, seg=seg: sh.first <= b // seg,
                                   stop=None if sh.stop is None else sh.stop * seg)
                got += [(i, first, bytes(v)) for i, first, v in blocks]
            assert got == whole, (workers, hint)


def test_a_size_hint_below_the_compressed_size_is_none():
    store = Storage("memory://shares-odd").client("acme")
    store.write_bytes("x.ndjson.gz", b"not gzip at all, but named so; the last 4 bytes: \x01\x00\x00\x00")
    store.write_bytes("tiny.ndjson.gz", b"ab")
    assert gzip_size(store, "x.ndjson.gz", store.size("x.ndjson.gz")) is None
    assert gzip_size(store, "tiny.ndjson.gz", 2) is None and gzip_size(store, "gone.ndjson.gz", 100) is None


@pytest.mark.parametrize("case", ["members", "empty member", "trailing zeros", "not gzip", "trailing garbage",
                                  "corrupt", "truncated"])
def test_the_snapshot_reader_reads_what_gzip_reads_in_whole_blocks(case):
    # the reader decompresses straight into RawBlocks' buffer; blocks are whole (``block_bytes``) whatever
    # the reader hands back per call, and a damaged file fails as it does with the gzip module
    from sightlines.errors import DataQualityError

    text = b"".join(b'{"id": "u-%d"}\n' % i for i in range(5000))
    data = {
        "members": gzip.compress(text[:30000], mtime=0) + gzip.compress(text[30000:], mtime=0),
        "empty member": gzip.compress(b"", mtime=0) + gzip.compress(text, mtime=0),
        "trailing zeros": gzip.compress(text, mtime=0) + b"\0" * 64,
        "not gzip": text,
        "trailing garbage": gzip.compress(text, mtime=0) + b"garbage",
        "corrupt": (lambda z: z[:30] + b"\xff" * 30 + z[60:])(gzip.compress(text, mtime=0)),
        "truncated": gzip.compress(text, mtime=0)[:-2000],
    }[case]
    store = Storage(f"memory://reader-{case.replace(' ', '-')}").client("acme")
    store.write_bytes("a.ndjson.gz", data)
    try:
        expected = gzip.decompress(data)
    except (OSError, EOFError, zlib.error):
        with pytest.raises(DataQualityError, match="the file is damaged"):
            list(RawBlocks(store, "a.ndjson.gz", block_bytes=4096))
        return
    blocks = [bytes(v) for _, _, v in RawBlocks(store, "a.ndjson.gz", block_bytes=4096)]
    assert b"".join(blocks) == expected
    # each block is the 4096 bytes read (and the partial line carried over) cut at its last newline
    assert all(4096 - 40 < len(b) <= 4096 + 40 for b in blocks[:-1])


def test_blocks_are_whole_when_the_stream_hands_back_less_per_call():
    import io

    from sightlines.profiles import _fill

    class Trickle(io.RawIOBase):  # a raw stream (S3, a decompressor) may return less than asked
        def __init__(self, data: bytes):
            self.data, self.pos = data, 0

        def readable(self) -> bool:
            return True

        def readinto(self, b) -> int:
            n = min(len(b), 1000, len(self.data) - self.pos)
            b[:n] = self.data[self.pos:self.pos + n]
            self.pos += n
            return n

    buf = bytearray(20000)
    f = Trickle(bytes(range(256)) * 30)
    assert _fill(f, buf, 100, 5000) == 5000 and bytes(buf[100:5100]) == (bytes(range(256)) * 30)[:5000]
    assert _fill(f, buf, 0, 5000) == 2680 and _fill(f, buf, 0, 5000) == 0  # the rest, then the end


@pytest.mark.parametrize("name", ["a.ndjson.gz", "a.ndjson"])
def test_a_storage_error_while_reading_is_raised_as_it_is_not_called_damage(monkeypatch, name):
    # "the file is damaged: re-export it" is for the file's bytes; a failing read is retried by the orchestrator
    import io

    from sightlines.errors import DataQualityError

    store = Storage(f"memory://reader-ioerror-{name}").client("acme")
    store.write_bytes(name, gzip.compress(b'{"id": 1}\n' * 1000) if name.endswith(".gz") else b'{"id": 1}\n')

    class Failing(io.RawIOBase):
        def readable(self) -> bool:
            return True

        def readinto(self, b) -> int:
            raise ConnectionResetError("connection reset by peer")

    monkeypatch.setattr(type(store), "open", lambda self, key, *args, **kwargs: Failing())
    with pytest.raises(ConnectionResetError, match="connection reset") as caught:
        list(RawBlocks(store, name))
    assert not isinstance(caught.value, DataQualityError)
