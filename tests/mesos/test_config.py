"""MesosConfig and TaskSpec check themselves and never show secrets."""

from __future__ import annotations

import pytest

from sightlines.errors import ConfigError, SightlinesError
from sightlines.mesos import MesosConfig, MesosConfigError, TaskSpec


class TestMesosConfig:
    def test_master_list_forms(self):
        assert MesosConfig(master="http://m1:5050/, https://m2:5050").masters == ("http://m1:5050", "https://m2:5050")
        assert MesosConfig(master=["http://m1:5050", "http://m2:5050"]).masters == ("http://m1:5050", "http://m2:5050")
        assert MesosConfig(master="zk://z1:2181,z2:2181/mesos").masters == ("zk://z1:2181,z2:2181/mesos",)

    @pytest.mark.parametrize("master, match", [
        ("", "master is empty"),
        ("m1:5050", "has no scheme"),
        (["zk://z1:2181/mesos", "http://m1:5050"], "mixes a zk:// URL"),
    ])
    def test_bad_master(self, master, match):
        with pytest.raises(MesosConfigError, match=match):
            MesosConfig(master=master)

    def test_secret_never_in_repr_and_comes_with_a_principal(self):
        config = MesosConfig(master="http://m:5050", principal="sl", secret="pa55-word")
        assert "pa55-word" not in repr(config) and "principal='sl'" in repr(config)
        with pytest.raises(MesosConfigError, match="principal and secret go together"):
            MesosConfig(master="http://m:5050", principal="sl")

    def test_credentials_in_urls(self):
        config = MesosConfig(master="zk://sl:zk-pa55@z1:2181,z2:2181/mesos", principal="sl", secret="pa55-word")
        assert "zk-pa55" not in repr(config) and "pa55-word" not in repr(config)
        assert "zk://***@z1:2181,z2:2181/mesos" in repr(config)
        with pytest.raises(MesosConfigError, match="holds credentials; give them as principal and secret") as info:
            MesosConfig(master="https://sl:http-pa55@m1:5050")
        assert "http-pa55" not in str(info.value)

    @pytest.mark.parametrize("field, value", [
        ("heartbeat_tolerance", 0), ("offer_timeout", -1), ("request_timeout", float("nan")),
        ("max_relaunches", -1), ("role", "bad role"), ("role", "-x"), ("role", "a//b"), ("zk_scheme", "ftp"),
        ("verify", 3),
    ])
    def test_bad_values_name_the_field(self, field, value):
        with pytest.raises(MesosConfigError, match=field):
            MesosConfig(master="http://m:5050", **{field: value})

    def test_errors_are_sightlines_config_errors(self):
        with pytest.raises(ConfigError) as info:
            MesosConfig(master="")
        assert isinstance(info.value, SightlinesError) and info.value.exit_code == 2

    def test_roles(self):
        assert MesosConfig(master="http://m:5050", role="batch/sightlines").role == "batch/sightlines"
        assert MesosConfig(master="http://m:5050").role == "*"

    def test_framework_user_defaults_to_current_user(self):
        assert MesosConfig(master="http://m:5050").framework_user
        assert MesosConfig(master="http://m:5050", user="nobody").framework_user == "nobody"


class TestTaskSpec:
    def test_command_forms(self):
        assert TaskSpec(task_id="t", command="echo hi").shell
        spec = TaskSpec(task_id="t", command=["echo", "hi"])
        assert not spec.shell and spec.command == ("echo", "hi")

    @pytest.mark.parametrize("task_id", ["", "a b", "a/b", ".hidden", "x" * 201, "é"])
    def test_bad_task_ids(self, task_id):
        with pytest.raises(MesosConfigError, match="not a valid Mesos task id"):
            TaskSpec(task_id=task_id, command="true")

    @pytest.mark.parametrize("kwargs, match", [
        ({"command": ""}, "command is empty"),
        ({"command": []}, "non-empty list"),
        ({"command": ["ok", 3]}, "non-empty list"),
        ({"env": {"A=B": "x"}}, "env entry"),
        ({"env": {"A": 1}}, "env entry"),
        ({"cpus": 0}, "cpus"),
        ({"mem_mb": -5}, "mem_mb"),
        ({"disk_mb": -1}, "disk_mb"),
    ])
    def test_bad_values(self, kwargs, match):
        kwargs.setdefault("command", "true")
        with pytest.raises(MesosConfigError, match=match):
            TaskSpec(task_id="t", **kwargs)

    def test_env_values_not_in_repr(self):
        spec = TaskSpec(task_id="t", command="true", env={"API_KEY": "k-999"})
        assert "API_KEY" in repr(spec) and "k-999" not in repr(spec)

    def test_resources_and_names(self):
        spec = TaskSpec(task_id="sl.acme.2026-11-24.train", command="true", cpus=2, mem_mb=512)
        assert spec.resources() == {"cpus": 2.0, "mem": 512.0}
        assert TaskSpec(task_id="t", command="true", disk_mb=100).resources()["disk"] == 100.0
        assert spec.display_name == spec.task_id
        assert spec.framework_name("sightlines:") == "sightlines:sl.acme.2026-11-24.train"

    def test_dict_round_trip_and_unknown_keys(self):
        spec = TaskSpec(task_id="t", command=["a", "b"], env={"X": "1"}, labels={"k": "v"}, docker_image="img")
        assert TaskSpec.from_dict(spec.to_dict()) == spec
        with pytest.raises(MesosConfigError, match="unknown keys \\['cpu'\\]"):
            TaskSpec.from_dict({"task_id": "t", "command": "true", "cpu": 1})
