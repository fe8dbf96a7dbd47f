"""Benchmark orchestration: many tiny clients through the real Airflow scheduler with the LocalExecutor.

Creates a temporary Airflow home (SQLite) and storage root with N small
synthetic clients (default 8 clients x 200 users, three sightlines each, so
7 tasks per client-day), starts ``airflow api-server`` (task processes report
through its execution API), ``airflow dag-processor`` and ``airflow
scheduler``, unpauses every client DAG (each then runs its latest day, which
is the day the data was generated for) and waits until every run is done.

It prints the machine, the throughput (task instances per minute of wall
time), and per client-day: the makespan (extract start to publish end), the
compute on its critical path (the steps' own ``seconds`` from the run
records), and the difference, i.e. the orchestration overhead (scheduling
delay, task-process start, step-process start). A task's own overhead is its
Airflow duration minus the step's seconds.

    ./dev.sh bench bench_scheduler.py
    python bench/bench_scheduler.py --clients 20 --users 200 --parallelism 4

This is a script, not a test: the figures depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SMALL = {
    "training": {"depths": [2, 3], "learning_rates": [0.1], "folds": 3, "cv_sample_size": 3000},
    "disabled_sightlines": ["purchase_1", "purchase_30", "aov_7", "aiv_7", "item_7", "rev_365", "optout_7",
                            "msgs_1", "openrate_7", "click_7"],
}


def machine() -> str:
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu)
    except OSError:
        pass
    mem = "?"
    try:
        with open("/proc/meminfo") as f:
            mem = f"{int(f.readline().split()[1]) / 1024 / 1024:.0f} GB"
    except OSError:
        pass
    return (f"{cpu}; {len(os.sched_getaffinity(0))} core(s) usable; {mem} RAM; load average "
            f"{os.getloadavg()[0]:.2f}")


def prepare(root: Path, clients: int, users: int, day: dt.date) -> list[str]:
    sys.path.insert(0, str(REPO))
    from sightlines.registry import add_clients
    from sightlines.storage import Storage
    from sightlines.synth import generate_client

    storage = Storage(str(root))
    names = [f"tiny-{i:03d}" for i in range(clients)]
    add_clients(storage, names, config=SMALL)
    for i, name in enumerate(names):
        generate_client(storage.client(name), users=users, date=day, seed=i, workers=1)
    return names


def airflow(env: dict[str, str], *args: str) -> str:
    out = subprocess.run([sys.executable, "-m", "airflow", *args], env=env, capture_output=True, text=True,
                         timeout=600, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"airflow {' '.join(args)} failed:\n{out.stderr[-2000:]}")
    return out.stdout


_QUERY = r"""
import json, sys
from sqlalchemy import select
from airflow.models.dag import DagModel
from airflow.models.dagrun import DagRun
from airflow.models.taskinstance import TaskInstance
from airflow.utils.session import create_session
mode, prefix = sys.argv[1], sys.argv[2]
ours = lambda dag_id: dag_id.startswith(prefix)  # not SQL LIKE: '_' is a wildcard there
with create_session() as s:
    if mode == "dags":
        print(json.dumps(sorted(d for d in s.scalars(select(DagModel.dag_id)) if ours(d))))
    elif mode == "unpause":
        for m in s.scalars(select(DagModel)):
            if ours(m.dag_id):
                m.is_paused = False
        print("[]")
    elif mode == "runs":
        print(json.dumps([[r.dag_id, str(r.state)] for r in s.scalars(select(DagRun)) if ours(r.dag_id)]))
    else:
        out = []
        for ti in s.scalars(select(TaskInstance)):
            if ours(ti.dag_id):
                # a mapped train instance is keyed train_{sightline}, like the step's record train-{sightline}
                task = ti.task_id if ti.map_index < 0 else f"{ti.task_id}_{ti.rendered_map_index or ti.map_index}"
                out.append([ti.dag_id, task, str(ti.state),
                            ti.start_date.timestamp() if ti.start_date else None,
                            ti.end_date.timestamp() if ti.end_date else None, ti.duration])
        print(json.dumps(out))
