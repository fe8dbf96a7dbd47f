"""A Mesos cluster for the Airflow tests: the fake master (real HTTP on a socket, agents running real
subprocesses), an Airflow connection pointing at it, and a small fake step for the fault tests.

Import the fixtures into a test module (``from ..mesos_cluster import master, mesos_conn  # noqa: F401``).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.mesos.conftest import FAST_SETTINGS
from tests.mesos.fake_master import AgentSpec, FakeMesosMaster

CONN_ID = "sightlines_mesos"
#: the Mesos client tests' fast timings, as connection extras (the fake heartbeats every 0.2 s)
FAST_EXTRA: dict[str, Any] = dict(FAST_SETTINGS)

#: a stand-in for ``sightlines step ...`` (argv appended): waits for its gate file (if given) and sleeps, appends
#: one line to a marker file when it completes, prints a JSON result like the real step, and exits with
#: FAKE_STEP_EXIT. A test that needs the step still running at some point holds it with a gate rather than
#: guessing a long enough sleep (a slow machine starts interpreters late)
FAKE_STEP = r"""
import json, os, sys, time
step = sys.argv[2]
client = sys.argv[sys.argv.index("--client") + 1]
print(f"fake {step} of {client} starting", file=sys.stderr, flush=True)
gate, waited = os.environ.get("FAKE_STEP_GATE"), 0.0
while gate and not os.path.exists(gate) and waited < 120:  # held until the test has seen what it waits for
    time.sleep(0.02)
    waited += 0.02
time.sleep(float(os.environ.get("FAKE_STEP_SLEEP", "0")))
code = int(os.environ.get("FAKE_STEP_EXIT", "0"))
with open(os.environ["FAKE_STEP_MARKER"], "a") as f:
    f.write(f"{step} {os.environ.get('MESOS_TASK_ID')}\n")
print("a chatty library line")
if code == 0:
    print(json.dumps({"step": step, "client": client, "status": "ok", "n_records": 7}, indent=2))
elif code in (2, 99):
    print(f"sightlines: fake {step} says {code}", file=sys.stderr)
else:
    print("Traceback (most recent call last):", file=sys.stderr)
    print("RuntimeError: fake crash", file=sys.stderr)
sys.exit(code)
"""
FAKE_STEP_COMMAND = [sys.executable, "-c", FAKE_STEP]
#: the real step, run by the fake agents with this interpreter
REAL_STEP_COMMAND = [sys.executable, "-m", "sightlines"]


#: the shared fake master (it now re-reads suppression from every SUBSCRIBE, as Mesos does)
FakeMaster = FakeMesosMaster


def fake_step_options(marker: Path, *, sleep: float = 0.0, exit_code: int = 0, gate: Path | None = None,
                      **options: Any) -> dict[str, Any]:
    """Backend options that run :data:`FAKE_STEP` instead of the real step (held until ``gate`` exists)."""
    env = {"FAKE_STEP_MARKER": str(marker), "FAKE_STEP_SLEEP": str(sleep), "FAKE_STEP_EXIT": str(exit_code)}
    if gate is not None:
        env["FAKE_STEP_GATE"] = str(gate)
    return {"step_command": FAKE_STEP_COMMAND, "env": env, **options}


def completions(marker: Path) -> list[str]:
    """The lines the fake step appended: one per run that got to its end."""
    return marker.read_text().splitlines() if marker.exists() else []


def set_connection(monkeypatch: pytest.MonkeyPatch, master: FakeMesosMaster, conn_id: str = CONN_ID,
                   **extra: Any) -> str:
    """Define the Airflow connection ``conn_id`` (in the environment) for ``master``, with fast timings."""
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(
        {"conn_type": "mesos", "host": master.url, "extra": {**FAST_EXTRA, **extra}}))
    return conn_id


def wait_state(master: FakeMesosMaster, task_id: str, state: str = "TASK_RUNNING", timeout: float = 20) -> None:
    master.wait_for(lambda: master.task_state(task_id) == state, timeout=timeout, what=f"{task_id} {state}")


def release_once_relaunched(master: FakeMesosMaster, task_id: str, gate: Path) -> None:
    """Open the fake step's ``gate`` once ``task_id`` has been launched a second time (after a fault)."""
    master.wait_for(lambda: master.launch_count(task_id) == 2, timeout=20, what=f"the relaunch of {task_id}")
    gate.touch()


@pytest.fixture
def master(tmp_path: Path) -> Iterator[FakeMesosMaster]:
    """A fake master with two agents (4 cpus, 4 GiB each) on a real socket."""
    with FakeMaster(tmp_path / "sandboxes") as fake:
        yield fake


@pytest.fixture
def small_master(tmp_path: Path) -> Iterator[FakeMesosMaster]:
    """A fake master whose agents are too small for a 4-cpu step."""
    agents = [AgentSpec("small-a.test", cpus=1, mem=512, disk=1000), AgentSpec("small-b.test", cpus=2, mem=1024)]
    with FakeMaster(tmp_path / "sandboxes", agents=agents) as fake:
        yield fake


@pytest.fixture
def mesos_conn(monkeypatch: pytest.MonkeyPatch, master: FakeMesosMaster) -> str:
    """The connection ``sightlines_mesos`` to :func:`master`."""
    return set_connection(monkeypatch, master)
