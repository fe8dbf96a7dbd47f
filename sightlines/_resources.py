"""How many cores a step may use: processes x threads must not exceed them.

LightGBM's OpenMP threads busy-wait: two processes with two threads each on
two cores ran about 25 times slower than one. So every step asks here how
many cores it has (``$SIGHTLINES_CPUS``, set by the Airflow operator from the
task's declared cpus, else the cores this process may run on) and sizes its
process pool and thread counts to fit.
"""

from __future__ import annotations

import os

__all__ = ["cpu_budget", "worker_env"]


def cpu_budget() -> int:
    """Cores this step may use (at least 1)."""
    env = os.environ.get("SIGHTLINES_CPUS")
    if env:
        try:
            return max(1, int(float(env)))
        except ValueError:
            pass
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def worker_env(threads: int = 1) -> dict[str, str]:
    """Environment for a worker process that must use ``threads`` threads."""
    t = str(max(1, threads))
    return {"OMP_NUM_THREADS": t, "OPENBLAS_NUM_THREADS": t, "MKL_NUM_THREADS": t, "OMP_WAIT_POLICY": "PASSIVE",
            "SIGHTLINES_CPUS": t}
