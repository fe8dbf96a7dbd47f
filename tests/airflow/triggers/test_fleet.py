"""FleetPredictionsTrigger: exact serialisation; one trigger watches any number of clients."""

from __future__ import annotations

import asyncio
import datetime as dt

from sightlines_airflow.triggers.fleet import FleetPredictionsTrigger

from sightlines.registry import add_clients
from sightlines.storage import Storage

DAY = "2026-11-20"


def publish(storage: Storage, client: str, stale_days: int = 0) -> None:
    store = storage.client(client)
    with store.dataset(store.predictions(DAY)) as ds:
        ds.write_bytes("predictions.parquet", b"rows")
        ds.meta.update({"stale_days": stale_days, "source_date": DAY})


def run(trigger: FleetPredictionsTrigger) -> dict:
    async def go() -> dict:
        async for event in trigger.run():
            return event.payload
        raise AssertionError("no event")

    return asyncio.run(asyncio.wait_for(go(), 60))


def later(seconds: float) -> str:
    return (dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=seconds)).isoformat()


class TestFleetPredictionsTrigger:
    def test_serialize(self):
        trigger = FleetPredictionsTrigger(root="s3://bucket/prefix", date=DAY, deadline="2026-11-21T20:00:00+00:00",
                                          aws_conn_id="sightlines_s3")
        assert trigger.serialize() == (
            "sightlines_airflow.triggers.fleet.FleetPredictionsTrigger",
            {"root": "s3://bucket/prefix", "date": DAY, "deadline": "2026-11-21T20:00:00+00:00", "clients": None,
             "poll_interval": 300.0, "aws_conn_id": "sightlines_s3"},
        )

    def test_complete_when_every_client_has_published(self, tmp_path):
        storage = Storage(str(tmp_path))
        for c in ("a", "b"):
            publish(storage, c, stale_days=0 if c == "a" else 3)
        event = run(FleetPredictionsTrigger(root=str(tmp_path), date=DAY, deadline=later(60), clients=["a", "b"],
                                            poll_interval=0.05))
        assert event == {"status": "complete", "date": DAY, "expected": 2, "published": 2, "n_missing": 0,
                         "missing": [], "message": f"all 2 client(s) published {DAY}"}

    def test_an_invalid_client_id_is_not_waited_for(self, tmp_path):
        storage = Storage(str(tmp_path))
        publish(storage, "a")
        event = run(FleetPredictionsTrigger(root=str(tmp_path), date=DAY, deadline=later(60), clients=["a", "../b"],
                                            poll_interval=0.05))
        assert (event["status"], event["expected"], event["published"]) == ("complete", 1, 1)

    def test_waits_for_late_clients(self, tmp_path):
        storage = Storage(str(tmp_path))
        publish(storage, "a")

        async def scenario() -> dict:
            trigger = FleetPredictionsTrigger(root=str(tmp_path), date=DAY, deadline=later(30), clients=["a", "b"],
                                              poll_interval=0.1)
            task = asyncio.ensure_future(trigger.run().__anext__())
            await asyncio.sleep(0.5)
            assert not task.done()
            publish(storage, "b")
            return (await asyncio.wait_for(task, 10)).payload

        assert asyncio.run(scenario())["status"] == "complete"

    def test_the_registry_of_1100_clients_is_covered_by_one_trigger(self, tmp_path):
        """More clients than Airflow's default max_map_length (1,024): no mapping, no ceiling."""
        storage = Storage(str(tmp_path))
        names = [f"c{i:04d}" for i in range(1100)]
        add_clients(storage, names)
        for c in names[:1050]:
            publish(storage, c)
        event = run(FleetPredictionsTrigger(root=str(tmp_path), date=DAY, deadline=later(0.5), poll_interval=0.2))
        assert (event["status"], event["expected"], event["published"], event["n_missing"]) == \
            ("deadline", 1100, 1050, 50)
        assert event["missing"] == names[1050:]
        assert event["message"] == f"50 of 1100 client(s) had not published {DAY} by " + event["message"].split(
            " by ", 1)[1]

    def test_a_bad_root_is_an_error_event(self, tmp_path):
        event = run(FleetPredictionsTrigger(root=str(tmp_path), date=DAY, deadline="not a time"))
        assert event["status"] == "error" and "cannot watch the fleet" in event["message"]
