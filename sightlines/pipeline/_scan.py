"""Scanning a snapshot: files and segments in parallel processes, blocks of lines, chunks of users.

Both ``extract`` (today's features) and ``sample`` (training frames at past
cutoffs) read the raw snapshot the same way; this module holds that shared
machinery.

The unit of output is a *segment*: ``SEGMENT_BLOCKS`` consecutive blocks of
a file's decompressed stream. Segments depend only on the file, never on how
many processes read it, so outputs (one part per segment) are the same bytes
on a laptop and on a 32-core worker. The unit of work is a *share*: a file,
or with fewer files than processes, a run of consecutive segments of a file.
A sharing process decompresses the stream from its start but parses only its
own segments, and stops once past them; so the first runs are made longer
than the last, by how much of a scan decompression takes (``INFLATE_SHARE``).
Each worker opens the storage itself; nothing large crosses a process
boundary but statistics and the paths of local temporary files.
"""

from __future__ import annotations

import gc
import logging
import mmap
import multiprocessing
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np

from .._decode import Plan, build_plan
from .._fastdecode import SegmentDecoder, make_decoder
from .._native import scanner as _native
from .._resources import worker_env
from ..config import Roles
from ..features import Chunk
from ..profiles import DecodedBlock, RawBlocks, line_text
from ..schema import Schema
from ..storage import ClientStore, Storage

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

#: decompressed bytes read at a time (each block costs a fixed ~10 ms of numpy calls: fewer, larger blocks)
BLOCK_BYTES = 16 << 20
#: blocks per segment (the unit of output: about 64 MB of JSON, 30-60k users)
SEGMENT_BLOCKS = 4
#: the part of one process's scan of a gzip file spent decompressing it (0.45 of 1.35 s on 100k profiles);
#: a plain file costs only its reading
INFLATE_SHARE = {".gz": 0.33, "": 0.05}


@dataclass(frozen=True)
class ScanSpec:
    """Everything a worker needs to read one client's snapshot (picklable)."""

    root: str
    client: str
    date: str
    schema: dict[str, Any] | None
    roles: dict[str, Any]
    latest: float
    labels: bool = False
    storage_options: dict[str, Any] = field(default_factory=dict)
    block_bytes: int = BLOCK_BYTES
    segment_blocks: int = SEGMENT_BLOCKS

    def store(self) -> ClientStore:
        return Storage(self.root, storage_options=self.storage_options).client(self.client)

    def parsed_schema(self) -> Schema | None:
        return Schema.from_dict(self.schema) if self.schema is not None else None

    def plan(self) -> Plan:
        return build_plan(self.parsed_schema(), Roles(**self.roles), labels=self.labels)


@dataclass(frozen=True)
class Share:
    """One process's part of the scan: the segments ``first <= s < stop`` of file ``key`` (``stop`` None: to the end)."""

    key: str
    file_index: int
    first: int = 0
    stop: int | None = None
    segment_blocks: int = SEGMENT_BLOCKS

    @property
    def name(self) -> str:
        return self.key.rsplit("/", 1)[-1]


def _json_bytes(size: int, key: str, raw_size: int | None) -> int:
    """The bytes of JSON a file holds: known (``raw_size``) or guessed (profiles compress about fivefold)."""
    return raw_size if raw_size else size * 5 if key.endswith(".gz") else size


