"""The ``sample`` step: training frames (users at past cutoffs, with labels) under ``training/{date}/``.

One pass over today's columnar event log (``events/{date}/``, written by
``extract``: no JSON is parsed twice) computes, for every cutoff any
sightline needs, the labels of every sightline and an inclusion probability
per example (see :mod:`sightlines.sampling`); the kept rows get their
features as of the cutoff: from that day's stored feature table when there is
one with the same schema, otherwise rebuilt by time travel from the event
history.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .._resources import cpu_budget
from .._timeparse import end_of_day
from ..catalog import Sightline, catalog
from ..config import ClientConfig, Roles
from ..errors import NotFoundError
from ..features import Chunk, feature_columns, to_table
from ..outcomes import labels, plan_cutoffs
from ..result import STATUS_OK, StepResult
from ..sampling import inclusion_probability, uniform_hash, user_hashes
from ..schema import Schema, load_schema
from ..storage import ClientStore, Storage, date_str
from ._extract import PARQUET_OPTIONS
from ._scan import map_jobs

log = logging.getLogger(__name__)

__all__ = ["sample", "client_history_days", "cutoff_salt"]

_DAY = 86400.0


def cutoff_salt(cutoff: dt.date, seed: int) -> int:
    """The hash salt of a cutoff: one uniform number per (user, cutoff) for all sightlines."""
    return (cutoff.toordinal() * 1_000_003 + seed * 7_919) & 0xFFFFFFFFFFFFFFFF


@dataclass(frozen=True)
class _Plan:
    """Which sightlines use which cutoffs, and how many examples each wants from each cutoff."""

    sightlines: list[dict[str, Any]]
    cutoffs: dict[str, list[str]]  # cutoff -> sightline names
    budget: dict[str, float]  # "name@cutoff" -> examples wanted
    travel: dict[str, bool]  # cutoff -> rebuild features by time travel
    n_est: int
    seed: int


@dataclass(frozen=True)
class _SampleJob:
    root: str
    storage_options: dict[str, Any]
    client: str
    schema: dict[str, Any]
    roles: dict[str, Any]
    label: str  # the segment, e.g. part-00000-00003
    files: dict[str, str]  # table name ("users", "ev0"...) -> client-relative key
    event_lists: dict[str, str]  # table name -> event list path
    out_dir: str
    plan: _Plan
    dropped: tuple[int, ...] = ()  # rows of the segment's users to skip (duplicates)


@dataclass
class _SampleResult:
    parts: dict[tuple[str, str], str] = field(default_factory=dict)  # (cutoff, segment) -> local parquet
    counts: dict[str, dict[str, float]] = field(default_factory=dict)  # name@cutoff -> counters
    users: int = 0


def client_history_days(store: ClientStore, date: str, schema: Schema) -> float:
    """How far back the client's event history reaches (99th percentile of users' first events), in days."""
    prefix = store.features(date)
    cols = [f"{e.name}.days_since_first" for e in schema.events]
    best = []
    for key in store.dataset_files(prefix, ".parquet"):
        t = store.read_parquet(key, columns=cols)
        arr = np.column_stack([t.column(c).to_numpy(zero_copy_only=False) for c in cols]) if cols else np.zeros((0, 1))
        with np.errstate(invalid="ignore"):
            m = np.nanmax(np.where(np.isnan(arr), -1.0, arr), axis=1) if len(arr) else np.zeros(0)
        best.append(m[m >= 0])
    allv = np.concatenate(best) if best else np.zeros(0)
    if len(allv) == 0:
        return 0.0
    return float(np.percentile(allv, 99))


def _read_chunk(job: _SampleJob) -> Chunk:
    """The segment's users and events, as the extract step stored them."""
    store = Storage(job.root, storage_options=job.storage_options).client(job.client)

    def read(key: str) -> pa.Table:
        return store.read_parquet(key)

    events = {job.event_lists[name]: read(key) for name, key in job.files.items() if name != "users"}
    chunk = Chunk.from_tables(read(job.files["users"]), events)
    if job.dropped:  # duplicates the extract step removed from the feature table
        keep = np.ones(chunk.n, dtype=bool)
        keep[list(job.dropped)] = False
        chunk = chunk.take(np.flatnonzero(keep))
    return chunk


