"""Benchmark the synthetic client generator.

Generates N users (default 1,000,000) for one client into a temporary storage
root and prints users/s, MB written (gzip and uncompressed), bytes per user
and peak RSS of this process and of the largest worker.

    ./dev.sh bench bench_generate.py 200000
    python bench/bench_generate.py 1000000 --workers 2
"""

from __future__ import annotations

import argparse
import logging
import resource
import shutil
import tempfile
import time

from sightlines.storage import Storage
from sightlines.synth import generate_client


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("users", nargs="?", type=int, default=1_000_000, help="users at the anchor date")
    parser.add_argument("--date", default="2026-11-24", help="snapshot (and anchor) date")
    parser.add_argument("--workers", type=int, default=None, help="worker processes (default min(2, cores))")
    parser.add_argument("--users-per-file", type=int, default=100_000)
    parser.add_argument("--bad-fraction", type=float, default=0.002)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--root", default=None, help="storage root (default: a temporary directory, removed afterwards)")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(asctime)s %(message)s")

    root = args.root or tempfile.mkdtemp(prefix="bench-generate-")
    try:
        store = Storage(root).client("bench")
        started = time.perf_counter()
        result = generate_client(
            store,
            users=args.users,
            date=args.date,
            seed=args.seed,
            bad_fraction=args.bad_fraction,
            users_per_file=args.users_per_file,
            workers=args.workers,
        )
        seconds = time.perf_counter() - started
    finally:
        if args.root is None:
            shutil.rmtree(root, ignore_errors=True)

    d = result.details
    n = result.n_records
    rss_self = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"users            {n:,} in {d['files']} files, {d['workers']} workers")
    print(f"time             {seconds:.1f} s  ({n / seconds:,.0f} users/s)")
    print(f"written (gzip)   {d['gz_bytes'] / 1e6:,.1f} MB  ({d['gz_bytes'] / n:,.0f} bytes/user)")
    print(f"uncompressed     {d['raw_bytes'] / 1e6:,.1f} MB  ({d['raw_bytes'] / n:,.0f} bytes/user)")
    print(f"bad records      {d['bad_records']:,}  (+{d['oddities']:,} oddities)")
    print(f"peak RSS         {rss_self:,.0f} MB this process, {d['worker_peak_rss_mb']:,.0f} MB largest worker")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