"""


def query(env: dict[str, str], mode: str, prefix: str = "sightlines__") -> Any:
    out = subprocess.run([sys.executable, "-c", _QUERY, mode, prefix], env=env, capture_output=True, text=True,
                         timeout=300, check=False)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def healthy(port: int) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/monitor/health", timeout=5) as r:
            return r.status == 200
    except OSError:
        return False


def step_seconds(root: Path, client: str, day: dt.date) -> dict[str, float]:
    out = {}
    runs = root / "clients" / client / "runs" / day.isoformat()
    for f in runs.glob("*.json"):
        rec = json.loads(f.read_text())
        out[f.stem] = float((rec.get("details") or {}).get("seconds") or 0.0)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--parallelism", type=int, default=4, help="LocalExecutor worker processes")
    parser.add_argument("--pool-slots", type=int, default=None, help="slots of the 'sightlines' pool "
                                                                        "(default: parallelism)")
    parser.add_argument("--timeout", type=float, default=1800, help="give up after this many seconds")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directories")
    args = parser.parse_args(argv)

    base = Path(tempfile.mkdtemp(prefix="bench-scheduler-"))
    home, root = base / "airflow-home", base / "root"
    home.mkdir()
    day = dt.datetime.now(dt.timezone.utc).date() - dt.timedelta(days=1)
    procs: list[subprocess.Popen[bytes]] = []
    logs = None
    try:
        print(f"machine: {machine()}")
        t0 = time.perf_counter()
        names = prepare(root, args.clients, args.users, day)
        print(f"{len(names)} client(s) x {args.users} users generated for {day} in {time.perf_counter() - t0:.1f} s")
        with socket.socket() as sock:  # a free port for the API server (task processes report to it)
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        env = dict(os.environ, AIRFLOW_HOME=str(home), SIGHTLINES_ROOT=str(root),
                   AIRFLOW__API__PORT=str(port), AIRFLOW__API__HOST="127.0.0.1",
                   AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"http://127.0.0.1:{port}/execution/",
                   AIRFLOW__CORE__DAGS_FOLDER=str(REPO / "dags"), AIRFLOW__CORE__LOAD_EXAMPLES="False",
                   AIRFLOW__CORE__EXECUTOR="LocalExecutor",
                   AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home / 'airflow.db'}?timeout=60",
                   AIRFLOW__CORE__PARALLELISM=str(args.parallelism),
                   AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="True",
                   AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL="5", AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC="1",
                   OMP_WAIT_POLICY="PASSIVE")
        airflow(env, "db", "migrate")
        airflow(env, "pools", "set", "sightlines", str(args.pool_slots or args.parallelism), "bench")
        logs = open(base / "components.log", "wb")  # noqa: SIM115 - the components write to it until the end
        for component in ("api-server", "dag-processor", "scheduler"):
            procs.append(subprocess.Popen([sys.executable, "-m", "airflow", component], env=env, stdout=logs,
                                          stderr=subprocess.STDOUT, start_new_session=True))
        deadline = time.monotonic() + 300
        while len(query(env, "dags")) < len(names):
            if time.monotonic() > deadline:
                raise RuntimeError(f"the DAG processor did not register {len(names)} DAGs in 300 s; see "
                                   f"{base / 'components.log'}")
            time.sleep(2)
        while not healthy(port):
            if time.monotonic() > deadline:
                raise RuntimeError(f"the API server did not answer on port {port}; see {base / 'components.log'}")
            time.sleep(2)
        start = time.time()
        query(env, "unpause")
        print(f"unpaused {len(names)} client DAG(s); waiting for their runs of {day}")
        last = ""
        while True:
            runs = query(env, "runs")
            done = [r for r in runs if r[1] in ("success", "failed")]
            line = f"  {time.time() - start:6.0f} s: {len(done)}/{len(names)} client-day(s) done"
            if line != last:
                print(line, flush=True)
                last = line
            if len(done) >= len(names):
                break
            if time.time() - start > args.timeout:
                raise RuntimeError(f"not done after {args.timeout:.0f} s")
            time.sleep(5)
        tis = query(env, "tis")
        report(tis, root, names, day, start, args)
    finally:
        for p in procs:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
        if logs is not None:
            logs.close()
        if args.keep:
            print(f"kept {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)
    return 0


def report(tis: list[list[Any]], root: Path, names: list[str], day: dt.date, start: float,
           args: argparse.Namespace) -> None:
    finished = [t for t in tis if t[4] is not None and t[3] is not None]
    states: dict[str, int] = {}
    for t in tis:
        states[t[2]] = states.get(t[2], 0) + 1
    first = min(t[3] for t in finished)
    last = max(t[4] for t in finished)
    minutes = (last - first) / 60
    print(f"\n{len(tis)} task instances ({states}) in {last - first:.0f} s of wall time from the first start to the "
          f"last end ({last - start:.0f} s after unpausing)")
    print(f"throughput: {len(finished) / minutes:.1f} task instances/minute "
          f"({len(names) / minutes:.2f} client-days/minute) with parallelism {args.parallelism}")
    upstream = {"sample": ["extract"], "score": None, "publish": ["score"]}
    makespans, worker, compute, task_over, delays = [], [], [], [], []
    for name in names:
        own = {t[1]: t for t in finished if t[0] == f"sightlines__{name}"}
        secs = step_seconds(root, name, day)
        if "extract" not in own or "publish" not in own:
            continue
        trains = [k for k in own if k.startswith("train_")]
        makespans.append(own["publish"][4] - own["extract"][3])
        worker.append(sum(t[5] or 0.0 for t in own.values()))
        compute.append(sum(secs.get(k.replace("train_", "train-"), 0.0) for k in own))
        for task_id, t in own.items():
            step_id = task_id.replace("train_", "train-")
            if t[5] is not None and step_id in secs:
                task_over.append(t[5] - secs[step_id])
            ups = upstream.get(task_id, ["sample"] if task_id.startswith("train_") else None)
            if task_id == "score":
                ups = trains
            if ups and all(u in own for u in ups):
                delays.append(t[3] - max(own[u][4] for u in ups))

    def q(values: list[float], p: float) -> float:
        return sorted(values)[int(p * (len(values) - 1))]

    if makespans:
        over = [w - c for w, c in zip(worker, compute)]
        print(f"per client-day ({len(makespans)}, {len(finished) // max(1, len(makespans))} tasks each): "
              f"worker time {statistics.median(worker):.1f} s, of which the steps' own compute "
              f"{statistics.median(compute):.1f} s -> orchestration overhead {statistics.median(over):.1f} s "
              f"(medians); makespan extract start -> publish end {statistics.median(makespans):.1f} s "
              "(includes waiting for a free slot behind the other clients)")
    if task_over:
        print(f"per task instance: Airflow duration minus the step's own seconds: median "
              f"{statistics.median(task_over):.2f} s, p90 {q(task_over, 0.9):.2f} s "
              "(task process, DAG parse, `python -m sightlines` start-up)")
    if delays:
        print(f"scheduling delay (upstream end -> task start): median {statistics.median(delays):.2f} s, "
              f"p90 {q(delays, 0.9):.2f} s")


if __name__ == "__main__":
    raise SystemExit(main())
