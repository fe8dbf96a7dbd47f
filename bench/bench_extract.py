"""Extraction speed and memory: raw gzip NDJSON -> committed parquet, against DuckDB on the same files.

Usage::

    ./dev.sh bench bench_extract.py [--users 100000 1000000] [--workers 2] [--repeat 3]

For each size, generates a synthetic client once (cached under bench/out/),
learns its schema with one warm-up run, then times ``extract`` end to end
(reading the files, decoding, features, writing and committing parquet)
``--repeat`` times in fresh processes, each a first run of the day (the
previous run's outputs are removed before the clock starts, as a new day has
none to replace), and a DuckDB ``read_json`` scan that
computes comparable aggregates (per-user counts and sums over windows of the
three event lists) over the same files with the same number of threads. It
prints the medians, the ratio ours/DuckDB (>1: we are faster) and the peak
RSS of the extraction (parent and largest worker).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"

_CHILD = r"""
import json, resource, sys, time
from sightlines.storage import Storage
from sightlines.pipeline import extract
root, client, date, workers = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
store = Storage(root).client(client)
for prefix in (store.features(date), store.events(date), store.quarantine(date)):  # the day's first run, as daily
    store.delete(prefix)                                                           # (not the replacement of a run)
t = time.perf_counter()
r = extract(client, date, Storage(root), workers=workers)
secs = time.perf_counter() - t
print(json.dumps({"seconds": secs, "users": r.n_records, "phases": r.details.get("phases", {}),
                  "rss_self_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "rss_children_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))
"""

_DUCKDB_CHILD = r"""
import json, sys, time, duckdb
pattern, threads, sql_path, out = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
con = duckdb.connect()
con.execute(f"SET threads={threads}")
con.execute("SET enable_progress_bar=false")
sql = open(sql_path).read().replace("__PATTERN__", pattern)
s = time.perf_counter()
con.execute(f"COPY ({sql}) TO '{out}' (FORMAT parquet, COMPRESSION zstd)")
secs = time.perf_counter() - s
users = con.execute(f"SELECT count(*) FROM read_parquet('{out}')").fetchone()[0]
print(json.dumps({"seconds": secs, "users": users}))
"""


_DUCKDB_MINIMAL = r"""
import json, sys, time, duckdb
pattern, threads = sys.argv[1], int(sys.argv[2])
con = duckdb.connect()
con.execute(f"SET threads={threads}")
con.execute("SET enable_progress_bar=false")
t = "epoch(coalesce(TRY_CAST(e.time AS TIMESTAMPTZ), to_timestamp(TRY_CAST(e.time AS DOUBLE))))"
A = "1795564800"
cols = ("{'id': 'VARCHAR', 'purchases': 'STRUCT(time VARCHAR, total DOUBLE)[]', "
        "'messages': 'STRUCT(time VARCHAR, opened VARCHAR)[]', 'pageviews': 'STRUCT(time VARCHAR)[]'}")
q = (f"SELECT count(*), sum(len(list_filter(purchases, lambda e: {t} > {A} - 7 * 86400))), "
     f"sum(list_sum(list_transform(list_filter(purchases, lambda e: {t} > {A} - 365 * 86400), lambda e: e.total))), "
     f"sum(len(list_filter(messages, lambda e: {t} > {A} - 30 * 86400))), "
     f"sum(len(list_filter(pageviews, lambda e: {t} > {A} - 30 * 86400))) "
     f"FROM read_json('{pattern}', format='newline_delimited', ignore_errors=true, "
     f"maximum_object_size=104857600, columns={cols})")
s = time.perf_counter()
row = con.execute(q).fetchone()
print(json.dumps({"seconds": time.perf_counter() - s, "users": row[0]}))
"""


def duckdb_sql(schema, as_of: float) -> str:
    """A DuckDB query computing the same feature columns as ``extract`` (comparable aggregates).

    Generated from the client's schema: per list of timestamped records, the
    counts per window, days since first and last, and per numeric field and
    flag the sums and means per window, and the categorical level counts;
    per scalar, the timestamp age, the number, or the level code. Times may
    be ISO strings or epoch seconds, as in the profiles. Rows that do not fit
    the declared types are skipped by DuckDB (``ignore_errors``), so it does
    a little less work than we do.
    """
    def ts(x: str) -> str:
        return f"epoch(coalesce(TRY_CAST({x} AS TIMESTAMPTZ), to_timestamp(TRY_CAST({x} AS DOUBLE))))"

    def q(name: str) -> str:
        return '"' + name.replace('"', '""') + '"'

    def json_path(path) -> str:
        return "$." + ".".join(path)

    A = repr(float(as_of))
    ctes, joins, select = [], [], ["src.id AS user_id"]
    struct_fields = {}
    for ev in schema.events:
        fields = [ev.time_field, *ev.numeric, *ev.flags, *ev.lengths, *ev.levels]
        struct_fields[ev.path[0]] = fields
    scal = []
    for sc in schema.scalars:
        expr = f"json_extract_string(src.doc, '{json_path(sc.path)}')"
        if sc.kind == "timestamp":
            scal.append(f"({A} - {ts(expr)}) / 86400 AS {q(sc.name)}")
        elif sc.kind == "categorical":
            levels = ", ".join("'" + lv.replace("'", "''") + "'" for lv in sc.levels)
            scal.append(f"coalesce(list_position([{levels}], {expr}) - 1, CASE WHEN {expr} IS NULL THEN NULL "
                        f"ELSE {len(sc.levels)} END) AS {q(sc.name)}")
        else:
            scal.append(f"TRY_CAST({expr} AS DOUBLE) AS {q(sc.name)}")
    for lst in schema.lists:
        scal.append(f"json_array_length(src.doc, '{json_path(lst.path)}') AS {q(lst.name + '.len')}")
    select += scal
    for ev in schema.events:
        e = ev.path[0]
        parts = [f"{ts('x.' + q(ev.time_field))} AS t"]
        for f in ev.numeric:
            parts.append(f"TRY_CAST(x.{q(f)} AS DOUBLE) AS {q('v_' + f)}")
        for f in ev.flags:
            parts.append(f"{ts('x.' + q(f))} AS {q('f_' + f)}")
        for f in ev.lengths:
            parts.append(f"json_array_length(x.{q(f)}) AS {q('v_' + f + '_n')}")
        for f in ev.levels:
            parts.append(f"x.{q(f)} AS {q('c_' + f)}")
        ctes.append(f"e_{e} AS (SELECT src.id, {', '.join(parts)} FROM src, UNNEST(src.s.{q(e)}) AS u(x))")
        aggs = [f"count(*) FILTER (WHERE t <= {A}) AS n"]
        for w in schema.windows:
            aggs.append(f"count(*) FILTER (WHERE t <= {A} AND t > {A} - {w * 86400}) AS n_{w}d")
        aggs += [f"({A} - min(t) FILTER (WHERE t <= {A})) / 86400 AS dsf",
                 f"({A} - max(t) FILTER (WHERE t <= {A})) / 86400 AS dsl"]
        for f in [*ev.numeric, *(x + "_n" for x in ev.lengths)]:
            for w in schema.windows:
                cond = f"t <= {A} AND t > {A} - {w * 86400}"
                aggs.append(f"sum({q('v_' + f)}) FILTER (WHERE {cond}) AS {q(f + '_s' + str(w))}")
                aggs.append(f"avg({q('v_' + f)}) FILTER (WHERE {cond}) AS {q(f + '_m' + str(w))}")
        for f in ev.flags:
            for w in schema.windows:
                cond = f"t <= {A} AND t > {A} - {w * 86400}"
                aggs.append(f"sum(({q('f_' + f)} <= {A})::INT) FILTER (WHERE {cond}) AS {q(f + '_s' + str(w))}")
                aggs.append(f"avg(coalesce(({q('f_' + f)} <= {A})::INT, 0)) FILTER (WHERE {cond}) AS {q(f + '_m' + str(w))}")
            aggs.append(f"({A} - max({q('f_' + f)}) FILTER (WHERE {q('f_' + f)} <= {A})) / 86400 AS {q(f + '_dsl')}")
        for f, levels in ev.levels.items():
            for lv in levels:
                lvq = lv.replace("'", "''")
                for w in (30, 365):
                    aggs.append(f"count(*) FILTER (WHERE {q('c_' + f)} = '{lvq}' AND t <= {A} AND t > {A} - {w * 86400}) "
                                f"AS {q(f + '=' + lv + str(w))}")
        ctes.append(f"a_{e} AS (SELECT id, {', '.join(aggs)} FROM e_{e} GROUP BY id)")
        joins.append(f"LEFT JOIN a_{e} ON a_{e}.id = src.id")
        select.append(f"a_{e}.* EXCLUDE (id)")
    structure = {e: [{f: "VARCHAR" for f in fs}] for e, fs in struct_fields.items()}
    structure_sql = json.dumps(structure).replace("'", "''")
    src = ("src AS (SELECT json_extract_string(doc, '$.id') AS id, doc, "
           f"json_transform(doc, '{structure_sql}') AS s "
           "FROM read_json_objects('__PATTERN__', format='newline_delimited', ignore_errors=true, "
           "maximum_object_size=104857600) AS r(doc))")
    return f"WITH {src}, {', '.join(ctes)} SELECT {', '.join(select)} FROM src {' '.join(joins)}"


def _run(code: str, *args: str, env: dict[str, str] | None = None) -> dict:
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, check=False)
    if out.returncode != 0:
        raise SystemExit(f"child failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def ensure_client(users: int, date: str) -> tuple[str, str]:
    from sightlines.storage import Storage
    from sightlines.synth import generate_client

    root = str(OUT / f"extract-{users}")
    client = "bench"
    store = Storage(root).client(client)
    if not store.list(store.raw(date)):
        t = time.perf_counter()
        generate_client(store, users=users, date=date, seed=1, bad_fraction=0.002)
        print(f"  generated {users:,} users in {time.perf_counter() - t:.1f} s", flush=True)
    return root, client


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--users", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--date", default="2026-11-24")
    args = ap.parse_args()
    print(f"machine: {platform.platform()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    env = dict(os.environ, SIGHTLINES_LOG_LEVEL="WARNING")
    for users in args.users:
        print(f"== {users:,} users, {args.workers} worker(s)", flush=True)
        root, client = ensure_client(users, args.date)
        raw = Path(root) / "clients" / client / "raw" / args.date
        files = sorted(raw.glob("*.ndjson.gz"))
        gz = sum(f.stat().st_size for f in files)
        print(f"  {len(files)} file(s), {gz / 1e6:.0f} MB gzip", flush=True)
        _run(_CHILD, root, client, args.date, str(args.workers), env=env)  # warm-up: learns the schema once
        from sightlines._timeparse import end_of_day
        from sightlines.schema import load_schema
        from sightlines.storage import Storage
        import datetime as dt

        schema = load_schema(Storage(root).client(client))
        sql_path = str(OUT / "duckdb-features.sql")
        Path(sql_path).write_text(duckdb_sql(schema, end_of_day(dt.date.fromisoformat(args.date))))
        ours, duck, minimal = [], [], []
        pattern = str(raw / "*.ndjson.gz")
        for _ in range(args.repeat):  # alternate, so all three see the same machine noise
            ours.append(_run(_CHILD, root, client, args.date, str(args.workers), env=env))
            duck.append(_run(_DUCKDB_CHILD, pattern, str(args.workers), sql_path,
                             str(OUT / "duckdb-features.parquet"), env=env))
            minimal.append(_run(_DUCKDB_MINIMAL, pattern, str(args.workers), env=env))
        o = statistics.median(r["seconds"] for r in ours)
        d = statistics.median(r["seconds"] for r in duck)
        n = ours[0]["users"]
        runs_o = ", ".join(f"{r['seconds']:.2f}" for r in ours)
        runs_d = ", ".join(f"{r['seconds']:.2f}" for r in duck)
        print(f"  ours:   median {o:6.2f} s  -> {n / o:9,.0f} users/s   (runs: {runs_o})")
        mn = statistics.median(r["seconds"] for r in minimal)
        print(f"  duckdb, same {len(schema.columns())} feature columns to parquet: median {d:6.2f} s -> "
              f"{duck[0]['users'] / d:9,.0f} users/s   (runs: {runs_d})")
        print(f"  duckdb, 5-aggregate scan only (a lower bound): median {mn:6.2f} s -> {n / mn:9,.0f} users/s")
        print(f"  ratio ours/duckdb, same feature columns (speed): {d / o:.2f}x")
        print(f"  ratio ours/duckdb, 5-aggregate scan (speed): {mn / o:.2f}x")
        phases = {k: statistics.median(r["phases"].get(k, 0.0) for r in ours) for k in ours[0]["phases"]}
        print("  our phases (median s): " + ", ".join(f"{k} {v:.2f}" for k, v in phases.items()))
        print(f"  peak RSS: parent {max(r['rss_self_mb'] for r in ours):.0f} MB, "
              f"largest worker {max(r['rss_children_mb'] for r in ours):.0f} MB", flush=True)
    print(f"(bench process peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB)")


if __name__ == "__main__":
    main()
