"""SightlinesPlugin: registered through the entry point, lazy to import, read-only pages over stored records."""

from __future__ import annotations

import datetime as dt

import pytest
from fastapi.testclient import TestClient
from sightlines_airflow._ui import create_app
from sightlines_airflow.plugin import LazySightlinesApp, SightlinesPlugin

from sightlines.fleet import fleet_status, write_fleet_status
from sightlines.registry import add_clients
from sightlines.result import StepResult
from sightlines.storage import Storage

DAY = "2026-11-21"


@pytest.fixture
def root(tmp_path) -> str:
    """acme: fresh with rev_30 on an older model after its training failed; globex: nothing yet."""
    storage = Storage(str(tmp_path))
    add_clients(storage, ["acme", "globex"])
    store = storage.client("acme")
    day = dt.date.fromisoformat(DAY)
    for rec in (StepResult(step="extract", client="acme", date=day, n_records=400, details={"seconds": 1.5}),
                StepResult(step="train", client="acme", date=day, sightline="rev_30", status="failed",
                           details={"reason": "IsADirectoryError: models/2026-11-21/rev_30.txt"}),
                StepResult(step="publish", client="acme", date=day, status="fallback", n_records=400)):
        store.write_json(store.run_record(day, rec.step_id), rec.to_dict())
    with store.dataset(store.predictions(DAY)) as ds:
        ds.write_bytes("predictions.parquet", b"rows")
        ds.meta.update({"stale_days": 0, "source_date": DAY, "row_count": 400, "unavailable": {},
                        "sightlines": {"rev_30": {"model_date": "2026-11-20", "model_age_days": 1, "fallback": True},
                                       "pv_30": {"model_date": DAY, "model_age_days": 0, "fallback": False}}})
    return str(tmp_path)


class TestSightlinesPlugin:
    def test_registered_through_the_entry_point(self):
        from airflow import plugins_manager

        plugins, _ = plugins_manager._get_plugins()
        ours = [p for p in plugins if p.name == "sightlines"]
        assert len(ours) == 1
        assert ours[0].fastapi_apps[0]["url_prefix"] == "/sightlines"
        assert ours[0].external_views[0]["url_route"] == "sightlines"

    def test_importing_it_builds_nothing(self):
        app = SightlinesPlugin.fastapi_apps[0]["app"]
        assert isinstance(app, LazySightlinesApp)

    def test_the_lazy_app_requires_a_user(self, root, monkeypatch):
        monkeypatch.setenv("SIGHTLINES_ROOT", root)
        client = TestClient(LazySightlinesApp())
        assert client.get("/").status_code == 401

    def test_fleet_page_computed_then_stored(self, root):
        client = TestClient(create_app(root, require_auth=False))
        page = client.get("/", params={"date": DAY})
        assert page.status_code == 200
        assert "computed now (the fleet report has not run for this date)" in page.text
        assert "/clients/acme?date=2026-11-21" in page.text and "older models: rev_30 (2026-11-20)" in page.text
        write_fleet_status(Storage(root), fleet_status(Storage(root), DAY, ["acme", "globex"]))
        data = client.get("/api/fleet").json()  # default: the newest stored date
        assert data["date"] == DAY and data["source"] == "stored"
        assert data["status"]["counts"] == {"fresh": 1, "stale": 0, "failed": 0, "missing": 1}

    def test_client_page_shows_steps_and_sightlines(self, root):
        client = TestClient(create_app(root, require_auth=False))
        data = client.get("/api/clients/acme").json()
        assert data["date"] == DAY
        assert [s["step_id"] for s in data["steps"]] == ["extract", "train-rev_30", "publish"]
        assert data["steps"][1]["status"] == "failed" and "IsADirectoryError" in data["steps"][1]["reason"]
        assert data["predictions"]["sightlines"]["rev_30"] == {"model_date": "2026-11-20", "model_age_days": 1,
                                                               "fallback": True}
        assert data["status"]["status"] == "fresh"
        page = client.get("/clients/acme", params={"date": DAY}).text
        assert "train-rev_30" in page and "IsADirectoryError" in page and "fallback" in page

    def test_bad_input_is_refused(self, root):
        client = TestClient(create_app(root, require_auth=False))
        assert client.get("/api/fleet", params={"date": "yesterday"}).status_code == 400
        assert client.get("/api/clients/..bad").status_code == 404
        assert client.get("/api/clients/globex").json()["steps"] == []

    def test_no_root_is_a_clear_503(self, monkeypatch):
        monkeypatch.delenv("SIGHTLINES_ROOT", raising=False)
        response = TestClient(create_app(require_auth=False)).get("/api/fleet")
        assert response.status_code == 503 and "SIGHTLINES_ROOT" in response.json()["detail"]

    def test_the_pages_only_read(self, root):
        client = TestClient(create_app(root, require_auth=False))
        for path in ("/", "/clients/acme", "/api/fleet", "/api/clients/acme"):
            assert client.post(path).status_code == 405
