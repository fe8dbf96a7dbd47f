"""Build one raw file of a snapshot: compressed bytes, truth rows and problem entries.

:func:`build_file` is a pure function of its :class:`FileTask` (no storage
access), so it runs the same in the caller's process or in a worker process;
the caller writes the results. Output is byte-identical for the same task.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import gc
import io
import resource
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from typing import Any

import isal.igzip
import numpy as np

from ._corrupt import BOM, Corruptor, dumps
from ._events import ChunkEvents, simulate_events
from ._latent import Latent, draw_latent
from ._model import STREAM_BAD
from ._profile import Renderer, Shapes, draw_shapes, truth_columns
from ._world import Sim, World, rng_for, sim_for

__all__ = ["FileTask", "FileOutput", "build_file", "run_tasks", "part_name", "empty_file"]

COMPRESS_LEVEL = 1


def part_name(index: int) -> str:
    return f"part-{index:05d}.ndjson.gz"


def empty_file() -> bytes:
    """A gzip file of no lines (the snapshot of a day before the first signup)."""
    buf = io.BytesIO()
    with isal.igzip.GzipFile(fileobj=buf, mode="wb", compresslevel=COMPRESS_LEVEL, mtime=0):
        pass
    return buf.getvalue()


@dataclass(frozen=True)
class FileTask:
    """One raw file: users ``lo <= index < hi`` of the snapshot of ``date``."""

    world: World
    date: dt.date
    file_index: int
    lo: int
    hi: int
    bad_fraction: float


@dataclass
class FileOutput:
    name: str
    data: bytes
    truth: dict[str, np.ndarray]
    entries: list[dict[str, Any]] = field(default_factory=list)
    lines: int = 0
    raw_bytes: int = 0
    #: peak resident memory of the process that built the file, in MB
    peak_rss_mb: float = 0.0


@functools.lru_cache(maxsize=4)
def _renderer(world: World) -> Renderer:
    return Renderer(sim_for(world))


@functools.lru_cache(maxsize=2)
def _chunk(world: World, chunk: int) -> tuple[Latent, ChunkEvents, Shapes]:
    """Simulate a chunk (cached: consecutive files often share one)."""
    sim = sim_for(world)
    lat = draw_latent(sim, chunk)
    return lat, simulate_events(sim, lat, chunk), draw_shapes(sim, chunk)


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector: profiles hold no cycles, and collecting
    while building millions of small dicts costs ~20% of the time."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def build_file(task: FileTask) -> FileOutput:
    """Render, corrupt (if asked) and gzip one file of the snapshot."""
    with _gc_paused():
        return _build_file(task)


def _build_file(task: FileTask) -> FileOutput:
    world = task.world
    sim: Sim = sim_for(world)
    renderer = _renderer(world)
    name = part_name(task.file_index)
    cut_day = world.day(task.date) + 1
    size = world.chunk_size
    rng = rng_for(world, STREAM_BAD, task.date.toordinal(), task.file_index)
    corrupt = Corruptor(rng, task.hi - task.lo, task.bad_fraction, name, task.lo, sim.user_id)
    buf = io.BytesIO()
    truth_parts: list[dict[str, np.ndarray]] = []
    entries: list[dict[str, Any]] = []
    line_no = 0
    raw = 0
    with isal.igzip.GzipFile(fileobj=buf, mode="wb", compresslevel=COMPRESS_LEVEL, mtime=0) as gz:
        for chunk in range(task.lo // size, (task.hi - 1) // size + 1):
            base = chunk * size
            a, b = max(task.lo, base) - base, min(task.hi, base + size) - base
            lat, ev, shapes = _chunk(world, chunk)
            profiles, texts = renderer.render(lat, ev, shapes, a, b, cut_day)
            truth_parts.append(truth_columns(sim, lat, ev, a, b))
            out: list[bytes] = []
            for k, d in enumerate(profiles):
                pos = base + a + k - task.lo
                applied = corrupt.apply_fields(pos, d, texts[k]) if task.bad_fraction > 0 else ()
                line = dumps(d)
                line_no += 1
                if pos == 0 and corrupt.bom:
                    out.append(BOM + line)
                    entries.append({"file": name, "line": line_no, "kind": "bom", "bad": False, "id": d["id"]})
                else:
                    out.append(line)
                for kind in applied:
                    entries.append({"file": name, "line": line_no, "kind": kind, "bad": False, "id": d["id"]})
                if task.bad_fraction > 0:
                    for extra, kind, uid in corrupt.extra_lines(pos, d, line):
                        line_no += 1
                        out.append(extra)
                        entries.append({"file": name, "line": line_no, "kind": kind, "bad": kind != "blank", "id": uid})
            data = b"\n".join(out) + b"\n"
            raw += len(data)
            gz.write(data)
    truth = {k: np.concatenate([p[k] for p in truth_parts]) for k in truth_parts[0]}
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return FileOutput(name, buf.getvalue(), truth, entries, line_no, raw, peak)


def run_tasks(tasks: list[FileTask], workers: int) -> Iterator[FileOutput]:
    """Build the files in order, in ``workers`` processes (1: in this process).

    At most ``2 * workers`` results are in flight, so memory stays bounded.
    """
    if workers <= 1 or len(tasks) <= 1:
        for task in tasks:
            yield build_file(task)
        return
    # forkserver: children fork from a clean server process (no threads of ours), which imports
    # this module once; later pools of the same process start in milliseconds
    ctx = get_context("forkserver")
    ctx.set_forkserver_preload([__name__])
    with ProcessPoolExecutor(max_workers=min(workers, len(tasks)), mp_context=ctx) as pool:
        pending: list[Future[FileOutput]] = []
        it = iter(tasks)
        for task in it:
            pending.append(pool.submit(build_file, task))
            if len(pending) >= 2 * workers:
                break
        while pending:
            result = pending.pop(0).result()
            nxt = next(it, None)
            if nxt is not None:
                pending.append(pool.submit(build_file, nxt))
            yield result