def _sample_segment(job: _SampleJob) -> _SampleResult:
    """Worker: labels, inclusion and (time-travel) features for one segment of users."""
    plan = job.plan
    schema = Schema.from_dict(job.schema)
    roles = Roles(**job.roles)
    sl = {d["name"]: Sightline.from_dict(d) for d in plan.sightlines}
    cut_dates = {c: dt.date.fromisoformat(c) for c in plan.cutoffs}
    res = _SampleResult()
    chunk = _read_chunk(job)
    n = chunk.n
    if n == 0:
        return res
    res.users += n
    hashes = user_hashes(chunk.user_ids)
    for c, names in plan.cutoffs.items():
        start = end_of_day(cut_dates[c])
        u = uniform_hash(hashes, cutoff_salt(cut_dates[c], plan.seed))
        keep_any = np.zeros(n, dtype=bool)
        cols_extra: dict[str, np.ndarray] = {}
        for name in names:
            s = sl[name]
            out = labels(chunk, s, roles, start=start, end=start + s.horizon * _DAY)
            cand = ~np.isnan(out.label)
            n_cand = int(cand.sum())
            pi = inclusion_probability(out.label, out.positive, keep_positives=s.keeps_positives,
                                       budget=plan.budget[f"{name}@{c}"],
                                       expected_candidates=plan.n_est * n_cand / n)
            incl = u < pi
            keep_any |= incl
            cols_extra[f"y__{name}"] = np.where(incl, out.label, np.nan)
            cols_extra[f"w__{name}"] = np.where(incl, out.weight, 0.0)
            cols_extra[f"pi__{name}"] = np.where(incl, pi, 0.0)
            cnt = res.counts.setdefault(f"{name}@{c}", {"candidates": 0, "positives": 0, "sampled": 0,
                                                      "label_sum": 0.0})
            cnt["candidates"] += n_cand
            cnt["positives"] += int((out.positive & cand).sum())
            cnt["sampled"] += int(incl.sum())
            cnt["label_sum"] += float(np.nansum(np.where(cand, out.label * out.weight, 0.0)))
        rows = np.flatnonzero(keep_any)
        if len(rows) == 0:
            continue
        extra = {"_u": u[rows], **{k: v[rows] for k, v in cols_extra.items()}}
        if plan.travel[c]:
            sub = chunk.take(rows)
            feats = feature_columns(sub, schema, as_of=start, time_travel=True)
            table = to_table(sub.user_ids, feats, extra=extra)
        else:
            table = to_table([chunk.user_ids[i] for i in rows.tolist()], {}, extra=extra)
        path = os.path.join(job.out_dir, f"c{c}-{job.label}.parquet")
        pq.write_table(table, path, **PARQUET_OPTIONS)
        res.parts[(c, job.label)] = path
    return res


def _join_stored(store: ClientStore, cutoff: str, label_parts: list[str], out_path: str) -> int:
    """Attach the stored feature table of ``cutoff`` to the sampled label rows."""
    labels_t = pa.concat_tables([pq.read_table(p) for p in label_parts]) if label_parts else None
    if labels_t is None or labels_t.num_rows == 0:
        return 0
    wanted = labels_t.column("user_id")
    pieces = []
    for key in store.dataset_files(store.features(cutoff), ".parquet"):
        t = store.read_parquet(key)
        pieces.append(t.filter(pc.is_in(t.column("user_id"), value_set=wanted)))
    feats = pa.concat_tables(pieces)
    joined = labels_t.join(feats, keys="user_id", join_type="inner")
    # keep a deterministic row order: that of the label rows
    order = pc.index_in(joined.column("user_id"), value_set=wanted)
    joined = joined.take(pc.sort_indices(order))
    pq.write_table(joined, out_path, **PARQUET_OPTIONS)
    return joined.num_rows


