"""The ``extract`` step: a day's raw snapshot -> the feature table under ``features/{date}/``."""

from __future__ import annotations

import datetime as dt
import gzip
import logging
import os
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from .._resources import cpu_budget
from .._timeparse import end_of_day
from ..config import ClientConfig
from ..errors import DataQualityError, NotFoundError
from ..features import feature_columns, to_table
from ..profiles import BadRecord, iter_line_blocks, raw_files
from ..result import STATUS_OK, StepResult
from ..schema import Schema, diff_paths, discover_paths, learn_schema, load_schema, save_schema
from ..storage import ClientStore, Storage, date_str
from ._scan import ScanSpec, iter_chunks, map_files

log = logging.getLogger(__name__)

__all__ = ["extract", "learn_client_schema", "PARQUET_OPTIONS"]

#: how every parquet file of Sightlines is written (deterministic bytes for the same data)
PARQUET_OPTIONS: dict[str, Any] = {"compression": "zstd", "compression_level": 3, "write_statistics": True}
_ROW_GROUP = 65_536
_SAMPLE_USERS = 50_000
_NEW_KEYS_SAMPLE = 5_000


@dataclass
class FileResult:
    """What a worker reports about one snapshot file."""

    name: str
    part: str | None = None
    good: int = 0
    bad: int = 0
    blank: int = 0
    lenient: int = 0
    bad_kinds: dict[str, int] = field(default_factory=dict)
    bad_path: str | None = None
    hashes: list[np.ndarray] = field(default_factory=list)  # 64-bit hashes of the ids, in row order
    lines: list[np.ndarray] = field(default_factory=list)  # line number of each row
    present: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


@dataclass(frozen=True)
class _FileJob:
    spec: ScanSpec
    key: str
    out_dir: str
    index: int
    as_of: float


def _write_bad(path: str, records: list[BadRecord], handle: Any) -> Any:
    if handle is None:
        handle = gzip.open(path, "wb", compresslevel=3)
    for r in records:
        handle.write(orjson.dumps(r.to_dict()) + b"\n")
    return handle


def _extract_file(job: _FileJob) -> FileResult:
    """Worker: one snapshot file -> one local parquet part + statistics."""
    t0 = time.perf_counter()
    spec = job.spec
    store = spec.store()
    schema = spec.parsed_schema()
    assert schema is not None
    plan = spec.plan()
    name = job.key.rsplit("/", 1)[-1]
    res = FileResult(name=name)
    part = os.path.join(job.out_dir, f"part-{job.index:05d}.parquet")
    bad_path = os.path.join(job.out_dir, f"bad-{job.index:05d}.ndjson.gz")
    writer: pq.ParquetWriter | None = None
    bad_handle = None
    pending: list[pa.Table] = []
    pending_rows = 0
    present = Counter()
    kinds: Counter[str] = Counter()

    def flush() -> None:
        nonlocal writer, pending, pending_rows
        if not pending:
            return
        table = pa.concat_tables(pending)
        if writer is None:
            writer = pq.ParquetWriter(part, table.schema, **PARQUET_OPTIONS)
        writer.write_table(table, row_group_size=_ROW_GROUP)
        pending, pending_rows = [], 0

    try:
        for block, chunk in iter_chunks(spec, store, job.key, plan=plan, schema=schema):
            res.good += len(block.ids)
            res.blank += block.blank
            res.lenient += block.lenient
            if block.bad:
                res.bad += len(block.bad)
                kinds.update(b.kind for b in block.bad)
                bad_handle = _write_bad(bad_path, block.bad, bad_handle)
            if not block.ids:
                continue
            res.hashes.append(hash_ids(block.ids))
            res.lines.append(np.asarray(block.lines, dtype=np.int64))
            for sname, values in chunk.scalars.items():
                present[sname] += int(np.count_nonzero(~np.isnan(values)))
            for lname, values in chunk.lists.items():
                present[lname] += int(np.count_nonzero(~np.isnan(values)))
            cols = feature_columns(chunk, schema, as_of=job.as_of)
            pending.append(to_table(block.ids, cols))
            pending_rows += len(block.ids)
            if pending_rows >= _ROW_GROUP:
                flush()
        flush()
    finally:
        if writer is not None:
            writer.close()
        if bad_handle is not None:
            bad_handle.close()
    res.part = part if writer is not None else None
    res.bad_path = bad_path if bad_handle is not None else None
    res.bad_kinds = dict(kinds)
    res.present = dict(present)
    res.seconds = time.perf_counter() - t0
    return res


