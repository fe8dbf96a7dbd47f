"""The command line: thin commands, clear messages, exit codes an orchestrator can act on."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


def sl(*args: str, root: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sightlines", *args, "--root", root], capture_output=True, text=True,
                          timeout=300)


def test_usage_and_config_errors_exit_2(storage):
    r = sl("step", "train", "--client", "acme", "--date", "2026-11-24", root=storage.url)
    assert r.returncode == 2 and "step train needs --sightline NAME" in r.stderr
    r = sl("clients", "add", "bad/name", root=storage.url)
    assert r.returncode == 2 and "client id 'bad/name' is not allowed" in r.stderr
    r = sl("clients", "add", "acme", "--config", '{"training": {"folds": 1}}', root=storage.url)
    assert r.returncode == 2 and "training.folds must be at least 2" in r.stderr
    r = sl("clients", "add", "acme", "--config", "{bad_fraction_max: 0.1}", root=storage.url)
    assert r.returncode == 2 and "--config is not valid JSON (Expecting property name" in r.stderr
    r = sl("clients", "fleet", "--airflow", "{'pool': 'x'}", root=storage.url)
    assert r.returncode == 2 and "--airflow is not valid JSON" in r.stderr


def test_a_missing_input_exits_1_and_is_recorded(storage):
    r = sl("step", "extract", "--client", "acme", "--date", "2026-11-24", root=storage.url)
    assert r.returncode == 1 and "acme: no snapshot for 2026-11-24" in r.stderr
    record = json.loads((storage.client("acme").read_bytes("runs/2026-11-24/extract.json")))
    assert record["status"] == "failed" and "no snapshot" in record["details"]["reason"]


def test_an_unavailable_sightline_exits_99_with_the_reason(storage, write_snapshot):
    store = storage.client("young")
    users = [{"id": f"y-{i}", "created": "2026-10-01T00:00:00Z",
              "pageviews": [{"time": f"2026-11-{1 + i % 20:02d}T10:00:00Z"}] * (1 + i % 4)} for i in range(400)]
    write_snapshot(store, "2026-11-24", users)
    assert sl("step", "extract", "--client", "young", "--date", "2026-11-24", root=storage.url).returncode == 0
    assert sl("step", "sample", "--client", "young", "--date", "2026-11-24", root=storage.url).returncode == 0
    r = sl("step", "train", "--client", "young", "--date", "2026-11-24", "--sightline", "rev_365", "--json",
           root=storage.url)
    assert r.returncode == 99, r.stderr
    assert "not enough history for a 365-day horizon" in r.stderr
    record = store.read_json("runs/2026-11-24/train-rev_365.json")
    assert record["status"] == "skipped"


@pytest.mark.parametrize("cmd", [["--help"], ["run", "--help"], ["step", "--help"], ["catalog"]])
def test_help_and_catalog(cmd, storage):
    args = cmd if cmd[0] == "--help" or "--help" in cmd else cmd
    r = subprocess.run([sys.executable, "-m", "sightlines", *args], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr


def test_the_demo_runs_a_brand_and_shows_a_user(storage):
    """The README's first command, small: one brand, its day run end to end, one user's sightlines printed."""
    r = sl("demo", "--clients", "1", "--users", "600", "--date", "2026-11-24", "--days", "2", root=storage.url)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "acme-outdoor 2026-11-24: fresh predictions published" in r.stdout
    assert "Sightlines of user " in r.stdout and "purchase_7" in r.stdout and "k-tile" in r.stdout
    store = storage.client("acme-outdoor")
    # two snapshots of the same synthetic world: the day before has the same users, with less history
    assert store.list(store.raw("2026-11-23")) and store.list(store.raw("2026-11-24"))
    assert store.manifest(store.predictions("2026-11-23")) is None  # only the run date was run
    manifest = store.manifest(store.predictions("2026-11-24"))
    assert manifest["stale_days"] == 0 and "purchase_7" in manifest["sightlines"]
    # 600 users are too few for some sightlines: each is either published or unavailable with a reason
    assert len(manifest["sightlines"]) + len(manifest["unavailable"]) == 13
    assert sl("clients", "list", root=storage.url).stdout.split()[0] == "acme-outdoor"