def segment_blocks_for(size: int, key: str, *, block_bytes: int = BLOCK_BYTES, most: int = SEGMENT_BLOCKS) -> int:
    """Blocks per segment of a file: about 8 segments a file, 1 to ``most`` blocks each.

    A function of the file alone (its stored size), so segments, and the
    parts written from them, do not depend on the number of processes.
    """
    return max(1, min(most, -(-_json_bytes(size, key, None) // (8 * block_bytes))))


def split_points(n_segments: int, parts: int, inflate_share: float) -> list[int]:
    """Where ``parts`` processes sharing one file split its ``n_segments`` segments (the first segment of each).

    Process ``j`` reads the stream up to the end of its run, so it pays
    ``inflate_share`` for every byte up to there and the rest only for its
    own run. Runs that take each the same time end at ``T * (1 + d + ... +
    d**(j-1))`` of the file, with ``d = 1 - inflate_share`` and ``T`` the
    time of each. Runs are never empty: fewer points when there are few
    segments.

    >>> split_points(5, 2, 0.33), split_points(10, 2, 0.0), split_points(10, 3, 0.33), split_points(1, 2, 0.33)
    ([0, 3], [0, 5], [0, 5, 8], [0])
    """
    d = 1.0 - inflate_share
    cumulative = [sum(d ** k for k in range(j)) for j in range(parts + 1)]
    points = [0]
    for j in range(1, parts):
        point = round(n_segments * cumulative[j] / cumulative[parts])
        if points[-1] < point < n_segments:
            points.append(point)
    return points


def plan_shares(keys: list[str], workers: int, sizes: list[int] | None = None, *,
                raw_sizes: list[int | None] | None = None, block_bytes: int = BLOCK_BYTES,
                most: int = SEGMENT_BLOCKS) -> list[Share]:
    """Whole files when there are enough of them; otherwise each file is shared by several processes.

    ``raw_sizes`` (the decompressed sizes, where known) only place the split
    points better; any value gives the same segments, all of them read once.
    """
    if not keys:
        return []
    sizes = sizes or [0] * len(keys)
    raw_sizes = raw_sizes or [None] * len(keys)
    per_file = 1 if len(keys) >= workers else -(-workers // len(keys))
    shares: list[Share] = []
    for i, (key, size, raw) in enumerate(zip(keys, sizes, raw_sizes)):
        # iter_segments reads min(spec.segment_blocks, share.segment_blocks): ``most`` is spec.segment_blocks
        seg_blocks = segment_blocks_for(size, key, block_bytes=block_bytes, most=most) if size else most
        n_segments = max(1, -(-_json_bytes(size, key, raw) // (seg_blocks * block_bytes)))
        points = split_points(n_segments, per_file, INFLATE_SHARE[".gz" if key.endswith(".gz") else ""])
        shares += [Share(key=key, file_index=i, first=first, stop=stop, segment_blocks=seg_blocks)
                   for first, stop in zip(points, [*points[1:], None])]
    return shares


class SeenFilter:
    """The ids seen so far by every process scanning one snapshot: a bit filter in a shared file.

    :meth:`mark` records ids (by hash) and tells which may have been seen
    before: always those seen before, and rarely another (two bits per id;
    about one id in several thousand at the default size). A line whose id
    may repeat an earlier one keeps its text, so that ``extract`` can put a
    real repeat in the quarantine without reading its file a second time.
    The file is mapped by each process (fork or spawn alike) and its bits are
    set atomically. Without the compiled module there is no filter, and the
    repeats' texts are read back from their files.
    """

    def __init__(self, path: str, nbytes: int):
        self.path, self.nbytes = path, nbytes
        self._map: mmap.mmap | None = None

    @classmethod
    def create(cls, path: str, expected_ids: int) -> SeenFilter | None:
        """An empty filter for about ``expected_ids`` ids (None where the compiled module is missing)."""
        if _native is None:
            return None
        bits = 1 << max(20, min(31, (max(1, expected_ids) * 32 - 1).bit_length()))  # >= 32 bits an id; 128 KB..256 MB
        with open(path, "wb") as f:
            f.truncate(bits // 8)  # sparse: pages are only allocated as bits are set
        return cls(path, bits // 8)

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path, "nbytes": self.nbytes, "_map": None}

    def mark(self, hashes: np.ndarray) -> np.ndarray:
        """Record ``hashes`` (in order); True where an id's bits were all set already."""
        assert _native is not None
        if self._map is None:
            with open(self.path, "r+b") as f:
                self._map = mmap.mmap(f.fileno(), self.nbytes)
        h = np.ascontiguousarray(hashes, dtype=np.uint64)
        return np.frombuffer(_native.mark_seen(self._map, h), dtype=np.bool_)


def iter_segments(spec: ScanSpec, store: ClientStore, share: Share, *, plan: Plan | None = None,
                  schema: Schema | None = None, seen: SeenFilter | None = None
                  ) -> Iterator[tuple[int, DecodedBlock, Chunk]]:
    """Decode the share's segments; yield ``(segment, block, chunk)`` once per segment.

    ``block`` has the segment's good users in line order, with the hashes of
    their ids and, where ``seen`` says an id may have been seen before, the
    text of its line (``texts``). Repeated ids are *not* taken out here: the
    caller finds them across the whole snapshot
    (:func:`sightlines.pipeline._extract.find_duplicates`).
    """
    plan = plan or spec.plan()
    schema = schema if schema is not None else spec.parsed_schema()
    roles = Roles(**spec.roles)
    seg_blocks = min(spec.segment_blocks, share.segment_blocks)

    def mine(block_index: int) -> bool:  # the end of the share is where RawBlocks stops reading
        return block_index // seg_blocks >= share.first

    decoder = make_decoder(plan, schema, roles, latest=spec.latest)

    def new_segment() -> SegmentDecoder:
        return SegmentDecoder(plan, schema, roles, latest=spec.latest, file_name=share.name, decoder=decoder)

    current, seg = -1, new_segment()
    hashes: list[np.ndarray] = []
    texts: dict[int, str] = {}

    def finish() -> tuple[int, DecodedBlock, Chunk]:
        block, chunk = seg.finish()
        block.hashes = np.concatenate(hashes) if hashes else np.zeros(0, np.uint64)
        block.texts = dict(texts)
        hashes.clear()
        texts.clear()
        return current, block, chunk

    # a share that starts past the file's first segment inflates the lines before it anyway: their ids (those
    # that lead their line, read without decoding it) tell which of the share's own lines repeat an earlier one
    # even before the process that decodes those lines has marked them in ``seen``
    before: list[bytes] = []
    earlier: np.ndarray | None = None
    hash_passed = seen is not None and share.first > 0 and _native is not None and "." not in roles.id

    blocks = RawBlocks(store, share.key, block_bytes=spec.block_bytes, select=mine,
                       stop=None if share.stop is None else share.stop * seg_blocks,
                       passed=_leading_ids_into(before, roles.id) if hash_passed else None)
    for index, first, buf in blocks:
        segment = index // seg_blocks
        if segment != current:
            if len(seg):
                yield finish()
            current, seg = segment, new_segment()
        h, lines, raw = seg.add(buf, first)
        hashes.append(h)
        if seen is not None and len(h):
            maybe = seen.mark(h)
            if before:
                earlier = np.unique(np.frombuffer(b"".join(before), dtype=np.uint64))
                before.clear()
            if earlier is not None:
                maybe = maybe | in_sorted(h, earlier)
            for i in np.flatnonzero(maybe).tolist():
                texts[int(lines[i])] = line_text(raw(i))
        blocks.n_lines = seg.n_lines
    if len(seg):
        yield finish()


def _leading_ids_into(out: list[bytes], id_key: str) -> Callable[[memoryview], int]:
    """A ``RawBlocks`` ``passed`` callback: appends the hashes of the ids leading the lines of each block to ``out``."""
    key = id_key.encode()
    assert _native is not None

    def passed(view: memoryview) -> int:
        n, hashes = _native.leading_ids(view, key)
        out.append(hashes)
        return n

    return passed


def in_sorted(values: np.ndarray, sorted_values: np.ndarray) -> np.ndarray:
    """Where ``values`` are in ``sorted_values`` (ascending): a boolean mask, by binary search."""
    if not len(sorted_values):
        return np.zeros(len(values), dtype=bool)
    at = np.minimum(np.searchsorted(sorted_values, values), len(sorted_values) - 1)
    return sorted_values[at] == values


def _init_worker(env: dict[str, str]) -> None:
    os.environ.update(env)


@contextmanager
def worker_pool(workers: int) -> Iterator[Executor | None]:
    """Up to ``workers`` worker processes for several rounds of :func:`map_jobs` (None: run in-process)."""
    if workers <= 1:
        yield None
        return
    # fork is cheap and safe while this process has no other threads; otherwise spawn fresh interpreters
    method = "fork" if threading.active_count() == 1 and hasattr(os, "fork") else "spawn"
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context(method),
                             initializer=_init_worker, initargs=(worker_env(1),)) as pool:
        yield pool


def map_jobs(fn: Callable[[T], R], jobs: list[T], workers: int, *, label: str = "scan",
             pool: Executor | None = None) -> list[R]:
    """Run ``fn`` over ``jobs`` in up to ``workers`` processes (results in job order); in-process when 1.

    ``pool`` (from :func:`worker_pool`) saves starting processes again for
    each round. The cyclic garbage collector is paused while a job runs:
    decoded profiles are acyclic, and the collector's repeated scans of
    millions of young objects would otherwise cost more than the parsing itself.
    """
    workers = max(1, min(workers, len(jobs)))
    if workers == 1:
        return [_run_without_gc(fn, job) for job in jobs]
    if pool is None:
        with worker_pool(workers) as own:
            return map_jobs(fn, jobs, workers, label=label, pool=own)
    results: dict[int, R] = {}
    futures = {pool.submit(_run_without_gc, fn, job): i for i, job in enumerate(jobs)}
    for done, fut in enumerate(as_completed(futures), 1):
        results[futures[fut]] = fut.result()
        log.info("%s: %d/%d job(s) done", label, done, len(jobs))
    return [results[i] for i in range(len(jobs))]


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector (parsed profiles are acyclic; its scans of them cost more than parsing)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _run_without_gc(fn: Callable[[T], R], job: T) -> R:
    with collector_paused():
        return fn(job)
