"""sightlines.fleet: fresh / stale / failed / missing per client, from stored manifests and run records."""

from __future__ import annotations

import datetime as dt
import doctest

import pytest

import sightlines.fleet
from sightlines.errors import ClientIdError
from sightlines.fleet import (
    ClientStatus,
    client_status,
    fleet_dates,
    fleet_status,
    fleet_status_key,
    format_fleet_status,
    published_clients,
    read_fleet_status,
    write_fleet_status,
)
from sightlines.result import StepResult

DAY = "2026-11-21"
D = dt.date.fromisoformat(DAY)


def record(storage, client, step, status="ok", sightline=None, reason=None):
    store = storage.client(client)
    rec = StepResult(step=step, client=client, date=D, status=status, sightline=sightline,
                     details={"reason": reason} if reason else {})
    store.write_json(store.run_record(D, rec.step_id), rec.to_dict())


def predictions(storage, client, **meta):
    store = storage.client(client)
    with store.dataset(store.predictions(DAY)) as ds:
        ds.write_bytes("predictions.parquet", b"rows")
        ds.meta.update({"source_date": DAY, "stale_days": 0, **meta})


@pytest.fixture
def fleet(storage):
    # fresh, with one sightline on yesterday's model after its training failed, and one unavailable
    for step in ("extract", "sample", "score", "publish"):
        record(storage, "fresh-co", step)
    record(storage, "fresh-co", "train", "failed", "rev_30", "IsADirectoryError: models/2026-11-21/rev_30.txt")
    record(storage, "fresh-co", "train", "skipped", "optout_7", "only 3 positive examples (at least 20 needed)")
    predictions(storage, "fresh-co", sightlines={"rev_30": {"model_date": "2026-11-20", "fallback": True},
                                                 "pv_30": {"model_date": DAY, "fallback": False}},
                unavailable={"optout_7": "only 3 positive examples"})
    # stale: the snapshot was missing; the predictions of two days ago were republished
    record(storage, "stale-co", "extract", "failed", reason="client stale-co: no snapshot for 2026-11-21")
    record(storage, "stale-co", "publish", "fallback")
    predictions(storage, "stale-co", stale_days=2, source_date="2026-11-19", reason="extract failed: no snapshot")
    # failed: nothing to publish and nothing to fall back to
    record(storage, "failed-co", "extract", "failed", reason="too many bad records (12% > 5%)")
    record(storage, "failed-co", "publish", "failed", reason="nothing to publish and no earlier predictions")
    # in progress: some steps recorded, not published yet
    record(storage, "running-co", "extract")
    return storage


class TestClientStatus:
    def test_fresh_lists_fallbacks_and_failed_steps(self, fleet):
        st = client_status(fleet, "fresh-co", DAY)
        assert st == ClientStatus(client="fresh-co", status="fresh", stale_days=0, source_date=DAY,
                                  failed_steps={"train-rev_30": "IsADirectoryError: models/2026-11-21/rev_30.txt"},
                                  skipped_steps={"train-optout_7": "only 3 positive examples (at least 20 needed)"},
                                  fallback_sightlines={"rev_30": "2026-11-20"},
                                  unavailable={"optout_7": "only 3 positive examples"})
        assert st.summary() == ("fresh: 1 sightline(s) on older models; 1 step(s) failed: train-rev_30; "
                                "1 sightline(s) unavailable")

    def test_stale_counts_the_days_and_says_why(self, fleet):
        st = client_status(fleet, "stale-co", DAY)
        assert (st.status, st.stale_days, st.source_date, st.reason) == ("stale", 2, "2026-11-19",
                                                                         "extract failed: no snapshot")
        assert st.failed_steps == {"extract": "client stale-co: no snapshot for 2026-11-21"}
        assert st.summary() == "stale: 2 day(s) old (from 2026-11-19): extract failed: no snapshot"

    def test_failed_gives_the_reasons_from_the_run_records(self, fleet):
        st = client_status(fleet, "failed-co", DAY)
        assert st.status == "failed" and st.stale_days is None
        assert st.reason == ("extract failed: too many bad records (12% > 5%); "
                             "publish failed: nothing to publish and no earlier predictions")

    def test_missing(self, fleet):
        assert client_status(fleet, "never-ran", DAY).reason == (
            "no run records for 2026-11-21: the daily run of never-ran has not started")
        running = client_status(fleet, "running-co", DAY)
        assert running.status == "missing" and running.reason == "not published yet (steps recorded so far: extract)"

    def test_an_unsafe_client_id_is_refused(self, storage):
        with pytest.raises(ClientIdError, match="client id '../x' is not allowed"):
            client_status(storage, "../x", DAY)


class TestFleetStatus:
    def test_counts_and_order(self, fleet):
        st = fleet_status(fleet, D, ["stale-co", "fresh-co", "failed-co", "running-co", "never-ran"],
                          generated_at="2026-11-22T06:00:00+00:00")
        assert st["date"] == DAY and st["n_clients"] == 5 and st["generated_at"] == "2026-11-22T06:00:00+00:00"
        assert st["counts"] == {"fresh": 1, "stale": 1, "failed": 1, "missing": 2}
        assert list(st["clients"]) == ["failed-co", "fresh-co", "never-ran", "running-co", "stale-co"]
        assert fleet_status(fleet, D, ["fresh-co"], workers=1)["clients"]["fresh-co"]["status"] == "fresh"

    def test_table_puts_problems_first(self, fleet):
        st = fleet_status(fleet, D, ["stale-co", "fresh-co", "failed-co", "never-ran"])
        lines = format_fleet_status(st).splitlines()
        assert lines[0] == "fleet 2026-11-21: 4 client(s): 1 fresh, 1 stale, 1 failed, 1 missing"
        assert [ln.split()[0] for ln in lines[2:]] == ["failed-co", "never-ran", "stale-co", "fresh-co"]
        assert lines[4].split()[1:3] == ["stale", "2"]
        assert "2 day(s) old (from 2026-11-19)" in lines[4]
        short = format_fleet_status(st, limit=2).splitlines()
        assert short[-1] == "... and 2 more client(s)"
        assert all(len(ln) <= 100 for ln in format_fleet_status(st, width=100).splitlines()[1:])

    def test_write_and_read(self, fleet):
        st = fleet_status(fleet, D, ["fresh-co", "stale-co"])
        assert write_fleet_status(fleet, st) == fleet_status_key(D) == "fleet/2026-11-21/status.json"
        assert read_fleet_status(fleet, DAY) == st
        assert read_fleet_status(fleet, "2026-11-20") is None
        assert fleet_dates(fleet) == [DAY]

    def test_an_invalid_registry_id_fails_alone(self, fleet):
        """A hand-edited registry with a bad id: that client is failed with the reason, the rest are reported."""
        st = fleet_status(fleet, D, ["fresh-co", "../x", "bad name"])
        assert st["counts"] == {"fresh": 1, "stale": 0, "failed": 2, "missing": 0}
        assert st["clients"]["../x"]["reason"].startswith("invalid registry entry: client id '../x' is not allowed")
        assert published_clients(fleet, DAY, ["fresh-co", "../x"]) == {"fresh-co"}

    def test_published_clients(self, fleet):
        assert published_clients(fleet, DAY, ["fresh-co", "stale-co", "failed-co", "never-ran"]) == {"fresh-co",
                                                                                                     "stale-co"}


def test_doctests():
    assert doctest.testmod(sightlines.fleet).failed == 0
