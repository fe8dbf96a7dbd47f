"""The ``extract`` step: a day's raw snapshot -> the feature table under ``features/{date}/``."""

from __future__ import annotations

import datetime as dt
import gzip
import logging
import os
import tempfile
import time
from collections import Counter
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from .._native import scanner as _native
from .._resources import cpu_budget
from .._timeparse import end_of_day
from ..config import ClientConfig
from ..errors import DataQualityError, NotFoundError
from ..features import feature_columns, to_table
from ..profiles import BadRecord, RawBlocks, gzip_size, iter_line_blocks, line_text, raw_files, usable_id
from ..result import STATUS_OK, StepResult
from ..schema import Schema, learn_schema, load_schema, new_keys, save_schema
from ..storage import ClientStore, Storage, date_str, file_sha256
from . import _scan
from ._scan import (
    ScanSpec,
    SeenFilter,
    Share,
    collector_paused,
    in_sorted,
    iter_segments,
    map_jobs,
    plan_shares,
    worker_pool,
)

log = logging.getLogger(__name__)

__all__ = ["extract", "learn_client_schema", "PARQUET_OPTIONS"]

#: how every parquet file of Sightlines is written (deterministic bytes for the same data)
#: dictionary encoding is off: on float features it is tried, abandoned, and costs more time than the rest
PARQUET_OPTIONS: dict[str, Any] = {"compression": "zstd", "compression_level": 1, "use_dictionary": False,
                                   "write_statistics": True}
#: the feature table: statistics (min/max) for ``user_id`` only; those of the 100+ float columns cost 15% of the
#: write and nothing reads them (score reads whole row groups, sample joins on user_id). LZ4 rather than zstd:
#: 40% less time to write and half the time to read (score and sample read it), for 1.5x the bytes
#: (about 155 instead of 102 per user: BENCHMARKS.md)
FEATURE_PARQUET_OPTIONS: dict[str, Any] = {"compression": "lz4", "use_dictionary": False,
                                           "write_statistics": ["user_id"]}
#: the event log is an intermediate read once by the sample step: fast compression beats small files
#: (float columns are also byte-stream-split, see :func:`_event_options`)
EVENT_PARQUET_OPTIONS: dict[str, Any] = {"compression": "lz4", "use_dictionary": False, "write_statistics": False}
_ROW_GROUP = 65_536
_SAMPLE_USERS = 50_000
_NEW_KEYS_SAMPLE = 2_000
#: characters of a bad line kept in the quarantine
_TEXT_CHARS = 2_000


@dataclass
class SegmentResult:
    """What a worker reports about one segment of a snapshot file."""

    file_index: int
    segment: int
    name: str
    #: the local parquet part of the segment's feature rows (written once duplicates are known)
    part: str | None = None
    #: the feature rows as the worker left them: an uncompressed Arrow IPC file, turned into ``part`` afterwards
    staged: str | None = None
    good: int = 0
    bad: int = 0
    blank: int = 0
    lenient: int = 0
    bad_kinds: dict[str, int] = field(default_factory=dict)
    bad_path: str | None = None
    hashes: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint64))  # id hashes, in row order
    lines: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # line number of each row
    present: dict[str, int] = field(default_factory=dict)
    #: table name ("users", "ev0", ...) -> local parquet of the segment's columnar chunk (for the sample step)
    events: dict[str, str] = field(default_factory=dict)
    #: rows of the event log's users that were dropped as duplicates (the feature part no longer has them)
    dropped: list[int] = field(default_factory=list)
    #: line number -> text of the lines whose id may repeat an earlier one (see ``SeenFilter``)
    texts: dict[int, str] = field(default_factory=dict)
    #: local path -> SHA-256 of the files above, computed by the process that wrote them (still in its page cache)
    sha256: dict[str, str] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"part-{self.file_index:05d}-{self.segment:05d}"


@dataclass(frozen=True)
class _ShareJob:
    spec: ScanSpec
    share: Share
    out_dir: str
    as_of: float
    event_names: dict[str, str]
    seen: SeenFilter | None = None
    #: the scalars kept in the event log's users table (the timestamps: all that time travel can use)
    time_scalars: tuple[str, ...] = ()


