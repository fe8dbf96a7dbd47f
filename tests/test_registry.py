"""The client registry and per-client config."""

import time

import pytest

from sightlines.config import ClientConfig
from sightlines.errors import ClientIdError, ConfigError
from sightlines.registry import add_clients, load_registry, remove_clients, set_fleet


def test_add_list_remove_and_config(storage):
    add_clients(storage, ["acme", "globex"], config={"bad_fraction_max": 0.2})
    add_clients(storage, ["acme"], config={"backend": "mesos"})
    reg = load_registry(storage)
    assert reg.names() == ["acme", "globex"]
    assert reg.config("acme").bad_fraction_max == 0.2 and reg.backend("acme") == "mesos"
    assert reg.backend("globex") == "local"
    set_fleet(storage, backend="mesos")
    assert load_registry(storage).backend("globex") == "mesos"
    remove_clients(storage, ["globex"])
    assert load_registry(storage).names() == ["acme"]
    with pytest.raises(ConfigError, match="not in the registry; add it with `sightlines clients add nope`"):
        load_registry(storage).config("nope")


def test_bad_ids_and_configs_are_refused_before_writing(storage):
    with pytest.raises(ClientIdError):
        add_clients(storage, ["ok", "../evil"])
    with pytest.raises(ConfigError, match=r"bad_fraction_max is 2; expected a number between 0 and 1"):
        add_clients(storage, ["x"], config={"bad_fraction_max": 2})
    with pytest.raises(ConfigError, match=r"unknown setting\(s\) \['colour'\]"):
        add_clients(storage, ["x"], config={"colour": "red"})
    assert load_registry(storage).names() == []


def test_config_round_trip_keeps_only_changes():
    cfg = ClientConfig.from_dict({"roles": {"purchases": "orders"}, "training": {"depths": [2, 3]}})
    assert cfg.to_dict() == {"roles": {"purchases": "orders"}, "training": {"depths": (2, 3)}}
    assert ClientConfig.from_dict(cfg.to_dict()) == cfg


def test_ten_thousand_clients_load_quickly(storage):
    add_clients(storage, [f"client-{i:05d}" for i in range(10_000)])
    t = time.perf_counter()
    reg = load_registry(storage)
    elapsed = time.perf_counter() - t
    assert len(reg.names()) == 10_000
    print(f"registry of 10,000 clients loaded in {elapsed * 1000:.1f} ms")  # figures live in BENCHMARKS.md


def test_concurrent_edits_of_a_local_registry_lose_nothing(storage):
    """Eight processes adding clients at once: every one is in the registry afterwards."""
    import subprocess
    import sys

    code = ("import sys; from sightlines.registry import add_clients; "
            "[add_clients(sys.argv[1], [f'{sys.argv[2]}-{i}']) for i in range(10)]")
    procs = [subprocess.Popen([sys.executable, "-c", code, storage.url, f"p{n}"]) for n in range(8)]
    assert [p.wait(timeout=120) for p in procs] == [0] * 8
    assert len(load_registry(storage).names()) == 80