def sample(client: str, date: dt.date | str, storage: Storage, *, config: ClientConfig | None = None,
           workers: int | None = None) -> StepResult:
    """Build the training frames of ``(client, date)`` for every available sightline.

    Parameters
    ----------
    client : str
    date : datetime.date or str
        The run date ``T``; labels come from events up to the end of ``T``.
    storage : Storage
    config : ClientConfig, optional
        Sample size, seed and the client's catalogue.
    workers : int, optional
        Worker processes; defaults to the core budget.

    Returns
    -------
    StepResult
        ``details["sightlines"]`` says for each sightline whether it is
        available, on which cutoffs, and how many candidates, positives and
        sampled examples it has; unavailable ones carry the reason.

    Raises
    ------
    NotFoundError
        Today's features (the ``extract`` step) or snapshot are missing.
    """
    t0 = time.perf_counter()
    date = date_str(date)
    day = dt.date.fromisoformat(date)
    config = config or ClientConfig()
    store = storage.client(client)
    fman = store.manifest(store.features(date))
    if fman is None:
        raise NotFoundError(f"client {client}: no features for {date}; run `sightlines step extract` first",
                            record_id=client, path=store.features(date))
    schema = load_schema(store, int(fman["schema_version"]))
    assert schema is not None
    history = client_history_days(store, date, schema)
    tr = config.training
    sls = catalog(config)
    info: dict[str, dict[str, Any]] = {}
    cutoffs: dict[str, list[str]] = {}
    budget: dict[str, float] = {}
    for s in sls:
        cs, reason = plan_cutoffs(s, day, history)
        info[s.name] = {"available": not reason, "reason": reason, "cutoffs": [c.isoformat() for c in cs],
                        "horizon": s.horizon, "objective": s.objective}
        for c in cs:
            cutoffs.setdefault(c.isoformat(), []).append(s.name)
            budget[f"{s.name}@{c.isoformat()}"] = tr.sample_size / len(cs)
    travel = {}
    for c in cutoffs:
        m = store.manifest(store.features(c))
        travel[c] = not (m is not None and m.get("schema_fingerprint") == schema.fingerprint())
    plan = _Plan(sightlines=[s.to_dict() for s in sls if info[s.name]["available"]],
                 cutoffs={c: cutoffs[c] for c in sorted(cutoffs)}, budget=budget, travel=travel,
                 n_est=int(fman["n_users"]), seed=tr.seed)
    workers = workers or cpu_budget()
    tmp_parent = os.path.dirname(storage._path(store.key("training"))) if storage.is_local else None
    if tmp_parent:
        os.makedirs(tmp_parent, exist_ok=True)
    log.info("sample %s %s: %d sightline(s) on %d cutoff(s) (%d by time travel), history %.0f days",
             client, date, len(plan.sightlines), len(plan.cutoffs), sum(travel.values()), history)
    with tempfile.TemporaryDirectory(prefix=".sample-", dir=tmp_parent) as out_dir:
        results: list[_SampleResult] = []
        if plan.cutoffs:
            eman = store.manifest(store.events(date))
            if eman is None:
                raise NotFoundError(f"client {client}: no event log for {date}; re-run `sightlines step extract`",
                                    record_id=client, path=store.events(date))
            files = store.dataset_files(store.events(date), ".parquet")
            jobs = []
            for label in eman["segments"]:
                mine = {k.split("/")[-2]: k for k in files if k.endswith(f"/{label}.parquet")}
                jobs.append(_SampleJob(root=storage.url, storage_options=storage.storage_options, client=client,
                                       schema=schema.to_dict(), roles=asdict(config.roles), label=label, files=mine,
                                       event_lists=eman["event_lists"], out_dir=out_dir, plan=plan,
                                       dropped=tuple((eman.get("dropped") or {}).get(label, ()))))
            results = map_jobs(_sample_segment, jobs, workers, label=f"sample {client} {date}")
        counts: dict[str, dict[str, float]] = {}
        for r in results:
            for k, v in r.counts.items():
                tot = counts.setdefault(k, {"candidates": 0, "positives": 0, "sampled": 0, "label_sum": 0.0})
                for kk, vv in v.items():
                    tot[kk] += vv
        with store.dataset(store.training(date)) as ds:
            for c in plan.cutoffs:
                keyed = sorted((k, p) for r in results for k, p in r.parts.items() if k[0] == c)
                parts = [p for _, p in keyed]
                if travel[c]:
                    for (_, label), p in keyed:
                        ds.add_file(f"c={c}/{label}.parquet", p)
                else:
                    joined = os.path.join(out_dir, f"joined-{c}.parquet")
                    if _join_stored(store, c, parts, joined):
                        ds.add_file(f"c={c}/part-00000.parquet", joined)
            for name, d in info.items():
                if d["available"]:
                    d["counts"] = {c: counts.get(f"{name}@{c}", {}) for c in d["cutoffs"]}
                    d["sampled"] = int(sum(v.get("sampled", 0) for v in d["counts"].values()))
                    d["positives"] = int(sum(v.get("positives", 0) for v in d["counts"].values()))
            ds.meta.update({
                "kind": "training", "client": client, "date": date, "schema_version": schema.version,
                "schema_fingerprint": schema.fingerprint(), "history_days": round(history, 1),
                "n_users": int(fman["n_users"]), "sample_size": tr.sample_size, "seed": tr.seed,
                "cutoffs": {c: {"features": "time_travel" if travel[c] else "stored", "sightlines": plan.cutoffs[c]}
                            for c in plan.cutoffs},
                "sightlines": info,
            })
    unavailable = {k: v["reason"] for k, v in info.items() if not v["available"]}
    warnings = tuple(f"{k} unavailable: {v}" for k, v in sorted(unavailable.items()))
    seconds = time.perf_counter() - t0
    n_rows = sum(d.get("sampled", 0) for d in info.values())
    log.info("sample %s %s: %d examples over %d sightlines in %.1f s", client, date, n_rows,
             len(plan.sightlines), seconds)
    return StepResult(step="sample", client=client, date=day, status=STATUS_OK,
                      outputs={"training": store.training(date)}, n_records=n_rows, warnings=warnings,
                      details={"history_days": round(history, 1), "sightlines": info, "seconds": round(seconds, 3)})