class _SegmentWriter:
    """Accumulates one segment's tables into local files (and its bad records).

    The feature rows go to an uncompressed Arrow IPC file, nearly free to write
    and to map back: an id repeated in another segment is only known once every
    worker is done, and dropping it from a compressed parquet part meant reading
    and compressing the part again (most parts of a big snapshot have one).
    :func:`_finish_part` writes the parquet part once, without those rows.
    """

    def __init__(self, job: _ShareJob, segment: int):
        self.res = SegmentResult(file_index=job.share.file_index, segment=segment, name=job.share.name)
        self.staged = os.path.join(job.out_dir, f"{self.res.label}.features.arrow")
        self.bad_path = os.path.join(job.out_dir, f"{self.res.label}.bad.ndjson.gz")
        self.writer: pa.ipc.RecordBatchFileWriter | None = None
        self.sink: Any = None
        self.bad_handle: Any = None
        self.hashes: list[np.ndarray] = []
        self.lines: list[np.ndarray] = []
        self.present: Counter[str] = Counter()
        self.kinds: Counter[str] = Counter()
        self.texts: dict[int, str] = {}
        self.event_names = job.event_names
        self.time_scalars = job.time_scalars
        self.event_writers: dict[str, pq.ParquetWriter] = {}
        self.event_pending: dict[str, list[pa.Table]] = {}
        self.event_pending_users = 0
        self.event_rows = 0

    def _write_events(self, chunk: Any) -> None:
        # the sample step rebuilds features at past cutoffs by time travel, where only times are knowable:
        # of the users' values it needs creation, opt-out and the timestamp scalars
        for name, table in chunk.to_tables(self.event_names, offset=self.event_rows, scalars=self.time_scalars,
                                           lists=False).items():
            self.event_pending.setdefault(name, []).append(table)
        self.event_rows += chunk.n
        self.event_pending_users += chunk.n
        if self.event_pending_users >= _ROW_GROUP:
            self._flush_events()

    def _flush_events(self) -> None:
        # a few big row groups: every write_table call is a row group, with fixed costs per column and page
        for name, tables in self.event_pending.items():
            table = pa.concat_tables(tables)
            w = self.event_writers.get(name)
            if w is None:
                path = os.path.join(os.path.dirname(self.staged), f"{self.res.label}.{name}.parquet")
                w = self.event_writers[name] = pq.ParquetWriter(path, table.schema, **_event_options(table.schema))
                self.res.events[name] = path
            w.write_table(table)
        self.event_pending, self.event_pending_users = {}, 0

    def add(self, block: Any, chunk: Any, schema: Schema, as_of: float) -> None:
        r = self.res
        r.good += len(block.ids)
        r.blank += block.blank
        r.lenient += block.lenient
        if block.bad:
            r.bad += len(block.bad)
            self.kinds.update(b.kind for b in block.bad)
            if self.bad_handle is None:
                self.bad_handle = gzip.open(self.bad_path, "wb", compresslevel=3)
            for b in block.bad:
                self.bad_handle.write(orjson.dumps(b.to_dict()) + b"\n")
        self.texts.update(block.texts)
        if not len(block.ids):
            return
        self.hashes.append(block.hashes)
        self.lines.append(np.asarray(block.lines, dtype=np.int64))
        for name, values in chunk.scalars.items():
            self.present[name] += int(np.count_nonzero(~np.isnan(values)))
        for name, values in chunk.lists.items():
            self.present[name] += int(np.count_nonzero(~np.isnan(values)))
        table = to_table(block.ids, feature_columns(chunk, schema, as_of=as_of))
        if self.writer is None:
            self.sink = pa.OSFile(self.staged, "wb")
            self.writer = pa.ipc.new_file(self.sink, table.schema)
        self.writer.write_table(table)
        self._write_events(chunk)

    def close(self) -> SegmentResult:
        if self.event_pending:
            self._flush_events()
        for w in self.event_writers.values():
            w.close()
        r = self.res
        r.sha256.update({path: file_sha256(path) for path in r.events.values()})
        if self.writer is not None:
            self.writer.close()
            self.sink.close()
            r.staged = self.staged
        if self.bad_handle is not None:
            self.bad_handle.close()
            r.bad_path = self.bad_path
        r.hashes = np.concatenate(self.hashes) if self.hashes else np.zeros(0, np.uint64)
        r.lines = np.concatenate(self.lines) if self.lines else np.zeros(0, np.int64)
        r.present, r.bad_kinds, r.texts = dict(self.present), dict(self.kinds), self.texts
        return r


