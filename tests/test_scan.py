"""Scanning machinery shared by extract and sample: the filter of ids seen by every worker."""

from __future__ import annotations

import multiprocessing

import numpy as np

from sightlines._fastdecode import hash_ids
from sightlines.pipeline._scan import SeenFilter


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
