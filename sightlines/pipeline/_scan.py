"""Scanning a snapshot: files in parallel processes, blocks of lines, chunks of users.

Both ``extract`` (today's features) and ``sample`` (training frames at past
cutoffs) read the raw snapshot the same way; this module holds that shared
machinery. Work is split by file: each worker process opens the storage
itself, so nothing large crosses a process boundary but file names,
statistics and paths of local temporary files.
"""

from __future__ import annotations

import gc
import logging
import multiprocessing
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from .._decode import Plan, build_plan
from .._resources import worker_env
from ..config import Roles
from ..features import Chunk, chunk_from_users
from ..profiles import DecodedBlock, decode_block, iter_line_blocks
from ..schema import Schema
from ..storage import ClientStore, Storage

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


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
    block_bytes: int = 4 << 20

    def store(self) -> ClientStore:
        return Storage(self.root, storage_options=self.storage_options).client(self.client)

    def parsed_schema(self) -> Schema | None:
        return Schema.from_dict(self.schema) if self.schema is not None else None

    def plan(self) -> Plan:
        return build_plan(self.parsed_schema(), Roles(**self.roles), labels=self.labels)


def iter_chunks(spec: ScanSpec, store: ClientStore, key: str, *, plan: Plan | None = None,
                schema: Schema | None = None, seen: dict[str, int] | None = None
                ) -> Iterator[tuple[DecodedBlock, Chunk]]:
    """Decode one snapshot file block by block; yield each block with its columnar chunk."""
    plan = plan or spec.plan()
    schema = schema if schema is not None else spec.parsed_schema()
    roles = Roles(**spec.roles)
    seen = {} if seen is None else seen
    name = key.rsplit("/", 1)[-1]
    for first, lines in iter_line_blocks(store, key, block_bytes=spec.block_bytes):
        block = decode_block(lines, first, name, plan, seen, id_path=roles.id)
        chunk = chunk_from_users(block.users, block.ids, plan, schema, latest=spec.latest, roles=roles)
        block.users = []  # the typed records are no longer needed
        yield block, chunk


def _init_worker(env: dict[str, str]) -> None:
    os.environ.update(env)


def map_files(fn: Callable[[T], R], jobs: list[T], workers: int) -> list[R]:
    """Run ``fn`` over ``jobs`` in up to ``workers`` processes (in order); in-process when 1.

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
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker,
                             initargs=(worker_env(1),)) as pool:
        futures = [pool.submit(_run_without_gc, fn, job) for job in jobs]
        return [f.result() for f in futures]


def _run_without_gc(fn: Callable[[T], R], job: T) -> R:
    enabled = gc.isenabled()
    gc.disable()
    try:
        return fn(job)
    finally:
        if enabled:
            gc.enable()
