"""Leading-master detection: URL lists with 307 redirects, ZooKeeper json.info_ znodes, TLS."""

from __future__ import annotations

import json
import logging

import httpx
import pytest
from kazoo.exceptions import NoNodeError
from kazoo.handlers.threading import KazooTimeoutError

from sightlines.mesos import MasterNotFoundError, MesosAuthError, MesosConfig, MesosConfigError, TaskSpec, run_task
from sightlines.mesos._http import build_http_client, resolve_location
from sightlines.mesos.detector import (
    StaticDetector,
    ZkTarget,
    ZooKeeperDetector,
    _kazoo_client,
    detector_for,
    leader_znode,
    master_url_from_info,
    parse_zk_url,
)

from .conftest import fast_config, run
from .fake_master import FakeMesosMaster

pytestmark = pytest.mark.timeout(60)

#: what a Mesos 1.11 master writes into its json.info_ znode (values made up, shape real)
MASTER_INFO = {
    "address": {"hostname": "mesos-master-2.example.com", "ip": "10.0.3.12", "port": 5050},
    "hostname": "mesos-master-2.example.com",
    "id": "a3c7b5e0-2f0a-4a7e-9d43-5c1f6f0e1b2d",
    "ip": 201523210,  # 10.0.3.12 packed the way MasterInfo.ip is
    "pid": "master@10.0.3.12:5050",
    "port": 5050,
    "version": "1.11.0",
    "capabilities": [{"type": "AGENT_UPDATE"}, {"type": "AGENT_DRAINING"}, {"type": "QUOTA_V2"}],
}

DEAD_URL = "http://127.0.0.1:9"  # nothing listens on the discard port


async def detect(detector_factory, config):
    async with build_http_client(config) as http:
        return await detector_factory(http).detect()


class TestZnodeParsing:
    def test_leader_is_lowest_json_info_sequence(self):
        children = ["json.info_0000000012", "log_replicas", "json.info_0000000009", "info_0000000001",
                    "json.info_garbage"]
        assert leader_znode(children) == "json.info_0000000009"
        assert leader_znode(["log_replicas"]) is None
        # numeric, not lexical, order
        assert leader_znode(["json.info_10000000000", "json.info_9999999999"]) == "json.info_9999999999"

    def test_master_info_prefers_the_hostname(self):
        assert master_url_from_info(json.dumps(MASTER_INFO).encode()) == "http://mesos-master-2.example.com:5050"
        assert master_url_from_info(json.dumps(MASTER_INFO), "https") == "https://mesos-master-2.example.com:5050"

    @pytest.mark.parametrize("info, url", [
        ({"address": {"ip": "10.0.3.12", "port": 5050}}, "http://10.0.3.12:5050"),
        ({"pid": "master@10.0.3.12:5051"}, "http://10.0.3.12:5051"),
        ({"ip": 201523210, "port": 5050}, "http://10.0.3.12:5050"),
        ({"ip": 16842879, "port": 5050}, "http://127.0.1.1:5050"),  # the operator API docs' example
        ({"address": {"ip": "fd00::12", "port": 5050}}, "http://[fd00::12]:5050"),
    ])
    def test_master_info_fallbacks(self, info, url):
        assert master_url_from_info(json.dumps(info)) == url

    @pytest.mark.parametrize("data", [b"master@10.0.0.1:5050", b"[]", b'{"version": "1.11.0"}'])
    def test_unusable_master_info(self, data):
        with pytest.raises(MasterNotFoundError):
            master_url_from_info(data)

    def test_parse_zk_url(self):
        target = parse_zk_url("zk://sl:pa%24s@zk1:2181,zk2:2181/mesos/")
        assert (target.hosts, target.path, target.credentials) == ("zk1:2181,zk2:2181", "/mesos", "sl:pa$s")
        assert "pa$s" not in repr(target) and "pa$s" not in str(target)
        for bad in ("zk://zk1:2181", "zk:///mesos", "http://zk1/mesos"):
            with pytest.raises(MesosConfigError):
                parse_zk_url(bad)


