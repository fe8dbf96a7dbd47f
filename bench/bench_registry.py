"""How long reading the client registry takes: what every parse of the DAG folder pays first.

Usage::

    ./dev.sh bench bench_registry.py [--clients 10000] [--repeat 21]

Writes a registry of N clients (one in ten with a config of its own: a threshold,
a role mapping, a training grid, a backend) into a temporary root with
``sightlines clients add``'s code path, then loads it ``--repeat`` times and
prints the median and the fastest load, the file size, and the time to build
every client's config (what the DAG file does for clients with settings).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time

from sightlines.registry import add_clients, load_registry
from sightlines.storage import Storage


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, nargs="+", default=[1_000, 10_000])
    ap.add_argument("--repeat", type=int, default=21)
    args = ap.parse_args()
    print(f"machine: {platform.platform()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    for n in args.clients:
        with tempfile.TemporaryDirectory() as tmp:
            storage = Storage(tmp)
            names = [f"client-{i:05d}" for i in range(n)]
            add_clients(storage, [x for i, x in enumerate(names) if i % 10])
            add_clients(storage, names[::10], config={
                "bad_fraction_max": 0.1, "backend": "mesos", "roles": {"purchases": "orders"},
                "training": {"depths": [3, 5], "learning_rates": [0.1]}})
            size = os.path.getsize(os.path.join(tmp, "registry.json"))
            loads = []
            for _ in range(args.repeat):
                t = time.perf_counter()
                reg = load_registry(storage)
                loads.append(time.perf_counter() - t)
            assert len(reg.names()) == n
            t = time.perf_counter()
            configs = [reg.config(name) for name in reg.names()]
            build = time.perf_counter() - t
            print(f"  {n:>6,} clients ({size / 1024:,.0f} KB registry.json): load median "
                  f"{statistics.median(loads) * 1000:.1f} ms, fastest {min(loads) * 1000:.1f} ms "
                  f"({args.repeat} loads); every client's config built in {build * 1000:.0f} ms "
                  f"({len(configs):,} configs)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
