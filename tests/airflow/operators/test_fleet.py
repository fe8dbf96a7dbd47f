"""FleetWatchOperator and FleetReportOperator."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from airflow.sdk.exceptions import AirflowException, TaskDeferred
from sightlines_airflow.operators.fleet import FleetReportOperator, FleetWatchOperator

from sightlines.fleet import read_fleet_status
from sightlines.registry import add_clients
from sightlines.storage import Storage

DAY = "2026-11-20"


def publish(storage: Storage, client: str, stale_days: int = 0) -> None:
    store = storage.client(client)
    with store.dataset(store.predictions(DAY)) as ds:
        ds.write_bytes("predictions.parquet", b"rows")
        ds.meta.update({"stale_days": stale_days, "source_date": DAY if not stale_days else "2026-11-18",
                        "reason": "extract failed" if stale_days else None})


@pytest.fixture
def fleet(tmp_path) -> Storage:
    storage = Storage(str(tmp_path))
    add_clients(storage, ["acme", "globex", "initech"])
    publish(storage, "acme")
    publish(storage, "globex", stale_days=2)
    return storage


class TestFleetWatchOperator:
    def test_defers_to_one_trigger_for_the_whole_fleet(self, fleet):
        op = FleetWatchOperator(task_id="watch", root=fleet.url, run_date=DAY, poll_interval=0.1,
                                max_wait=dt.timedelta(seconds=1))
        with pytest.raises(TaskDeferred) as info:
            op.execute({})
        assert info.value.method_name == "execute_complete"
        classpath, kwargs = info.value.trigger.serialize()
        assert classpath == "sightlines_airflow.triggers.fleet.FleetPredictionsTrigger"
        assert kwargs["clients"] is None and kwargs["date"] == DAY

        async def first() -> dict:
            async for event in info.value.trigger.run():
                return event.payload
            raise AssertionError

        event = asyncio.run(first())
        assert event["status"] == "deadline" and event["missing"] == ["initech"]
        with pytest.raises(AirflowException, match=r"1 of 3 client\(s\) had not published 2026-11-20 .*: initech; "
                                                   "the report task lists why"):
            op.execute_complete({}, event)

    def test_complete(self):
        op = FleetWatchOperator(task_id="watch", root="/tmp", run_date=DAY)
        event = {"status": "complete", "date": DAY, "expected": 3, "published": 3, "message": "all published"}
        assert op.execute_complete({}, event) == {"date": DAY, "expected": 3, "published": 3}
        with pytest.raises(AirflowException, match="resumed without a trigger event"):
            op.execute_complete({}, None)


class TestFleetReportOperator:
    def test_writes_the_status_and_logs_the_table(self, fleet, capsys):
        op = FleetReportOperator(task_id="report", root=fleet.url, run_date=DAY)
        out = op.execute({})
        assert out == {"date": DAY, "counts": {"fresh": 1, "stale": 1, "failed": 0, "missing": 1}, "n_clients": 3,
                       "key": "fleet/2026-11-20/status.json"}
        stored = read_fleet_status(fleet, DAY)
        assert stored["clients"]["globex"]["status"] == "stale" and stored["clients"]["globex"]["stale_days"] == 2
        text = capsys.readouterr().out  # the task logger renders to the console outside a task
        assert "fleet 2026-11-20: 3 client(s): 1 fresh, 1 stale, 0 failed, 1 missing" in text
        assert "globex" in text and "2 day(s) old (from 2026-11-18): extract failed" in text
