"""Fixtures of the Airflow tests: an isolated Airflow (home, SQLite database, DAG folder) and small synthetic clients.

Airflow reads its configuration when it is first imported, so the environment
is set here, at import time, before any test module imports Airflow: an
``AIRFLOW_HOME`` in a temporary directory, a SQLite database in it, no example
DAGs, and a DAG folder holding the repository's ``dags/sightlines_dags.py``
(linked) and the test DAG files written by fixtures.
"""

from __future__ import annotations

import atexit
import datetime as dt
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

# the fake Mesos cluster's fixtures (master, small_master, mesos_conn) for every Airflow test module
from .mesos_cluster import master, mesos_conn, small_master  # noqa: F401

REPO = Path(__file__).resolve().parents[2]
_HOME = Path(tempfile.mkdtemp(prefix="sightlines-airflow-tests-"))
DAGS_FOLDER = _HOME / "dags"

if "airflow" in sys.modules and os.environ.get("AIRFLOW_HOME") != str(_HOME):
    raise RuntimeError("Airflow was imported before tests/airflow/conftest.py could isolate it; run the Airflow "
                       "tests in their own pytest process (e.g. `pytest tests/airflow`)")

os.environ.update({
    "AIRFLOW_HOME": str(_HOME),
    "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{_HOME / 'airflow.db'}",
    "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "300",
    "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
    "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
})
atexit.register(shutil.rmtree, _HOME, ignore_errors=True)
DAGS_FOLDER.mkdir()
(DAGS_FOLDER / "sightlines_dags.py").symlink_to(REPO / "dags" / "sightlines_dags.py")

#: the dates of the synthetic snapshots
D1 = dt.date(2026, 11, 20)
D2 = dt.date(2026, 11, 21)
D3 = dt.date(2026, 11, 22)
#: a small, fast client: three catalogue sightlines, one of its own that has too little history (skipped)
CLIENT_CONFIG: dict[str, Any] = {
    "training": {"depths": [2, 3], "learning_rates": [0.1, 0.2], "folds": 3, "cv_sample_size": 5000},
    "disabled_sightlines": ["purchase_1", "purchase_30", "aov_7", "aiv_7", "item_7", "rev_365", "optout_7",
                            "msgs_1", "openrate_7", "click_7"],
    "sightlines": [{"name": "purchase_730", "description": "Purchase in the next two years", "role": "purchases",
                    "aggregate": "any", "horizon": 730, "objective": "binary", "unit": "probability"}],
}
#: the client DAG's train task instances for CLIENT_CONFIG (one instance of the mapped ``train`` per sightline)
CLIENT_TRAIN_TASKS = ["train[purchase_7]", "train[rev_30]", "train[pv_30]", "train[purchase_730]"]


def unmapped(task: Any) -> list[Any]:
    """The operators a mapped ``train`` task becomes at run time, one per sightline (what the worker builds)."""
    from sightlines_airflow.operators.step import SightlinesStepOperator

    values = task.expand_input.value["sightline"]
    return [SightlinesStepOperator(task_id=task.task_id, sightline=s, **task.partial_kwargs) for s in values]


def step_operators(dag: Any) -> list[Any]:
    """Every step operator of a client DAG, the mapped ``train`` task as one operator per sightline."""
    out = []
    for task in dag.tasks:
        out.extend(unmapped(task) if hasattr(task, "expand_input") else [task])
    return out


def dagbag() -> Any:
    """Airflow's own DagBag over the test DAG folder (the repository's DAG file)."""
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS_FOLDER))


def xcom(dag_id: str, run_id: str, task_id: str) -> Any:
    """The return value a task of a DAG run pushed, or None."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        row = session.execute(select(XComModel).where(XComModel.dag_id == dag_id, XComModel.run_id == run_id,
                                                      XComModel.task_id == task_id,
                                                      XComModel.key == "return_value")).scalars().first()
        return None if row is None else XComModel.deserialize_value(row)


def task_states(dag_run: Any) -> dict[str, str]:
    """Task instance -> state of a DAG run; a mapped instance is ``task[label]`` (its rendered map index)."""
    out = {}
    for ti in dag_run.get_task_instances():
        key = ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.rendered_map_index or ti.map_index}]"
        out[key] = str(ti.state)
    return out


@pytest.fixture(scope="session", autouse=True)
def airflow_home() -> Path:
    """The isolated Airflow home, with its metadata database created once for the session."""
    from airflow.utils import db

    db.initdb()
    return _HOME


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory) -> str:
    """A storage root with the synthetic client ``acme`` (400 users) on D1 and D2 (no snapshot on D3).

    Its registry entry uses :data:`CLIENT_CONFIG`; the fleet settings turn Airflow retries off so a failing
    task fails at once in ``dag.test``.
    """
    from sightlines.registry import add_clients, set_fleet
    from sightlines.storage import Storage
    from sightlines.synth import generate_client

    root = str(tmp_path_factory.mktemp("synth-root"))
    storage = Storage(root)
    add_clients(storage, ["acme"], config=CLIENT_CONFIG)
    set_fleet(storage, airflow={"settings": {"*": {"retries": 0}}, "pool": "sightlines"})
    store = storage.client("acme")
    for day in (D1, D2):
        generate_client(store, users=400, date=day, seed=3, workers=1)
    return root


@pytest.fixture(scope="session")
def ran_client(tmp_path_factory) -> str:
    """A storage root where client ``zeta`` (400 users, :data:`CLIENT_CONFIG`) has run its whole day D1.

    Backend and operator tests run single real steps against it (re-running a step is idempotent).
    """
    from sightlines.pipeline import run_daily
    from sightlines.registry import add_clients, load_registry
    from sightlines.storage import Storage
    from sightlines.synth import generate_client

    root = str(tmp_path_factory.mktemp("ran-root"))
    storage = Storage(root)
    add_clients(storage, ["zeta"], config=CLIENT_CONFIG)
    generate_client(storage.client("zeta"), users=400, date=D1, seed=5, workers=1)
    out = run_daily("zeta", D1, storage, config=load_registry(storage).config("zeta"), workers=1)
    assert out.stale_days == 0, out.summary()
    return root


class TI:
    """The few task-instance fields the step operator reads from its context (``context["ti"]``)."""

    def __init__(self, dag_id: str = "sightlines__zeta", task_id: str = "extract", run_id: str = "manual__test",
                 map_index: int = -1) -> None:
        self.dag_id, self.task_id, self.run_id, self.map_index = dag_id, task_id, run_id, map_index


@pytest.fixture
def context() -> dict[str, Any]:
    """A minimal execution context for calling ``execute`` directly."""
    return {"ti": TI(), "ds": D1.isoformat()}
