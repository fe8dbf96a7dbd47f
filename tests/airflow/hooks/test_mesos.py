"""MesosHook: an Airflow connection becomes a MesosConfig and task defaults; secrets masked; lazy and cached."""

from __future__ import annotations

import asyncio
import json

import pytest
from airflow.sdk.exceptions import AirflowNotFoundException
from airflow.sdk.log import redact
from sightlines_airflow.hooks.mesos import (
    MesosHook,
    MesosTaskDefaults,
    describe_master,
    override_config,
    settings_from_connection,
)

from sightlines.mesos import MesosConfigError


def settings(**fields):
    return settings_from_connection("sightlines_mesos", **fields)


class TestSettingsFromConnection:
    @pytest.mark.parametrize(("fields", "masters"), [
        ({"host": "m1"}, ("http://m1:5050",)),
        ({"host": "m1:5051,m2", "port": 6000, "schema": "https"}, ("https://m1:5051", "https://m2:6000")),
        ({"host": "zk1,zk2:2182", "schema": "zk"}, ("zk://zk1:2181,zk2:2182/mesos",)),
        ({"host": "zk1", "schema": "zk", "extra": {"zk_path": "/mesos-prod"}}, ("zk://zk1:2181/mesos-prod",)),
        ({"host": "https://m1:5050,https://m2:5050"}, ("https://m1:5050", "https://m2:5050")),
        ({"host": "ignored", "extra": {"master": "zk://zk1:2181,zk2:2181/mesos"}}, ("zk://zk1:2181,zk2:2181/mesos",)),
    ])
    def test_the_master_from_host_port_schema_or_extra(self, fields, masters):
        assert settings(**fields).config.masters == masters

    def test_login_password_and_extras(self):
        s = settings(host="m1", login="sightlines", password="pw-very-secret", extra={
            "role": "sightlines", "user": "batch", "failover_timeout": "3600", "max_relaunches": "4",
            "checkpoint": "false", "verify": "false", "offer_timeout": 120, "kill_grace_period": "5"})
        c = s.config
        assert (c.principal, c.secret, c.role, c.user) == ("sightlines", "pw-very-secret", "sightlines", "batch")
        assert (c.failover_timeout, c.max_relaunches, c.checkpoint, c.verify, c.offer_timeout,
                c.kill_grace_period) == (3600.0, 4, False, False, 120.0, 5.0)
        assert "pw-very-secret" not in repr(s)
        assert redact("secret is pw-very-secret") == "secret is ***"

    def test_verify_may_be_a_ca_bundle(self):
        assert settings(host="m1", schema="https", extra={"verify": "/etc/ssl/mesos-ca.pem"}).config.verify == \
            "/etc/ssl/mesos-ca.pem"
        assert settings(host="m1", extra={"verify": True}).config.verify is True

    def test_zookeeper_credentials_are_masked_and_not_shown(self):
        s = settings(extra={"master": "zk://sl:zk-pass-123@zk1:2181/mesos"})
        assert redact("zk-pass-123") == "***"
        assert describe_master(s.config) == "zk://***@zk1:2181/mesos"

    def test_task_defaults(self):
        d = settings(host="m1", extra={"docker_image": "registry.example/sightlines:1.4", "docker_force_pull": "true",
                                       "step_command": "/opt/sl/bin/python -m sightlines", "credentials": "task_env",
                                       "env": '{"TZ": "UTC"}', "labels": {"team": "data"},
                                       "disk_mb": {"extract": 20480, "*": 1024}}).task_defaults
        assert d == MesosTaskDefaults(step_command=("/opt/sl/bin/python", "-m", "sightlines"),
                                      docker_image="registry.example/sightlines:1.4", docker_force_pull=True,
                                      credentials="task_env", env={"TZ": "UTC"}, labels={"team": "data"},
                                      disk_mb={"extract": 20480.0, "*": 1024.0})
        assert (d.disk_for("extract"), d.disk_for("train")) == (20480.0, 1024.0)
        assert settings(host="m1").task_defaults == MesosTaskDefaults()

    @pytest.mark.parametrize(("fields", "match"), [
        ({}, "Airflow connection 'sightlines_mesos' names no Mesos master: set its host"),
        ({"host": "m1", "extra": {"docker-image": "x"}}, r"unknown extra key\(s\) \['docker-image'\]; known keys"),
        ({"host": "m1", "schema": "ftp"}, "schema='ftp'; expected 'http', 'https' or 'zk'"),
        ({"host": "m1", "login": "sl"}, "has a login \\('sl'\\) but no password"),
        ({"host": "m1", "password": "x"}, "has a password but no login"),
        ({"host": "m1", "extra": {"role": "bad role"}}, "Airflow connection 'sightlines_mesos': MesosConfig: "
                                                         "role='bad role' is not a valid Mesos role"),
        ({"host": "m1", "extra": {"offer_timeout": "soon"}}, "offer_timeout='soon'; expected a number"),
        ({"host": "m1", "extra": {"checkpoint": "maybe"}}, "checkpoint='maybe'; expected true or false"),
        ({"host": "m1", "extra": {"credentials": "env"}},
         "credentials='env'; expected one of \\['agent', 'task_env'\\]"),
        ({"host": "m1", "extra": {"step_command": ""}}, "step_command=''; give the program that runs a step"),
        ({"host": "m1", "extra": {"disk_mb": -1}}, "disk_mb=-1; expected MiB >= 0"),
    ])
    def test_errors_name_the_connection_and_the_fix(self, fields, match):
        with pytest.raises(MesosConfigError, match=match):
            settings(**fields)

    def test_config_overrides_from_backend_options(self):
        s = settings(host="m1", extra={"offer_timeout": 600})
        assert override_config(s, {"offer_timeout": 30, "max_relaunches": 0}).config.offer_timeout == 30.0
        assert override_config(s, {}) is s
        with pytest.raises(MesosConfigError, match=r"cannot set \['secret'\]"):
            override_config(s, {"secret": "x"})
        with pytest.raises(MesosConfigError, match="offer_timeout=-1 is invalid"):
            override_config(s, {"offer_timeout": -1})