class FakeKazoo:
    """The part of KazooClient the detector uses, over an in-memory tree."""

    def __init__(self, nodes: dict[str, bytes], *, fail_start: bool = False, vanish_once: str | None = None):
        self.nodes = nodes
        self.fail_start = fail_start
        self.vanish_once = vanish_once
        self.started = self.stopped = self.closed = False

    def start(self, timeout: float = 15) -> None:
        if self.fail_start:
            raise KazooTimeoutError("Connection time-out")
        self.started = True

    def get_children(self, path: str) -> list[str]:
        prefix = path.rstrip("/") + "/"
        return [p[len(prefix):] for p in self.nodes if p.startswith(prefix) and "/" not in p[len(prefix):]]

    def get(self, path: str) -> tuple[bytes, object]:
        if path.endswith(self.vanish_once or "\0"):
            self.vanish_once = None
            self.nodes.pop(path)
            raise NoNodeError()
        return self.nodes[path], object()

    def stop(self) -> None:
        self.stopped = True

    def close(self) -> None:
        self.closed = True


def zk_tree(leader_info: dict, standby_info: dict | None = None) -> dict[str, bytes]:
    tree = {"/mesos/json.info_0000000007": json.dumps(leader_info).encode(), "/mesos/log_replicas": b""}
    if standby_info is not None:
        tree["/mesos/json.info_0000000009"] = json.dumps(standby_info).encode()
    return tree


class TestZooKeeperDetector:
    def test_reads_the_leader(self):
        client = FakeKazoo(zk_tree(MASTER_INFO, {"address": {"hostname": "m3", "port": 5050}}))
        seen: list[ZkTarget] = []

        def factory(target, timeout):
            seen.append(target)
            return client

        detector = ZooKeeperDetector("zk://u:p@zk1:2181,zk2:2181/mesos", scheme="https", client_factory=factory)
        assert run(detector.detect()) == "https://mesos-master-2.example.com:5050"
        assert seen[0].hosts == "zk1:2181,zk2:2181" and seen[0].credentials == "u:p"
        assert client.started and client.stopped and client.closed

    def test_leader_stepping_down_while_reading_is_retried(self):
        tree = zk_tree({"address": {"hostname": "old", "port": 5050}}, {"address": {"hostname": "new", "port": 5050}})
        client = FakeKazoo(tree, vanish_once="json.info_0000000007")
        detector = ZooKeeperDetector("zk://zk1:2181/mesos", client_factory=lambda t, s: client)
        assert run(detector.detect()) == "http://new:5050"

    def test_no_leader(self):
        detector = ZooKeeperDetector("zk://zk1:2181/mesos", client_factory=lambda t, s: FakeKazoo({}))
        with pytest.raises(MasterNotFoundError, match="No Mesos master is registered under zk://zk1:2181/mesos"):
            run(detector.detect())

    def test_zookeeper_unreachable(self):
        client = FakeKazoo({}, fail_start=True)
        detector = ZooKeeperDetector("zk://zk1:2181/mesos", timeout=0.5, client_factory=lambda t, s: client)
        with pytest.raises(MasterNotFoundError, match="Could not connect to ZooKeeper zk://zk1:2181/mesos"):
            run(detector.detect())
        assert client.closed

    def test_real_kazoo_client_is_built_with_digest_auth(self):
        from kazoo.client import KazooClient

        client = _kazoo_client(parse_zk_url("zk://u:p@127.0.0.1:2181/mesos"), 1.0)
        assert isinstance(client, KazooClient) and ("digest", "u:p") in client.auth_data
        client.close()

    def test_config_picks_the_zookeeper_detector(self):
        config = MesosConfig(master="zk://zk1:2181/mesos", zk_scheme="https")
        detector = detector_for(config, httpx.AsyncClient())
        assert isinstance(detector, ZooKeeperDetector) and detector.scheme == "https"

    def test_run_task_through_zookeeper(self, master, tmp_path):
        address = {"address": {"hostname": "127.0.0.1", "ip": "127.0.0.1", "port": master.port}}
        tree = zk_tree(address, {"address": {"hostname": "127.0.0.1", "port": 9}})
        detector = ZooKeeperDetector("zk://zk1:2181/mesos", client_factory=lambda t, s: FakeKazoo(tree))
        config = fast_config("zk://zk1:2181/mesos")
        marker = tmp_path / "marker.txt"
        outcome = run(run_task(config, TaskSpec(task_id="t-zk", command=f"echo ok >> {marker}"), detector=detector))
        assert outcome.ok and marker.read_text() == "ok\n" and master.launch_count() == 1


