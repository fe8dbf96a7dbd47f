"""The whole day of one big client: ``sightlines run`` end to end, scoring speed and peak memory.

Usage::

    ./dev.sh bench bench_run.py [--users 1000000] [--workers 2]

Generates a synthetic client once (cached under bench/out/), then runs its day
(extract, sample, train all sightlines, score, publish) with the default
configuration in a fresh process, and prints the wall time of each step, the
training sample size and grid per sightline, the scoring time for all users x
all sightlines, and the peak resident memory: of the main process, of the
largest worker, and of the whole process tree (sampled every 0.2 s).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"

_CHILD = r"""
import json, resource, sys, time
from sightlines.storage import Storage
from sightlines.pipeline import run_daily
from sightlines.config import ClientConfig
root, client, date, workers = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
for sub in ("features", "training", "models", "scores", "predictions", "reports", "runs", "schema", "quarantine"):
    Storage(root).client(client).delete(sub)
t = time.perf_counter()
out = run_daily(client, date, Storage(root), config=ClientConfig(), workers=workers)
secs = time.perf_counter() - t
steps = [{"step": r.step_id, "status": r.status, "seconds": r.details.get("seconds"), "records": r.n_records,
          "examples": r.details.get("examples"), "chosen": r.details.get("chosen")} for r in out.steps]
print(json.dumps({"seconds": secs, "stale_days": out.stale_days, "steps": steps,
                  "rss_self_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "rss_children_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))
"""


def ensure_client(users: int, date: str) -> tuple[str, str]:
    from sightlines.storage import Storage
    from sightlines.synth import generate_client

    root = str(OUT / f"extract-{users}")
    store = Storage(root).client("bench")
    if not store.list(store.raw(date)):
        t = time.perf_counter()
        generate_client(store, users=users, date=date, seed=1, bad_fraction=0.002)
        print(f"generated {users:,} users in {time.perf_counter() - t:.1f} s", flush=True)
    return root, "bench"


class TreeRss(threading.Thread):
    """Samples the summed RSS of a process and its descendants."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.peak, self.stop = pid, 0, False

    def run(self) -> None:
        while not self.stop:
            try:
                p = psutil.Process(self.pid)
                total = p.memory_info().rss + sum(c.memory_info().rss for c in p.children(recursive=True))
                self.peak = max(self.peak, total)
            except psutil.Error:
                pass
            time.sleep(0.2)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--users", type=int, default=1_000_000)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--date", default="2026-11-24")
    args = ap.parse_args()
    print(f"machine: {platform.platform()}, {os.cpu_count()} cores, "
          f"{psutil.virtual_memory().total / 2**30:.0f} GiB, Python {platform.python_version()}")
    root, client = ensure_client(args.users, args.date)
    from sightlines.config import TrainingConfig

    tc = TrainingConfig()
    print(f"training config: sample_size {tc.sample_size:,}, CV on <= {tc.cv_sample_size:,} examples, "
          f"grid depths {list(tc.depths)} x learning rates {list(tc.learning_rates)}, {tc.folds}-fold CV, "
          f"max {tc.max_trees} trees, early stopping {tc.early_stopping}")
    env = dict(os.environ, SIGHTLINES_LOG_LEVEL="WARNING")
    proc = subprocess.Popen([sys.executable, "-c", _CHILD, root, client, args.date, str(args.workers)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    sampler = TreeRss(proc.pid)
    sampler.start()
    t = time.perf_counter()
    stdout, stderr = proc.communicate()
    wall = time.perf_counter() - t
    sampler.stop = True
    if proc.returncode != 0:
        raise SystemExit(f"run failed:\n{stderr[-4000:]}")
    r = json.loads(stdout.strip().splitlines()[-1])
    print(f"== sightlines run, {args.users:,} users, {args.workers} worker(s): {r['seconds']:.1f} s "
          f"({wall:.1f} s with interpreter start), stale_days={r['stale_days']}")
    for s in r["steps"]:
        extra = ""
        if s["step"].startswith("train-"):
            ch = s.get("chosen") or {}
            extra = (f"  examples {s.get('examples') or 0:>7,}, chosen depth {ch.get('max_depth')} "
                     f"lr {ch.get('learning_rate')} trees {ch.get('trees')}")
        print(f"  {s['step']:20s} {s['status']:8s} {s['seconds'] if s['seconds'] is not None else '-':>8} s{extra}")
    score = next(s for s in r["steps"] if s["step"] == "score")
    print(f"scoring {score['records']:,} users x all sightlines: {score['seconds']} s")
    print(f"peak RSS: main process {r['rss_self_mb']:.0f} MB, largest worker {r['rss_children_mb']:.0f} MB, "
          f"whole process tree {sampler.peak / 2**20:.0f} MB")


if __name__ == "__main__":
    main()
