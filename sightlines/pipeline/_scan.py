"""Scanning a snapshot: files and segments in parallel processes, blocks of lines, chunks of users.

Both ``extract`` (today's features) and ``sample`` (training frames at past
cutoffs) read the raw snapshot the same way; this module holds that shared
machinery.

The unit of output is a *segment*: ``SEGMENT_BLOCKS`` consecutive blocks of
a file's decompressed stream. Segments depend only on the file, never on how
many processes read it, so outputs (one part per segment) are the same bytes
on a laptop and on a 32-core worker. The unit of work is a *share*: a file,
or with fewer files than processes, every n-th segment of a file (each
sharing process decompresses the whole stream but parses only its segments).
Each worker opens the storage itself; nothing large crosses a process
boundary but statistics and the paths of local temporary files.
"""

from __future__ import annotations

import gc
import logging
import multiprocessing
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from .._decode import Plan, build_plan
from .._fastdecode import decode_to_chunk, make_decoder
from .._resources import worker_env
from ..config import Roles
from ..features import Chunk
from ..profiles import DecodedBlock, RawBlocks
from ..schema import Schema
from ..storage import ClientStore, Storage

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

#: decompressed bytes read at a time (each block costs a fixed ~10 ms of numpy calls: fewer, larger blocks)
BLOCK_BYTES = 16 << 20
#: blocks per segment (the unit of output: about 64 MB of JSON, 30-60k users)
SEGMENT_BLOCKS = 4


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
    """One process's part of the scan: the segments ``s`` of file ``key`` with ``s % of == part``."""

    key: str
    file_index: int
    part: int = 0
    of: int = 1
    segment_blocks: int = SEGMENT_BLOCKS

    @property
    def name(self) -> str:
        return self.key.rsplit("/", 1)[-1]


def segment_blocks_for(size: int, key: str, *, block_bytes: int = BLOCK_BYTES, most: int = SEGMENT_BLOCKS) -> int:
    """Blocks per segment of a file: about 8 segments a file, 1 to ``most`` blocks each.

    A function of the file alone (its stored size), so segments, and the
    parts written from them, do not depend on the number of processes.
    """
    estimate = size * 5 if key.endswith(".gz") else size  # profiles compress about fivefold
    return max(1, min(most, -(-estimate // (8 * block_bytes))))


def plan_shares(keys: list[str], workers: int, sizes: list[int] | None = None, *,
                block_bytes: int = BLOCK_BYTES, most: int = SEGMENT_BLOCKS) -> list[Share]:
    """Whole files when there are enough of them; otherwise each file is shared by several processes."""
    if not keys:
        return []
    sizes = sizes or [0] * len(keys)
    per_file = 1 if len(keys) >= workers else -(-workers // len(keys))
    return [Share(key=k, file_index=i, part=j, of=per_file,
                  segment_blocks=segment_blocks_for(sz, k, block_bytes=block_bytes, most=most) if sz else most)
            for i, (k, sz) in enumerate(zip(keys, sizes)) for j in range(per_file)]


def iter_segments(spec: ScanSpec, store: ClientStore, share: Share, *, plan: Plan | None = None,
                  schema: Schema | None = None) -> Iterator[tuple[int, DecodedBlock, Chunk]]:
    """Decode the share's segments block by block; yield ``(segment, block, chunk)``.

    Duplicate ids are caught within a segment here, and across segments by the
    caller (:func:`sightlines.pipeline._extract.find_duplicates`).
    """
    plan = plan or spec.plan()
    schema = schema if schema is not None else spec.parsed_schema()
    roles = Roles(**spec.roles)
    seg_blocks = min(spec.segment_blocks, share.segment_blocks)

    def mine(block_index: int) -> bool:
        return (block_index // seg_blocks) % share.of == share.part

    decoder = make_decoder(plan, schema, roles, latest=spec.latest)
    seen: dict[str, int] = {}
    current = -1
    blocks = RawBlocks(store, share.key, block_bytes=spec.block_bytes, select=mine)
    for index, first, buf in blocks:
        segment = index // seg_blocks
        if segment != current:
            seen, current = {}, segment
        block, chunk = decode_to_chunk(buf, first, share.name, plan, schema, seen, latest=spec.latest, roles=roles,
                                       decoder=decoder)
        blocks.n_lines = block.n_lines
        yield segment, block, chunk


def _init_worker(env: dict[str, str]) -> None:
    os.environ.update(env)


def map_jobs(fn: Callable[[T], R], jobs: list[T], workers: int, *, label: str = "scan") -> list[R]:
    """Run ``fn`` over ``jobs`` in up to ``workers`` processes (results in job order); in-process when 1.

    The cyclic garbage collector is paused while a job runs: decoded profiles
    are acyclic, and the collector's repeated scans of millions of young
    objects would otherwise cost more than the parsing itself.
    """
    workers = max(1, min(workers, len(jobs)))
    if workers == 1:
        return [_run_without_gc(fn, job) for job in jobs]
    # fork is cheap and safe while this process has no other threads; otherwise spawn fresh interpreters
    method = "fork" if threading.active_count() == 1 and hasattr(os, "fork") else "spawn"
    ctx = multiprocessing.get_context(method)
    results: dict[int, R] = {}
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker,
                             initargs=(worker_env(1),)) as pool:
        futures = {pool.submit(_run_without_gc, fn, job): i for i, job in enumerate(jobs)}
        for done, fut in enumerate(as_completed(futures), 1):
            results[futures[fut]] = fut.result()
            log.info("%s: %d/%d share(s) done", label, done, len(jobs))
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
