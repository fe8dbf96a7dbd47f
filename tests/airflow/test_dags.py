"""The DAG file and the DAG factory: DagBag parsing, 1,100 clients, parsing context, and real ``dag.test()`` runs.

The runs use a synthetic client (400 users, a small training grid): day 1 runs
end to end; on day 2 one sightline cannot write its model, so its train task
fails, the sightline is scored with day 1's model and publish still publishes
(fresh, with the fallback recorded); day 3 has no snapshot, so publish
republishes day 2 as stale. The fleet DAG then reports each day.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk import TriggerRule
from airflow.sdk.definitions.timetables.interval import CronDataIntervalTimetable
from airflow.sdk.exceptions import AirflowFailException
from sightlines_airflow.dag_factory import FLEET_DAG_ID, STEP_SETTINGS, build_client_dag, build_registry_dags
from sightlines_airflow.operators.step import SightlinesStepOperator

from sightlines.fleet import read_fleet_status
from sightlines.registry import add_clients, set_fleet
from sightlines.storage import Storage

from .conftest import CLIENT_CONFIG, CLIENT_TRAIN_TASKS, D1, D2, D3, DAGS_FOLDER, dagbag, task_states, unmapped, xcom
from .fake_backend import CLASSPATH

STEPS_ORDER = ["extract", "sample", "score", "publish"]


def utc(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), dt.timezone.utc)


states = task_states


@pytest.fixture
def registry(tmp_path, monkeypatch):
    """Point the DAG file at a fresh registry; returns the storage root."""
    root = tmp_path / "root"
    monkeypatch.setenv("SIGHTLINES_ROOT", str(root))
    return Storage(str(root))


class TestDagFile:
    def test_every_client_gets_its_dag_and_the_fleet_dag(self, registry):
        add_clients(registry, ["acme", "globex"])
        add_clients(registry, ["initech"], config={**CLIENT_CONFIG, "backend": "mesos"})
        bag = dagbag()
        assert bag.import_errors == {}
        assert sorted(bag.dags) == ["sightlines__acme", "sightlines__globex", "sightlines__initech", FLEET_DAG_ID]

        dag = bag.dags["sightlines__acme"]
        assert sorted(dag.task_ids) == ["extract", "publish", "sample", "score", "train"]
        train = dag.get_task("train")
        sightlines = train.expand_input.value["sightline"]
        assert len(sightlines) == 13 and "rev_30" in sightlines
        assert train.map_index_template == "{{ task.sightline }}"
        assert dag.get_task("extract").downstream_task_ids == {"sample"}
        assert dag.get_task("sample").downstream_task_ids == {"train"}
        assert dag.get_task("score").upstream_task_ids == {"train"}
        assert dag.get_task("publish").upstream_task_ids == {"score"}
        assert [dag.get_task(t).trigger_rule for t in ("extract", "sample", "score", "publish")] == [
            TriggerRule.ALL_SUCCESS, TriggerRule.ALL_SUCCESS, TriggerRule.ALL_DONE, TriggerRule.ALL_DONE]
        assert dag.max_active_runs == 1 and dag.catchup is False
        assert isinstance(dag.timetable, CronDataIntervalTimetable) and dag.timetable.expression == "0 0 * * *"
        assert {"sightlines", "backend:local"} <= set(dag.tags)
        for task in [*(dag.get_task(t) for t in STEPS_ORDER), *unmapped(train)]:
            assert isinstance(task, SightlinesStepOperator) and task.client == "acme" and task.run_date == "{{ ds }}"
            settings = STEP_SETTINGS[task.step]
            assert (task.pool, task.pool_slots, task.retries, task.execution_timeout, task.cpus) == (
                "sightlines", int(settings.cpus), settings.retries, settings.execution_timeout, settings.cpus)
            assert task.retry_exponential_backoff == 2.0
        assert [t.sightline for t in unmapped(train)] == sightlines

        initech = bag.dags["sightlines__initech"]
        assert [f"train[{s}]" for s in initech.get_task("train").expand_input.value["sightline"]] == CLIENT_TRAIN_TASKS
        assert {t.backend for t in unmapped(initech.get_task("train"))} == {"mesos"}
        assert {initech.get_task(t).backend for t in STEPS_ORDER} == {"mesos"} and "backend:mesos" in initech.tags

        fleet = bag.dags[FLEET_DAG_ID]
        assert fleet.task_ids == ["watch", "report"] or sorted(fleet.task_ids) == ["report", "watch"]
        assert fleet.get_task("report").trigger_rule == TriggerRule.ALL_DONE
        assert fleet.get_task("watch").clients is None  # the registry, as it is when the task runs

    def test_a_registry_of_1100_clients(self, registry):
        """More clients than max_map_length (1,024): every one gets a DAG, and the fleet covers all of them."""
        names = [f"client-{i:04d}" for i in range(1100)]
        add_clients(registry, names)
        t0 = time.perf_counter()
        bag = dagbag()
        seconds = time.perf_counter() - t0
        assert bag.import_errors == {}
        assert len(bag.dags) == 1101
        assert all(len(bag.dags[f"sightlines__{n}"].tasks) == 5 for n in names)
        print(f"parsed 1,100 clients in {seconds:.1f} s")  # the target lives in bench/bench_dag_parse.py

        from sightlines_airflow.operators.fleet import FleetReportOperator

        report = FleetReportOperator(task_id="report", root=str(registry.url), run_date=D1.isoformat())
        out = report.execute({})
        assert out["n_clients"] == 1100 and out["counts"]["missing"] == 1100
        assert len(read_fleet_status(registry, D1)["clients"]) == 1100

    def test_a_running_task_builds_only_its_own_dag(self, registry, monkeypatch):
        add_clients(registry, ["acme", "globex"])
        monkeypatch.setenv("_AIRFLOW_PARSING_CONTEXT_DAG_ID", "sightlines__globex")
        monkeypatch.setenv("_AIRFLOW_PARSING_CONTEXT_TASK_ID", "extract")
        assert list(dagbag().dags) == ["sightlines__globex"]
        monkeypatch.setenv("_AIRFLOW_PARSING_CONTEXT_DAG_ID", FLEET_DAG_ID)
        assert list(dagbag().dags) == [FLEET_DAG_ID]
        monkeypatch.setenv("_AIRFLOW_PARSING_CONTEXT_DAG_ID", "someone_elses_dag")
        assert list(dagbag().dags) == []

    def test_an_invalid_registry_entry_shows_as_a_failing_dag(self, registry):
        add_clients(registry, ["acme"])
        data = json.loads(Path(registry.url, "registry.json").read_text())
        data["clients"]["broken"] = {"training": {"folds": 1}}
        Path(registry.url, "registry.json").write_text(json.dumps(data))
        bag = dagbag()
        assert bag.import_errors == {}
        assert "sightlines__acme" in bag.dags
        broken = bag.dags["sightlines__broken"]
        assert broken.task_ids == ["config_error"] and "config-error" in broken.tags
        with pytest.raises(AirflowFailException, match="the registry entry of broken is invalid: client 'broken': "
                                                       "training.folds must be at least 2"):
            broken.get_task("config_error").execute({})

    def test_fleet_airflow_settings_from_the_registry(self, registry):
        add_clients(registry, ["acme"])
        set_fleet(registry, airflow={"pool": "big", "deferrable": True, "settings": {"train": {"cpus": 2,
                                                                                               "retries": 3}}})
        dag = dagbag().dags["sightlines__acme"]
        train = unmapped(dag.get_task("train"))[0]
        assert (train.pool, train.cpus, train.pool_slots, train.retries, train.deferrable) == ("big", 2, 2, 3, True)
        set_fleet(registry, airflow={"pools": "typo"})
        bag = dagbag()
        assert "registry fleet.airflow has unknown setting(s) ['pools']" in next(iter(bag.import_errors.values()))

    def test_shards_split_the_clients_between_dag_files(self, registry):
        names = [f"client-{i:03d}" for i in range(40)]
        add_clients(registry, names)
        shards = [build_registry_dags(shard=i, shards=3) for i in range(3)]
        ids = [set(s) for s in shards]
        assert FLEET_DAG_ID in ids[0] and FLEET_DAG_ID not in ids[1] | ids[2]
        assert not (ids[0] & ids[1]) and not (ids[1] & ids[2]) and not (ids[0] & ids[2])
        assert set().union(*ids) == {f"sightlines__{n}" for n in names} | {FLEET_DAG_ID}
        assert all(len(i) > 5 for i in ids)
        with pytest.raises(ValueError, match="shard is 3; expected 0 <= shard < shards"):
            build_registry_dags(shard=3, shards=3)

    def test_factory_overrides(self):
        dag = build_client_dag("acme", sightlines=[], schedule="0 3 * * *", pool=None,
                               settings={"*": {"retries": 0}, "score": {"execution_timeout": 60}})
        assert sorted(dag.task_ids) == ["extract", "publish", "sample", "score"]
        assert dag.get_task("sample").downstream_task_ids == {"score"}
        assert dag.get_task("score").execution_timeout == dt.timedelta(seconds=60)
        assert {t.retries for t in dag.tasks} == {0} and {t.pool for t in dag.tasks} == {"default_pool"}
        assert dag.timetable.expression == "0 3 * * *"
        with pytest.raises(ValueError, match=r"settings has an entry for 'deploy'; steps are \['extract'"):
            build_client_dag("acme", sightlines=[], settings={"deploy": {"cpus": 1}})


@pytest.fixture(scope="module")
def client_runs(synth_root) -> dict[str, Any]:
    """Run the client DAG of acme on D1, D2 (pv_30 cannot write its model) and D3 (no snapshot) with dag.test()."""
    os.environ["SIGHTLINES_ROOT"] = synth_root
    try:
        dag = dagbag().dags["sightlines__acme"]
        runs = {"D1": dag.test(logical_date=utc(D1))}
        # day 2: the model file of pv_30 is a directory, so saving the trained model fails
        Path(synth_root, "clients/acme/models", D2.isoformat(), "pv_30.txt").mkdir(parents=True)
        runs["D2"] = dag.test(logical_date=utc(D2))
        runs["D3"] = dag.test(logical_date=utc(D3))
        fleet = dagbag().dags[FLEET_DAG_ID]
        for day, key in ((D2, "fleet-D2"), (D3, "fleet-D3")):
            runs[key] = fleet.test(logical_date=utc(day))
        return runs
    finally:
        del os.environ["SIGHTLINES_ROOT"]


class TestClientDagRuns:
    def test_day_one_runs_end_to_end_and_publishes(self, client_runs, synth_root):
        run = client_runs["D1"]
        assert str(run.state) == "success"
        assert states(run) == {"extract": "success", "sample": "success", "train[purchase_7]": "success",
                               "train[rev_30]": "success", "train[pv_30]": "success",
                               "train[purchase_730]": "skipped", "score": "success", "publish": "success"}
        store = Storage(synth_root).client("acme")
        manifest = store.manifest(store.predictions(D1))
        assert manifest["stale_days"] == 0 and manifest["row_count"] == 400
        assert sorted(manifest["sightlines"]) == ["purchase_7", "pv_30", "rev_30"]
        assert "purchase_730" in manifest["unavailable"]
        summary = xcom("sightlines__acme", run.run_id, "publish")
        assert (summary["fresh"], summary["rows"], summary["fallback_sightlines"]) == (True, 400, {})
        extract = xcom("sightlines__acme", run.run_id, "extract")
        assert extract["state"] == "succeeded" and extract["result"]["n_records"] == 400

    def test_a_failed_train_task_stays_failed_and_publish_falls_back(self, client_runs, synth_root):
        run = client_runs["D2"]
        st = states(run)
        assert st["train[pv_30]"] == "failed"
        assert st["train[purchase_7]"] == st["train[rev_30]"] == st["score"] == st["publish"] == "success"
        store = Storage(synth_root).client("acme")
        manifest = store.manifest(store.predictions(D2))
        assert manifest["stale_days"] == 0
        assert manifest["sightlines"]["pv_30"]["fallback"] is True
        assert manifest["sightlines"]["pv_30"]["model_date"] == D1.isoformat()
        assert manifest["sightlines"]["rev_30"]["model_date"] == D2.isoformat()
        record = store.read_json(store.run_record(D2, "train-pv_30"))
        assert record["status"] == "failed" and "IsADirectoryError" in record["details"]["reason"]
        summary = xcom("sightlines__acme", run.run_id, "publish")
        assert summary["fresh"] is True and summary["fallback_sightlines"] == {"pv_30": D1.isoformat()}

    def test_a_day_without_a_snapshot_republishes_the_last_predictions(self, client_runs, synth_root):
        run = client_runs["D3"]
        st = states(run)
        assert st["extract"] == "failed" and st["sample"] == "upstream_failed"
        # the instances of a literal expansion exist from the start; never run, they carry no label
        assert {k: v for k, v in st.items() if k.startswith("train")} == {
            f"train[{i}]": "upstream_failed" for i in range(len(CLIENT_TRAIN_TASKS))}
        assert st["score"] == "failed" and st["publish"] == "success"
        store = Storage(synth_root).client("acme")
        manifest = store.manifest(store.predictions(D3))
        assert manifest["stale_days"] == 1 and manifest["republished_from"] == D2.isoformat()
        assert "extract failed: client acme: no snapshot for 2026-11-22" in manifest["reason"]
        summary = xcom("sightlines__acme", run.run_id, "publish")
        assert (summary["fresh"], summary["stale_days"], summary["republished_from"]) == (False, 1, D2.isoformat())

    def test_the_fleet_dag_reports_fresh_and_stale(self, client_runs, synth_root):
        storage = Storage(synth_root)
        for key, day, status in (("fleet-D2", D2, "fresh"), ("fleet-D3", D3, "stale")):
            run = client_runs[key]
            assert states(run) == {"watch": "success", "report": "success"}, key
            report = read_fleet_status(storage, day)
            acme = report["clients"]["acme"]
            assert acme["status"] == status
            if status == "fresh":
                assert acme["fallback_sightlines"] == {"pv_30": D1.isoformat()}
                assert "train-pv_30" in acme["failed_steps"]
            else:
                assert acme["stale_days"] == 1 and acme["source_date"] == D2.isoformat()
            out = xcom(FLEET_DAG_ID, run.run_id, "report")
            assert out["counts"][status] == 1 and out["key"] == f"fleet/{day.isoformat()}/status.json"


DEFERRAL_DAG = '''
"""Test DAG (written by tests/airflow/test_dags.py): one deferrable step on the pid-file backend."""
import datetime as dt
import os

from airflow.sdk import DAG

from sightlines_airflow.operators.step import SightlinesStepOperator

if os.environ.get("SIGHTLINES_TEST_JOBS"):
    with DAG("sightlines_test_deferral", schedule=None, start_date=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc),
             catchup=False):
        SightlinesStepOperator(task_id="extract", step="extract", client="zeta", backend="{classpath}",
                               backend_options={{"state_dir": os.environ["SIGHTLINES_TEST_JOBS"]}},
                               deferrable=True, poll_interval=0.5, root=os.environ["SIGHTLINES_TEST_ROOT"])
'''


def test_a_deferrable_step_through_dag_test(ran_client, tmp_path, monkeypatch):
    """execute submits and defers, the trigger polls the detached job, execute_complete returns the result."""
    (DAGS_FOLDER / "test_deferral_dag.py").write_text(textwrap.dedent(DEFERRAL_DAG.format(classpath=CLASSPATH)))
    monkeypatch.setenv("SIGHTLINES_TEST_JOBS", str(tmp_path / "jobs"))
    monkeypatch.setenv("SIGHTLINES_TEST_ROOT", ran_client)
    monkeypatch.setenv("SIGHTLINES_ROOT", str(tmp_path / "empty-root"))
    try:
        dag = dagbag().dags["sightlines_test_deferral"]
        run = dag.test(logical_date=utc(D1))
    finally:
        (DAGS_FOLDER / "test_deferral_dag.py").unlink()
    assert states(run) == {"extract": "success"}
    jobs = list((tmp_path / "jobs").iterdir())
    assert len(jobs) == 1 and (jobs[0] / "rc").read_text().strip() == "0"
    result = xcom("sightlines_test_deferral", run.run_id, "extract")
    assert result["job_id"] == jobs[0].name and result["result"]["n_records"] == 400
