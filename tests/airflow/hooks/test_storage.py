"""SightlinesStorageHook: an Airflow AWS connection becomes the step's environment (masked), end to end on S3."""

from __future__ import annotations

import json

import boto3
import pytest
from airflow.sdk.exceptions import AirflowNotFoundException
from airflow.sdk.log import redact
from sightlines_airflow.backends.base import JobState, StepSpec
from sightlines_airflow.backends.local import LocalBackend
from sightlines_airflow.hooks.storage import SightlinesStorageHook

from sightlines.storage import Storage
from sightlines.synth import generate_client

from ..conftest import D1

KEY, SECRET, TOKEN = "AKIAEXAMPLEKEY123", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "session-token-for-test"


@pytest.fixture
def aws_connection(monkeypatch, s3_endpoint):
    """An Airflow connection ``sightlines_s3`` (defined in the environment) for moto's S3 server."""
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL",
                "SIGHTLINES_S3_ENDPOINT_URL", "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AIRFLOW_CONN_SIGHTLINES_S3", json.dumps({
        "conn_type": "aws", "login": KEY, "password": SECRET,
        "extra": {"aws_session_token": TOKEN, "region_name": "us-east-1", "endpoint_url": s3_endpoint},
    }))
    return s3_endpoint


class TestSightlinesStorageHook:
    def test_no_connection_means_no_variables(self):
        assert SightlinesStorageHook(None).step_env() == {}
        assert SightlinesStorageHook(None).storage_options() == {}

    def test_connection_to_environment(self, aws_connection):
        env = SightlinesStorageHook("sightlines_s3").step_env()
        assert env == {"AWS_ACCESS_KEY_ID": KEY, "AWS_SECRET_ACCESS_KEY": SECRET, "AWS_SESSION_TOKEN": TOKEN,
                       "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": aws_connection,
                       "SIGHTLINES_S3_ENDPOINT_URL": aws_connection}

    def test_secrets_are_masked_in_logs(self, aws_connection):
        SightlinesStorageHook("sightlines_s3").step_env()
        for value in (KEY, SECRET, TOKEN):
            assert redact(f"the value is {value}") == "the value is ***"

    def test_storage_options(self, aws_connection):
        assert SightlinesStorageHook("sightlines_s3").storage_options() == {
            "key": KEY, "secret": SECRET, "token": TOKEN,
            "client_kwargs": {"endpoint_url": aws_connection, "region_name": "us-east-1"}}

    def test_a_missing_connection_is_named(self, monkeypatch):
        monkeypatch.delenv("AIRFLOW_CONN_NOPE", raising=False)
        with pytest.raises(AirflowNotFoundException, match="nope"):
            SightlinesStorageHook("nope").step_env()

    def test_a_step_reaches_s3_with_the_connections_credentials_only(self, aws_connection):
        """The step process gets the credentials through its environment and extracts a client stored on S3."""
        boto3.client("s3", endpoint_url=aws_connection, region_name="us-east-1", aws_access_key_id=KEY,
                     aws_secret_access_key=SECRET).create_bucket(Bucket="sightlines-hook")
        hook = SightlinesStorageHook("sightlines_s3")
        root = "s3://sightlines-hook/root"
        storage = Storage(root, storage_options=hook.storage_options())
        generate_client(storage.client("acme"), users=150, date=D1, seed=1, workers=1)

        backend = LocalBackend()
        spec = StepSpec(step="extract", client="acme", run_date=D1.isoformat(), root=root,
                        secret_env=hook.step_env())
        job = backend.submit(spec)
        assert SECRET not in " ".join(backend._jobs[job].proc.args)
        assert backend.wait(job) == JobState.SUCCEEDED, backend.result(job).log_tail
        assert backend.result(job).result["n_records"] == 150
        assert storage.client("acme").manifest("features/2026-11-20")["n_users"] == 150
