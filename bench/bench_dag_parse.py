"""Benchmark parsing the DAG folder with a registry of N clients (default 1,000 and 5,000).

For each N, writes ``registry.json`` with N clients into a temporary storage
root, then parses ``dags/`` with Airflow's own ``DagBag`` in a fresh process
(so every run pays the same imports) and prints: DAGs found, import errors,
tasks, the DagBag parse time (what the DAG processor spends in the file), the
time to build one client's DAG the way a running task does
(``get_parsing_context`` set), and peak RSS. Optionally (``--serialize``) it
also times serialising every DAG, which the DAG processor does after parsing.

    ./dev.sh bench bench_dag_parse.py
    python bench/bench_dag_parse.py 1000 5000 --serialize --repeat 3

Airflow's own import time is reported separately: the DAG processor has
imported Airflow before it parses any file.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

_CHILD = r"""
import json, os, resource, sys, time
mode = sys.argv[2]
if mode == "task":
    # what a task runner sets before it parses the file (see airflow.sdk get_parsing_context)
    os.environ["_AIRFLOW_PARSING_CONTEXT_DAG_ID"] = sys.argv[3]
    os.environ["_AIRFLOW_PARSING_CONTEXT_TASK_ID"] = "extract"
t0 = time.perf_counter()
from airflow.dag_processing.dagbag import DagBag
t1, c1 = time.perf_counter(), time.process_time()
bag = DagBag(dag_folder=sys.argv[1])
t2, c2 = time.perf_counter(), time.process_time()
out = {"airflow_import_s": t1 - t0, "parse_s": t2 - t1, "parse_cpu_s": c2 - c1, "dags": len(bag.dags),
       "tasks": sum(len(d.tasks) for d in bag.dags.values()), "import_errors": bag.import_errors,
       "has_fleet": "sightlines_fleet" in bag.dags}
if mode == "serialize":
    from airflow.serialization.serialized_objects import DagSerialization
    t4 = time.perf_counter()
    for d in bag.dags.values():
        DagSerialization.to_dict(d)
    out["serialize_s"] = time.perf_counter() - t4
out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print("RESULT " + json.dumps(out))
"""


def write_registry(root: Path, n: int) -> None:
    """A registry of ``n`` clients with default configs (a few with catalogue changes)."""
    clients: dict[str, dict] = {}
    for i in range(n):
        cfg: dict = {}
        if i % 100 == 7:
            cfg = {"disabled_sightlines": ["pv_30"]}
        clients[f"client-{i:05d}"] = cfg
    root.mkdir(parents=True, exist_ok=True)
    (root / "registry.json").write_text(json.dumps({"version": 1, "fleet": {}, "clients": clients}))


def _child(mode: str, env: dict[str, str], *extra: str) -> dict:
    out = subprocess.run([sys.executable, "-c", _CHILD, str(REPO / "dags"), mode, *extra], env=env,
                         capture_output=True, text=True, timeout=1800, check=False)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if out.returncode != 0 or line is None:
        raise RuntimeError(f"parse ({mode}) failed:\n{out.stderr[-3000:]}")
    return json.loads(line[len("RESULT "):])


def run_once(n: int, serialize: bool, airflow_home: Path) -> dict:
    """Parse the DAG folder with ``n`` clients in a fresh process; then as a task of one client would."""
    root = Path(tempfile.mkdtemp(prefix=f"bench-parse-{n}-"))
    try:
        write_registry(root, n)
        env = dict(os.environ, SIGHTLINES_ROOT=str(root), AIRFLOW_HOME=str(airflow_home),
                   AIRFLOW__CORE__LOAD_EXAMPLES="False", AIRFLOW__CORE__DAGS_FOLDER=str(REPO / "dags"),
                   # measure the parse, not Airflow's default 30 s guard against slow files
                   AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT="600",
                   AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{airflow_home / 'airflow.db'}")
        full = _child("serialize" if serialize else "full", env)
        task = _child("task", env, f"sightlines__client-{n // 2:05d}")
        full["task_parse_s"] = task["parse_s"]
        full["task_parse_dags"] = task["dags"]
        return full
    finally:
        shutil.rmtree(root, ignore_errors=True)


def machine() -> str:
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu)
    except OSError:
        pass
    load = os.getloadavg() if hasattr(os, "getloadavg") else ("?",)
    return (f"{cpu}; {len(os.sched_getaffinity(0))} core(s) usable; Python {platform.python_version()}; "
            f"load average {load[0]:.2f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clients", nargs="*", type=int, default=[1000, 5000], help="registry sizes")
    parser.add_argument("--repeat", type=int, default=1, help="runs per size (the best is reported too)")
    parser.add_argument("--serialize", action="store_true", help="also time serialising every DAG")
    args = parser.parse_args(argv)
    import airflow

    print(f"machine: {machine()}; Airflow {airflow.__version__}")
    home = Path(tempfile.mkdtemp(prefix="bench-parse-home-"))
    try:
        for n in args.clients:
            runs = [run_once(n, args.serialize, home) for _ in range(args.repeat)]
            for r in runs:
                if r["import_errors"]:
                    print(f"  IMPORT ERRORS: {r['import_errors']}")
                extra = f", serialise {r['serialize_s']:.2f} s" if "serialize_s" in r else ""
                print(f"{n:6d} clients: {r['dags']:6d} DAGs ({r['tasks']:,} tasks, fleet DAG: {r['has_fleet']}), "
                      f"DagBag parse {r['parse_s']:.2f} s wall / {r['parse_cpu_s']:.2f} s CPU "
                      f"({1000 * r['parse_s'] / max(1, r['dags']):.2f} ms/DAG), "
                      f"task-time parse {r.get('task_parse_s', float('nan')) * 1000:.0f} ms "
                      f"({r.get('task_parse_dags')} DAG){extra}; Airflow import {r['airflow_import_s']:.2f} s; "
                      f"peak RSS {r['peak_rss_mb']:.0f} MB")
            if len(runs) > 1:
                print(f"{n:6d} clients: best DagBag parse {min(r['parse_s'] for r in runs):.2f} s")
    finally:
        shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