def _event_options(schema: pa.Schema) -> dict[str, Any]:
    """:data:`EVENT_PARQUET_OPTIONS`, with the float columns (times, amounts) byte-stream-split.

    Split into the planes of their bytes, doubles compress a quarter smaller,
    and faster: LZ4 spends its time on what it cannot compress.
    """
    split = {f.name: "BYTE_STREAM_SPLIT" for f in schema if pa.types.is_floating(f.type)}
    return {**EVENT_PARQUET_OPTIONS, "column_encoding": split} if split else dict(EVENT_PARQUET_OPTIONS)


def _extract_share(job: _ShareJob) -> list[SegmentResult]:
    """Worker: the share's segments -> staged feature rows, event log parts and statistics, one per segment."""
    spec = job.spec
    store = spec.store()
    schema = spec.parsed_schema()
    assert schema is not None
    plan = spec.plan()
    out: list[SegmentResult] = []
    current: _SegmentWriter | None = None
    try:
        for segment, block, chunk in iter_segments(spec, store, job.share, plan=plan, schema=schema, seen=job.seen):
            if current is None or current.res.segment != segment:
                if current is not None:
                    out.append(current.close())
                current = _SegmentWriter(job, segment)
            current.add(block, chunk, schema, job.as_of)
    finally:
        if current is not None:
            out.append(current.close())
    return out


def _sample_users(store: ClientStore, keys: list[str], limit: int, id_path: str = "id", *,
                  shapes: bool = False) -> list[dict[str, Any]]:
    """The first good-looking users of the snapshot (objects with a usable, unseen id), spread over its files.

    ``shapes``: the users' lists may come back empty (where the compiled
    module is built, they are left out before parsing: enough to see which
    keys the users' objects have, at a fraction of the cost). A line whose
    only fault is inside a list then counts as a user: fine for the new-keys
    report (a key needs 2% of the sample), not for learning a schema.
    """
    with collector_paused():
        return _first_users(store, keys, limit, id_path, shapes and _native is not None)