class TestMesosHook:
    def test_reads_the_connection_once_on_first_use(self, monkeypatch):
        monkeypatch.setenv("AIRFLOW_CONN_MESOS_TEST", json.dumps({
            "conn_type": "mesos", "host": "m1:5050,m2:5050", "login": "sl", "password": "hook-secret-42",
            "extra": {"role": "batch", "docker_image": "sightlines:1.4"}}))
        hook = MesosHook("mesos_test")
        assert hook._settings is None  # building reads nothing
        config = hook.get_conn()
        assert config.masters == ("http://m1:5050", "http://m2:5050") and config.role == "batch"
        assert hook.get_settings().task_defaults.docker_image == "sightlines:1.4"
        monkeypatch.delenv("AIRFLOW_CONN_MESOS_TEST")
        assert hook.get_settings().config is config  # cached
        assert redact("hook-secret-42") == "***"

    def test_async_settings_for_the_triggerer(self, monkeypatch):
        monkeypatch.setenv("AIRFLOW_CONN_MESOS_ASYNC", json.dumps({"conn_type": "mesos", "host": "m9"}))
        s = asyncio.run(MesosHook("mesos_async").aget_settings())
        assert s.conn_id == "mesos_async" and s.config.masters == ("http://m9:5050",)

    def test_the_default_connection_id(self):
        assert MesosHook().mesos_conn_id == MesosHook.default_conn_name == "sightlines_mesos"

    def test_a_missing_connection_is_named(self, monkeypatch):
        monkeypatch.delenv("AIRFLOW_CONN_NOPE", raising=False)
        with pytest.raises(AirflowNotFoundException, match="nope"):
            MesosHook("nope").get_settings()


def test_docstring_examples():
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module("sightlines_airflow.hooks.mesos"))
    assert result.attempted > 0 and result.failed == 0
