"""Client DAGs on the mesos backend: switching is one registry setting, and a client's day runs end to end with
``dag.test()``, every step a Mesos task on the fake master's agents (real HTTP, real subprocesses)."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from typing import Any

import pytest
from sightlines_airflow.operators.step import SightlinesStepOperator

from sightlines.registry import add_clients, set_fleet
from sightlines.storage import Storage
from sightlines.synth import generate_client

from .conftest import CLIENT_CONFIG, D1, dagbag, step_operators, task_states, xcom
from .mesos_cluster import FAST_EXTRA, REAL_STEP_COMMAND, FakeMaster

pytestmark = pytest.mark.timeout(150)

#: the tests' small client with two sightlines: one trained, one without enough history (skipped)
KAPPA_CONFIG = {**CLIENT_CONFIG, "disabled_sightlines": [*CLIENT_CONFIG["disabled_sightlines"], "rev_30", "pv_30"]}
KAPPA_SIGHTLINES = ["purchase_7", "purchase_730"]


def sightlines_cli(args: list[str]) -> int:
    """The ``sightlines`` command, in a process of its own (it configures logging for itself)."""
    return subprocess.run([sys.executable, "-m", "sightlines", *args], capture_output=True, check=False).returncode


def test_switching_a_client_or_the_fleet_is_one_setting(tmp_path, monkeypatch):
    root = str(tmp_path / "root")
    monkeypatch.setenv("SIGHTLINES_ROOT", root)
    add_clients(Storage(root), ["acme", "globex"])
    set_fleet(Storage(root), airflow={"backend_options": {"mesos": {"docker_image": "sightlines:1.4"}}})

    def backends() -> dict[str, set]:
        bag = dagbag()
        assert bag.import_errors == {}
        return {c: {(t.backend, t.deferrable, json.dumps(t.backend_options))
                    for t in step_operators(bag.dags[f"sightlines__{c}"])} for c in ("acme", "globex")}

    local = ("local", False, "null")
    mesos = ("mesos", True, '{"docker_image": "sightlines:1.4"}')
    assert backends() == {"acme": {local}, "globex": {local}}
    assert sightlines_cli(["clients", "fleet", "--root", root, "--backend", "mesos"]) == 0
    assert backends() == {"acme": {mesos}, "globex": {mesos}}
    assert sightlines_cli(["clients", "add", "--root", root, "acme", "--backend", "local"]) == 0
    assert backends() == {"acme": {local}, "globex": {mesos}}
    task = dagbag().dags["sightlines__globex"].get_task("extract")
    assert task.compute.conn_id == "sightlines_mesos"  # the default connection; nothing is opened to build it
    assert "hook" not in task.compute.__dict__


def test_a_bad_backend_options_setting_is_reported(tmp_path, monkeypatch):
    root = str(tmp_path / "root")
    monkeypatch.setenv("SIGHTLINES_ROOT", root)
    add_clients(Storage(root), ["acme"])
    set_fleet(Storage(root), airflow={"backend_options": {"docker_image": "x"}})
    errors = dagbag().import_errors
    assert "registry fleet.airflow.backend_options must map a backend name to its options" in \
        next(iter(errors.values()))


@pytest.fixture(scope="module")
def mesos_day(tmp_path_factory) -> dict[str, Any]:
    """Client ``kappa`` (400 users, the tests' small training config) runs its day D1 on the mesos backend."""
    root = str(tmp_path_factory.mktemp("mesos-root"))
    storage = Storage(root)
    add_clients(storage, ["kappa"], config=KAPPA_CONFIG)
    set_fleet(storage, airflow={"settings": {"*": {"retries": 0, "memory_mb": 1024}}, "pool": "sightlines",
                                "poll_interval": 0.5,
                                "backend_options": {"mesos": {"step_command": REAL_STEP_COMMAND}}})
    assert sightlines_cli(["clients", "fleet", "--root", root, "--backend", "mesos"]) == 0  # the one setting
    generate_client(storage.client("kappa"), users=400, date=D1, seed=11, workers=1)
    with FakeMaster(tmp_path_factory.mktemp("sandboxes")) as master, pytest.MonkeyPatch.context() as mp:
        mp.setenv("SIGHTLINES_ROOT", root)
        mp.setenv("AIRFLOW_CONN_SIGHTLINES_MESOS", json.dumps(
            {"conn_type": "mesos", "host": master.url, "extra": FAST_EXTRA}))
        dag = dagbag().dags["sightlines__kappa"]
        run = dag.test(logical_date=dt.datetime.combine(D1, dt.time(), dt.timezone.utc))
        return {"dag": dag, "run": run, "master": master, "launches": list(master.launches),
                "open_frameworks": master.framework_ids(completed=False), "storage": storage}


class TestClientDayOnMesos:
    def test_every_step_is_a_deferred_mesos_task(self, mesos_day):
        dag = mesos_day["dag"]
        train = dag.get_task("train")
        assert train.expand_input.value["sightline"] == KAPPA_SIGHTLINES
        assert (train.partial_kwargs["backend"], train.partial_kwargs["deferrable"]) == ("mesos", True)
        steps = [dag.get_task(t) for t in ("extract", "sample", "score", "publish")]
        assert all(isinstance(t, SightlinesStepOperator) for t in steps)
        assert {(t.backend, t.deferrable) for t in steps} == {("mesos", True)}

    def test_the_day_runs_end_to_end_and_publishes(self, mesos_day):
        run = mesos_day["run"]
        assert task_states(run) == {"extract": "success", "sample": "success", "train[purchase_7]": "success",
                                    "train[purchase_730]": "skipped", "score": "success", "publish": "success"}
        store = mesos_day["storage"].client("kappa")
        manifest = store.manifest(store.predictions(D1))
        assert manifest["stale_days"] == 0 and manifest["row_count"] == 400
        assert sorted(manifest["sightlines"]) == ["purchase_7"] and "purchase_730" in manifest["unavailable"]
        summary = xcom("sightlines__kappa", run.run_id, "publish")
        assert (summary["fresh"], summary["rows"]) == (True, 400)
        assert summary["job_id"].startswith("sl.kappa.2026-11-20.publish.")
        extract = xcom("sightlines__kappa", run.run_id, "extract")
        assert extract["state"] == "succeeded" and extract["result"]["n_records"] == 400

    def test_each_step_ran_exactly_once_on_the_agents(self, mesos_day):
        launches = mesos_day["launches"]
        assert len({launch.task_id for launch in launches}) == len(launches)  # one launch per Mesos task
        argvs = [launch.command["arguments"] for launch in launches]
        assert all(a[:3] == REAL_STEP_COMMAND and a[3] == "step" for a in argvs)
        ran = sorted(f"{a[4]} {a[a.index('--sightline') + 1]}" if "--sightline" in a else a[4] for a in argvs)
        trains = [f"train {s}" for s in KAPPA_SIGHTLINES]
        assert ran == sorted(["extract", "sample", "score", "publish", *trains])  # skipped purchase_730 ran too
        for launch in launches:
            assert launch.env["SIGHTLINES_ROOT"] == os.fspath(mesos_day["storage"].url)
            assert launch.resources["mem"] == 1024.0 and launch.container is None
        assert mesos_day["open_frameworks"] == []  # every framework was acknowledged and torn down