def _sample_users(store: ClientStore, keys: list[str], limit: int) -> list[dict[str, Any]]:
    """The first good-looking JSON objects of the snapshot, spread over its files (deterministic)."""
    per_file = max(1, -(-limit // max(1, len(keys))))
    users: list[dict[str, Any]] = []
    for key in keys:
        taken = 0
        for _, lines in iter_line_blocks(store, key, max_lines=per_file * 2):
            for line in lines:
                if line[:3] == b"\xef\xbb\xbf":
                    line = line[3:]
                try:
                    obj = orjson.loads(line)
                except orjson.JSONDecodeError:
                    continue
                if type(obj) is dict:
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
    sample = _sample_users(store, keys, _SAMPLE_USERS)
    schema = learn_schema(sample, roles=config.roles, learned_from=date)
    if save:
        schema = save_schema(store, schema)
        log.info("learned feature schema v%d of %s from %s: %d columns (%d users sampled)", schema.version,
                 store.client, date, len(schema.columns()), schema.sample_users)
    return schema


def hash_ids(ids: list[str]) -> np.ndarray:
    """Stable 64-bit hashes of user ids (the same in every process)."""
    from pandas.util import hash_array

    return hash_array(np.asarray(ids, dtype=object), categorize=False)


def _cross_file_duplicates(results: list[FileResult]) -> dict[int, list[int]]:
    """Rows (per file index) whose id already appeared in an earlier file; the first occurrence stays.

    Only 8 bytes per user are held: ids are compared by hash, and the few
    colliding ones are checked against the real ids in the parquet parts.
    """
    hashes = [np.concatenate(r.hashes) if r.hashes else np.zeros(0, np.uint64) for r in results]
    file_of = np.concatenate([np.full(len(h), i, dtype=np.int32) for i, h in enumerate(hashes)])
    row_of = np.concatenate([np.arange(len(h), dtype=np.int64) for h in hashes])
    h = np.concatenate(hashes)
    order = np.argsort(h, kind="stable")
    hs = h[order]
    same = np.flatnonzero(hs[1:] == hs[:-1])
    if len(same) == 0:
        return {}
    cand = np.unique(np.concatenate([order[same], order[same + 1]]))
    files = sorted(set(file_of[cand].tolist()))
    ids_of = {fi: pq.read_table(results[fi].part, columns=["user_id"]).column(0).to_pylist() for fi in files}
    seen: set[str] = set()
    dups: dict[int, list[int]] = {}
    for pos in cand:  # ascending position = file order, then row order
        fi, row = int(file_of[pos]), int(row_of[pos])
        uid = ids_of[fi][row]
        if uid in seen:
            dups.setdefault(fi, []).append(row)
        else:
            seen.add(uid)
    return dups


def _drop_rows(part: str, rows: list[int]) -> None:
    table = pq.read_table(part)
    keep = np.ones(table.num_rows, dtype=bool)
    keep[rows] = False
    table = table.filter(pa.array(keep))
    pq.write_table(table, part, row_group_size=_ROW_GROUP, **PARQUET_OPTIONS)


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
        Worker processes (one file each at a time); defaults to the core budget.

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
    if schema is None:
        schema = learn_client_schema(store, date, config)
        warnings.append(f"learned a new feature schema (v{schema.version}, {len(schema.columns())} columns)")
    as_of = end_of_day(dt.date.fromisoformat(date))
    spec = ScanSpec(root=storage.url, storage_options=storage.storage_options, client=client, date=date,
                    schema=schema.to_dict(), roles=asdict(config.roles), latest=as_of + 86400.0, labels=False)
    workers = workers or cpu_budget()
    tmp_parent = os.path.dirname(storage._path(store.key("features"))) if storage.is_local else None
    if tmp_parent:
        os.makedirs(tmp_parent, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".extract-", dir=tmp_parent) as out_dir:
        jobs = [_FileJob(spec=spec, key=k, out_dir=out_dir, index=i, as_of=as_of) for i, k in enumerate(keys)]
        log.info("extract %s %s: %d file(s), %d worker(s), schema v%d", client, date, len(keys),
                 min(workers, len(keys)), schema.version)
        results = map_files(_extract_file, jobs, workers)

        # an id repeated in a later file is a bad record too (the first occurrence stays)
        dups = _cross_file_duplicates(results) if len(results) > 1 else {}
        extra_bad: list[BadRecord] = []
        for fi, rows in sorted(dups.items()):
            r = results[fi]
            lines_of = np.concatenate(r.lines)
            ids = pq.read_table(r.part, columns=["user_id"]).column(0).to_pylist()
            wanted = {int(lines_of[row]): ids[row] for row in rows}
            for first, lines in iter_line_blocks(store, keys[fi]):
                for off, line in enumerate(lines):
                    if first + off in wanted:
                        extra_bad.append(BadRecord(r.name, first + off, "duplicate_id",
                                                   f"duplicate id {wanted[first + off]!r} (also in an earlier file)",
                                                   line[:2000].decode("utf-8", "replace")))
            _drop_rows(r.part, rows)  # type: ignore[arg-type]
            r.good -= len(rows)
            r.bad += len(rows)
            r.bad_kinds["duplicate_id"] = r.bad_kinds.get("duplicate_id", 0) + len(rows)

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

        # keys that appeared or vanished since the schema was learned (reported, never added silently)
        sample = _sample_users(store, keys, _NEW_KEYS_SAMPLE)
        n_sample, stats = discover_paths(sample)
        new_keys, _ = diff_paths(schema, n_sample, stats)
        present: Counter[str] = Counter()
        for r in results:
            present.update(r.present)
        vanished = [s.name for s in schema.scalars if present.get(s.name, 0) == 0]
        vanished += [x.name for x in schema.lists if present.get(x.name, 0) == 0]
        if new_keys:
            warnings.append(f"{len(new_keys)} new key(s) not in schema v{schema.version} (not added; "
                            f"`sightlines schema refresh` to adopt): {', '.join(new_keys[:10])}"
                            + (" ..." if len(new_keys) > 10 else ""))
        if vanished:
            warnings.append(f"{len(vanished)} schema column(s) empty today: {', '.join(vanished[:10])}"
                            + (" ..." if len(vanished) > 10 else ""))

        prefix = store.features(date)
        with store.dataset(prefix) as ds:
            for r in results:
                if r.part:
                    ds.add_file(os.path.basename(r.part), r.part)
            ds.meta.update({
                "kind": "features", "client": client, "date": date, "as_of": as_of, "n_users": good,
                "schema_version": schema.version, "schema_fingerprint": schema.fingerprint(),
                "n_columns": len(schema.columns()), "new_keys": new_keys, "vanished_keys": vanished,
                "quality": summary,
            })
    seconds = time.perf_counter() - t0
    details = {
        "users": good, "bad_records": bad, "bad_fraction": summary["bad_fraction"], "bad_by_kind": summary["bad_by_kind"],
        "blank_lines": summary["blank_lines"], "files": len(keys), "schema_version": schema.version,
        "columns": len(schema.columns()), "new_keys": new_keys, "vanished_keys": vanished,
        "seconds": round(seconds, 3), "users_per_second": round(good / seconds, 1) if seconds else None,
    }
    log.info("extract %s %s: %d users, %d bad, %.1f s", client, date, good, bad, seconds)
    return StepResult(step="extract", client=client, date=dt.date.fromisoformat(date), status=STATUS_OK,
                      outputs={"features": prefix}, n_records=good, warnings=tuple(warnings), details=details)


def _write_quarantine(store: ClientStore, date: str, results: list[FileResult], extra: list[BadRecord],
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