class TestStaticDetector:
    def test_resolve_location_forms(self):
        assert resolve_location("https://m1:5050", "//m2:5050/api/v1/scheduler") == "https://m2:5050"
        assert resolve_location("http://m1:5050", "m2:5050") == "http://m2:5050"
        assert resolve_location("http://m1:5050", "http://m2:5051/api/v1") == "http://m2:5051"
        assert resolve_location("https://gw/mesos", "/mesos/api/v1/scheduler") == "https://gw/mesos"

    def test_standby_redirects_to_the_leader(self, master, tmp_path):
        with FakeMesosMaster(tmp_path / "standby", redirect_to=master.url) as standby:
            config = fast_config(f"{DEAD_URL},{standby.url}")
            found = run(detect(lambda http: StaticDetector(config.masters, http, config), config))
        assert found == master.url
        assert [r["path"] for r in standby.requests] == ["/api/v1"]

    def test_no_master_answers(self):
        config = fast_config(f"{DEAD_URL},http://127.0.0.1:7")
        with pytest.raises(MasterNotFoundError, match=r"Tried: http://127.0.0.1:9: ConnectError.*127.0.0.1:7"):
            run(detect(lambda http: StaticDetector(config.masters, http, config), config))

    def test_run_task_through_a_standby_master(self, master, tmp_path):
        marker = tmp_path / "marker.txt"
        with FakeMesosMaster(tmp_path / "standby", redirect_to=master.url) as standby:
            config = fast_config(standby.url)
            outcome = run(run_task(config, TaskSpec(task_id="t-307", command=f"echo ok >> {marker}")))
        assert outcome.ok and marker.read_text() == "ok\n" and master.launch_count() == 1
        assert standby.requests and all(r["method"] == "POST" for r in standby.requests)
        assert master.subscriptions and master.calls_of("ACCEPT")  # everything reached the leader

    def test_wrong_credentials(self, tmp_path):
        with FakeMesosMaster(tmp_path / "sb", principal="sl", secret="right") as secured:
            config = fast_config(secured.url, principal="sl", secret="wrong-secret")
            with pytest.raises(MesosAuthError, match="HTTP 401.*principal 'sl'.*Check the principal and secret") as info:
                run(detect(lambda http: StaticDetector(config.masters, http, config), config))
        assert "wrong-secret" not in str(info.value)


class TestTLS:
    def test_verification_is_on_by_default(self, tls_master):
        config = fast_config(tls_master.url)
        assert config.verify is True
        with pytest.raises(MasterNotFoundError, match="not trusted: set MesosConfig.verify to the path of the CA"):
            run(detect(lambda http: StaticDetector(config.masters, http, config), config))

    def test_ca_bundle_path(self, tls_master, tls_files, tmp_path):
        config = fast_config(tls_master.url, verify=str(tls_files[0]))
        marker = tmp_path / "marker.txt"
        outcome = run(run_task(config, TaskSpec(task_id="t-tls", command=f"echo ok >> {marker}")))
        assert outcome.ok and marker.read_text() == "ok\n"
        assert outcome.sandbox.stdout_url.startswith("https://")  # agents are read over TLS too

    def test_missing_ca_bundle_is_a_config_error(self, tmp_path):
        with pytest.raises(MesosConfigError, match="not a readable CA bundle"):
            build_http_client(fast_config("https://m:5050", verify=str(tmp_path / "nope.pem")))

    def test_insecure_flag_works_and_warns(self, tls_master, caplog):
        caplog.set_level(logging.WARNING)
        config = fast_config(tls_master.url, verify=False)
        found = run(detect(lambda http: StaticDetector(config.masters, http, config), config))
        assert found == tls_master.url
        assert "TLS certificate verification is OFF" in caplog.text