def _first_users(store: ClientStore, keys: list[str], limit: int, id_path: str,
                 shapes: bool = False) -> list[dict[str, Any]]:
    per_file = max(1, -(-limit // max(1, len(keys))))
    users: list[dict[str, Any]] = []
    seen: set[str] = set()
    id_keys = id_path.split(".")
    for key in keys:
        taken = 0
        for _, _, lines in iter_line_blocks(store, key, block_bytes=1 << 20, max_lines=per_file * 2):
            for line in lines:
                if line[:3] == b"\xef\xbb\xbf":
                    line = line[3:]
                if shapes:
                    line = _native.strip_lists(line)
                try:
                    obj = orjson.loads(line)
                except orjson.JSONDecodeError:
                    continue
                if type(obj) is dict:
                    uid: Any = obj
                    for k in id_keys:
                        uid = uid.get(k) if isinstance(uid, dict) else None
                    uid = usable_id(uid)
                    if uid is None or uid in seen:  # bad records must not shape the schema (see ``shapes``)
                        continue
                    seen.add(uid)
                    users.append(obj)
                    taken += 1
                    if taken >= per_file:
                        break
            if taken >= per_file:
                break
        if len(users) >= limit:
            break
    return users[:limit]


def learn_client_schema(store: ClientStore, date: dt.date | str, config: ClientConfig, *,
                        save: bool = True) -> Schema:
    """Learn a schema from the snapshot of ``date`` and (by default) save it as the client's next version."""
    date = date_str(date)
    keys = raw_files(store, date)
    if not keys:
        raise NotFoundError(f"no snapshot files under {store.url_of(store.raw(date))}", path=store.raw(date))
    sample = _sample_users(store, keys, _SAMPLE_USERS, config.roles.id)
    schema = learn_schema(sample, roles=config.roles, learned_from=date)
    if save:
        schema = save_schema(store, schema)
        log.info("learned feature schema v%d of %s from %s: %d columns (%d users sampled)", schema.version,
                 store.client, date, len(schema.columns()), schema.sample_users)
    return schema


def find_duplicates(results: list[SegmentResult]) -> dict[int, list[tuple[int, int, int, str]]]:
    """Rows whose id already appeared in an earlier segment (the first occurrence stays).

    ``results`` must be in file and segment order (rows in line order).
    Returns, per result index, ``(row, result index of the first occurrence,
    its row, the id)``. Only 8 bytes per user are held: ids are compared by
    hash, and the few colliding ones are checked against the real ids in the
    parts.
    """
    if not results:
        return {}
    h = np.concatenate([r.hashes for r in results])
    hs = np.sort(h)  # the values alone: several times faster than an argsort
    repeated = np.unique(hs[1:][hs[1:] == hs[:-1]])  # hashes held by more than one row (few)
    if len(repeated) == 0:
        return {}
    # the rows holding one of them: a bitmap of their low bits first (a gather per row), then an exact look-up
    # for the few rows it lets through
    low = np.zeros(1 << 20, dtype=bool)
    low[(repeated & np.uint64((1 << 20) - 1)).astype(np.intp)] = True
    maybe = np.flatnonzero(low[(h & np.uint64((1 << 20) - 1)).astype(np.intp)])
    cand = maybe[in_sorted(h[maybe], repeated)]  # ascending position = file, segment, row
    starts = np.cumsum([0] + [len(r.hashes) for r in results])
    cand_res = np.searchsorted(starts, cand, side="right") - 1
    cand_rows = cand - starts[cand_res]
    uid_of: dict[int, str] = {}
    for ri in np.unique(cand_res).tolist():
        mine = np.flatnonzero(cand_res == ri)
        for pos, uid in zip(cand[mine].tolist(), _ids_at(results[ri], cand_rows[mine])):
            uid_of[pos] = uid
    first: dict[str, tuple[int, int]] = {}
    dups: dict[int, list[tuple[int, int, int, str]]] = {}
    for pos, ri, row in zip(cand.tolist(), cand_res.tolist(), cand_rows.tolist()):
        uid = uid_of[pos]
        if uid in first:
            dups.setdefault(ri, []).append((row, *first[uid], uid))
        else:
            first[uid] = (ri, row)
    return dups


def _ids_at(r: SegmentResult, rows: np.ndarray) -> list[str]:
    """The user ids at ``rows`` of a segment's staged feature rows."""
    if not r.staged:
        return []
    with pa.memory_map(r.staged) as src:
        return pa.ipc.open_file(src).read_all().column("user_id").take(pa.array(rows)).to_pylist()


@dataclass(frozen=True)
class _PartJob:
    """Write a segment's parquet part from its staged rows, without ``drop`` (sorted row numbers)."""

    staged: str
    part: str
    drop: tuple[int, ...] = ()


@dataclass(frozen=True)
class _LinesJob:
    """Read back the text of some lines of a snapshot file."""

    spec: ScanSpec
    key: str
    lines: tuple[int, ...]  # sorted, 1-based


@dataclass(frozen=True)
class _NewKeysJob:
    """Sample the snapshot's first users and list the keys the schema does not have."""

    spec: ScanSpec
    keys: tuple[str, ...]
    id_path: str


def _scan_job(job: _ShareJob | _NewKeysJob) -> Any:
    """Worker for the scan: a share of the snapshot, or the key check."""
    if isinstance(job, _ShareJob):
        return _extract_share(job)
    schema = job.spec.parsed_schema()
    assert schema is not None
    # new_keys reads the keys of the users' objects, not their lists
    return new_keys(schema, _sample_users(job.spec.store(), list(job.keys), _NEW_KEYS_SAMPLE, job.id_path,
                                          shapes=True))


def _finish_job(job: _PartJob | _LinesJob) -> Any:
    """Worker for the work left once every segment is scanned (parts, duplicate lines)."""
    if isinstance(job, _PartJob):
        return _finish_part(job)
    return _read_lines(job.spec.store(), job.key, job.lines)


def _finish_part(job: _PartJob) -> str:
    """Write the part; returns its SHA-256."""
    with pa.memory_map(job.staged) as src:
        table = pa.ipc.open_file(src).read_all()  # mapped, not copied
        if len(job.drop) > 100:  # many rows (a re-sent file): one copy of the rest
            keep = np.ones(table.num_rows, dtype=bool)
            keep[list(job.drop)] = False
            table = table.filter(pa.array(keep))
        elif job.drop:  # a few: the slices around them, still mapped
            starts, stops = [0, *(row + 1 for row in job.drop)], [*job.drop, table.num_rows]
            table = pa.concat_tables([table.slice(a, b - a) for a, b in zip(starts, stops) if b > a]
                                     or [table.slice(0, 0)])
        pq.write_table(table, job.part, row_group_size=_ROW_GROUP, **FEATURE_PARQUET_OPTIONS)
        del table
    os.remove(job.staged)
    return file_sha256(job.part)


def _read_lines(store: ClientStore, key: str, wanted: tuple[int, ...]) -> dict[int, str]:
    """Line number -> text (its first 2,000 characters) of the ``wanted`` lines (sorted, 1-based) of a snapshot file.

    Lines are numbered as the scan numbered them (the same :class:`~sightlines.profiles.RawBlocks`). The
    file is decompressed only up to the last wanted line, a megabyte at a time (it stays in the CPU
    cache), and lines are found with ``bytes.find`` in the blocks that hold one (no list of lines is built).
    """
    out: dict[int, str] = {}
    i = 0
    blocks = RawBlocks(store, key, block_bytes=1 << 20)
    for _, lineno, view in blocks:
        if i == len(wanted):
            break  # the rest of the file is not needed
        data, end = view.obj, len(view)  # the block is the start of RawBlocks' buffer: searched in place, not copied
        first, pos = lineno, 0
        while pos < end:  # walk the lines with find (memchr): much faster than bytes.count on a whole block
            stop = data.find(b"\n", pos, end)
            stop = end if stop < 0 else stop  # the file's last line may lack its newline
            if i < len(wanted) and lineno == wanted[i]:
                out[lineno] = line_text(bytes(data[pos:min(stop, pos + 3 + _TEXT_CHARS)]))
                i += 1
            lineno += 1
            pos = stop + 1
        blocks.n_lines = lineno - first
    return out


def extract(client: str, date: dt.date | str, storage: Storage, *, config: ClientConfig | None = None,
            workers: int | None = None) -> StepResult:
    """Turn the raw snapshot of ``(client, date)`` into the feature table ``features/{date}/``.

    Parameters
    ----------
    client : str
        Client id.
    date : datetime.date or str
        Snapshot date; features describe the end of that day.
    storage : Storage
        The storage root.
    config : ClientConfig, optional
        The client's config (bad-record threshold, role paths); defaults.
    workers : int, optional
        Worker processes (a file each, or runs of one file's segments when there are fewer files than
        processes); defaults to the core budget.

    Returns
    -------
    StepResult
        ``n_records`` is the number of users in the table; ``details`` holds
        the bad-record counts, new and vanished keys and timings.

    Raises
    ------
    NotFoundError
        The snapshot has no files.
    DataQualityError
        More than ``config.bad_fraction_max`` of the records are bad; no
        features are written (the quarantine is, for inspection).

    Examples
    --------
    >>> from sightlines.storage import Storage
    >>> store = Storage("memory://doctest-extract")
    >>> acme = store.client("acme")
    >>> acme.write_bytes("raw/2026-11-24/users.ndjson", b'{"id": "a", "purchases": []}\\n{"id": "b"}\\nnot json\\n')
    >>> result = extract("acme", "2026-11-24", store, workers=1, config=ClientConfig(bad_fraction_max=0.5))
    >>> result.n_records, result.details["bad_records"]
    (2, 1)
    """
    t0 = time.perf_counter()
    date = date_str(date)
    config = config or ClientConfig()
    store = storage.client(client)
    keys = raw_files(store, date)
    if not keys:
        raise NotFoundError(
            f"client {client}: no snapshot for {date} (expected *.ndjson.gz files under {store.url_of(store.raw(date))})",
            record_id=client, path=store.raw(date),
        )
    warnings: list[str] = []
    schema = load_schema(store)
    learned = schema is None
    if learned:  # saved only once the snapshot has passed the quality check below
        schema = learn_client_schema(store, date, config, save=False)
    as_of = end_of_day(dt.date.fromisoformat(date))
    spec = ScanSpec(root=storage.url, storage_options=storage.storage_options, client=client, date=date,
                    schema=schema.to_dict(), roles=asdict(config.roles), latest=as_of + 86400.0, labels=True,
                    block_bytes=_scan.BLOCK_BYTES, segment_blocks=_scan.SEGMENT_BLOCKS)
    workers = workers or cpu_budget()
    tmp_parent = os.path.dirname(storage._path(store.key("features"))) if storage.is_local else None
    if tmp_parent:
        os.makedirs(tmp_parent, exist_ok=True)
    phases: dict[str, float] = {}
    mark = time.perf_counter()

    def phase(name: str) -> None:  # wall seconds of each part of the step, for the run record and benchmarks
        nonlocal mark
        now = time.perf_counter()
        phases[name] = round(now - mark, 3)
        mark = now

    phase("setup")
    with tempfile.TemporaryDirectory(prefix=".extract-", dir=tmp_parent) as out_dir, ExitStack() as processes:
        sizes = [store.size(k) for k in keys]
        raw_sizes = [gzip_size(store, k, sz) for k, sz in zip(keys, sizes)] if len(keys) < workers else None
        shares = plan_shares(keys, workers, sizes, raw_sizes=raw_sizes, block_bytes=spec.block_bytes,
                             most=spec.segment_blocks)
        event_names = event_list_names(spec.plan())
        # ids seen by any worker: a line whose id may repeat an earlier one keeps its text while it is at hand
        seen = SeenFilter.create(os.path.join(out_dir, "seen-ids.bits"), _expected_users(keys, sizes))
        time_scalars = tuple(s.name for s in schema.scalars if s.kind == "timestamp")
        jobs = [_ShareJob(spec=spec, share=sh, out_dir=out_dir, as_of=as_of, event_names=event_names, seen=seen,
                          time_scalars=time_scalars) for sh in shares]
        log.info("extract %s %s: %d file(s) in %d share(s), %d worker(s), schema v%d", client, date, len(keys),
                 len(shares), workers, schema.version)
        # the same processes scan, then write the parts (there may be more parts than shares: all the workers)
        pool = processes.enter_context(worker_pool(workers))
        # the sample of users that tells about new keys is a job of the scan too: the process done with its share
        # first takes it (shares end a little apart)
        scanned = map_jobs(_scan_job, [*jobs, _NewKeysJob(spec=spec, keys=tuple(keys), id_path=config.roles.id)],
                           workers, label=f"extract {client} {date}", pool=pool)
        new: list[str] = scanned.pop()
        results = sorted((r for rs in scanned for r in rs), key=lambda r: (r.file_index, r.segment))
        phase("scan")

        # an id repeated in a later line, segment or file is a bad record too (the first occurrence stays)
        repeats = _mark_duplicates(results, find_duplicates(results))
        phase("repeats")
        # then, in parallel: the parquet parts (without the repeats) and the text of the repeated lines that the scan
        # did not keep (read back from the snapshot; rare)
        wanted: dict[int, list[int]] = {}
        for (fi, line), (_, text) in repeats.items():
            if text is None:
                wanted.setdefault(fi, []).append(line)
        line_jobs = [_LinesJob(spec=spec, key=keys[fi], lines=tuple(sorted(lines)))
                     for fi, lines in sorted(wanted.items())]
        part_jobs = sorted((_PartJob(staged=r.staged, part=os.path.join(out_dir, f"{r.label}.parquet"),
                                     drop=tuple(r.dropped)) for r in results if r.staged),
                           key=lambda j: -os.path.getsize(j.staged))  # the longest first
        done = map_jobs(_finish_job, [*line_jobs, *part_jobs], workers, label=f"extract {client} {date} parts",
                        pool=pool)
        processes.close()
        phase("parts")
        texts: dict[int, dict[int, str]] = {fi: got for fi, got in zip(sorted(wanted), done)}
        part_sha = {job.part: digest for job, digest in zip(part_jobs, done[len(line_jobs):])}
        for r in results:
            if r.staged:
                r.part, r.staged = os.path.join(out_dir, f"{r.label}.parquet"), None
                r.sha256[r.part] = part_sha[r.part]
        extra_bad = [BadRecord(keys[fi].rsplit("/", 1)[-1], line, "duplicate_id", f"duplicate id {reason}",
                               text if text is not None else texts[fi].get(line, ""))
                     for (fi, line), (reason, text) in sorted(repeats.items())]
        if wanted:
            log.info("extract %s %s: read back the text of %d repeated line(s) in %d file(s)", client, date,
                     sum(len(v) for v in wanted.values()), len(wanted))

        good = sum(r.good for r in results)
        bad = sum(r.bad for r in results)
        kinds: Counter[str] = Counter()
        for r in results:
            kinds.update(r.bad_kinds)
        total = good + bad
        bad_fraction = bad / total if total else 1.0
        summary = {
            "client": client, "date": date, "files": len(keys), "records": total, "good": good, "bad": bad,
            "bad_fraction": round(bad_fraction, 6), "bad_by_kind": dict(sorted(kinds.items())),
            "blank_lines": sum(r.blank for r in results), "users_with_wrong_typed_fields": sum(r.lenient for r in results),
            "bad_fraction_max": config.bad_fraction_max,
        }
        if bad:
            _write_quarantine(store, date, results, extra_bad, summary)
            warnings.append(f"{bad:,} bad record(s) kept aside in {store.quarantine(date)}/ "
                            f"({', '.join(f'{k}: {v:,}' for k, v in sorted(kinds.items()))})")
        if summary["users_with_wrong_typed_fields"]:
            warnings.append(f"{summary['users_with_wrong_typed_fields']:,} user(s) had wrongly shaped fields "
                            "(kept; those fields are missing)")
        if total == 0 or bad_fraction > config.bad_fraction_max:
            raise DataQualityError(
                f"client {client}, snapshot {store.raw(date)}: {bad:,} of {total:,} records are bad "
                f"({bad_fraction:.1%}), above this client's limit of {config.bad_fraction_max:.1%}; no features "
                f"were written. The bad records and their reasons are in {store.url_of(store.quarantine(date))}. "
                "Fix the export, or raise bad_fraction_max for this client if this is expected.",
                record_id=client, path=store.raw(date),
            )

        if learned:
            schema = save_schema(store, schema)
            log.info("learned feature schema v%d of %s from %s: %d columns (%d users sampled)", schema.version,
                     client, date, len(schema.columns()), schema.sample_users)
            warnings.append(f"learned a new feature schema (v{schema.version}, {len(schema.columns())} columns)")

        # keys that appeared (``new``, above) or vanished since the schema was learned (reported, never added silently)
        present: Counter[str] = Counter()
        for r in results:
            present.update(r.present)
        vanished = [s.name for s in schema.scalars if present.get(s.name, 0) == 0]
        vanished += [x.name for x in schema.lists if present.get(x.name, 0) == 0]
        if new:
            warnings.append(f"{len(new)} new key(s) not in schema v{schema.version} (not added; "
                            f"`sightlines schema refresh` to adopt): {', '.join(new[:10])}"
                            + (" ..." if len(new) > 10 else ""))
        if vanished:
            warnings.append(f"{len(vanished)} schema column(s) empty today: {', '.join(vanished[:10])}"
                            + (" ..." if len(vanished) > 10 else ""))

        phase("quality")
        with store.dataset(store.events(date)) as ds:  # the columnar event log the sample step reads
            for r in results:
                for name, path in sorted(r.events.items()):
                    ds.add_file(f"{name}/{r.label}.parquet", path, sha256=r.sha256.get(path))
            ds.meta.update({"kind": "events", "client": client, "date": date, "n_users": good,
                            "schema_version": schema.version, "event_lists": {v: k for k, v in event_names.items()},
                            "segments": [r.label for r in results if r.events],
                            "dropped": {r.label: r.dropped for r in results if r.dropped}})
        prefix = store.features(date)
        with store.dataset(prefix) as ds:
            for r in results:
                if r.part:
                    ds.add_file(f"{r.label}.parquet", r.part, sha256=r.sha256.get(r.part))
            ds.meta.update({
                "kind": "features", "client": client, "date": date, "as_of": as_of, "n_users": good,
                "schema_version": schema.version, "schema_fingerprint": schema.fingerprint(),
                "n_columns": len(schema.columns()), "new_keys": new, "vanished_keys": vanished,
                "quality": summary,
            })
        phase("commit")
    seconds = time.perf_counter() - t0
    details = {
        "users": good, "bad_records": bad, "bad_fraction": summary["bad_fraction"], "bad_by_kind": summary["bad_by_kind"],
        "blank_lines": summary["blank_lines"], "files": len(keys), "schema_version": schema.version,
        "columns": len(schema.columns()), "new_keys": new, "vanished_keys": vanished,
        "seconds": round(seconds, 3), "phases": phases, "users_per_second": round(good / seconds, 1) if seconds else None,
    }
    log.info("extract %s %s: %d users, %d bad, %.1f s", client, date, good, bad, seconds)
    return StepResult(step="extract", client=client, date=dt.date.fromisoformat(date), status=STATUS_OK,
                      outputs={"features": prefix}, n_records=good, warnings=tuple(warnings), details=details)


def _expected_users(keys: list[str], sizes: list[int]) -> int:
    """A generous guess of the users in a snapshot from its files' sizes (profiles rarely take under 100 bytes
    of gzip or 500 of JSON), to size the :class:`SeenFilter`."""
    return sum(sz // (100 if k.endswith(".gz") else 500) for k, sz in zip(keys, sizes)) + 1


def event_list_names(plan: Any) -> dict[str, str]:
    """Event list path -> short file-safe table name (``ev0``, ``ev1``...), in path order."""
    return {path: f"ev{i}" for i, path in enumerate(sorted(plan.record_nodes))}


def _mark_duplicates(results: list[SegmentResult], dups: dict[int, list[tuple[int, int, int, str]]]
                     ) -> dict[tuple[int, int], tuple[str, str | None]]:
    """Count the rows of ``dups`` as bad and take them out of ``results`` (their parts are written without them).

    Returns (file index, line) -> (where the id was first seen, the line's text if the scan kept it), for the
    quarantine.
    """
    reasons: dict[tuple[int, int], tuple[str, str | None]] = {}
    for ri, rows in dups.items():  # before any row is taken out: the first occurrences' line numbers
        r = results[ri]
        for row, fri, frow, uid in rows:
            first = results[fri]
            line = int(r.lines[row])
            reasons[(r.file_index, line)] = \
                (f"{uid!r} (first seen at {first.name} line {int(first.lines[frow])})", r.texts.get(line))
    for ri, rows in sorted(dups.items()):
        r = results[ri]
        r.dropped = sorted(row for row, _, _, _ in rows)  # the event log keeps them; its readers skip them
        keep = np.ones(len(r.hashes), dtype=bool)
        keep[r.dropped] = False
        r.hashes, r.lines = r.hashes[keep], r.lines[keep]
        r.good -= len(rows)
        r.bad += len(rows)
        r.bad_kinds["duplicate_id"] = r.bad_kinds.get("duplicate_id", 0) + len(rows)
    return reasons


def _write_quarantine(store: ClientStore, date: str, results: list[SegmentResult], extra: list[BadRecord],
                      summary: dict[str, Any]) -> None:
    with store.dataset(store.quarantine(date)) as ds:
        with ds.open("records.ndjson.gz") as f:
            with gzip.GzipFile(fileobj=f, mode="wb", compresslevel=3, mtime=0) as gz:
                for r in results:
                    if r.bad_path:
                        with gzip.open(r.bad_path, "rb") as src:
                            for block in iter(lambda: src.read(1 << 20), b""):
                                gz.write(block)
                for b in extra:
                    gz.write(orjson.dumps(b.to_dict()) + b"\n")
        ds.write_json("summary.json", summary)
        ds.meta.update({"kind": "quarantine", "bad": summary["bad"], "records": summary["records"]})
