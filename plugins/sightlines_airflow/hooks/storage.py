"""Storage credentials for step processes, from an Airflow AWS connection.

A step reads and writes its storage root itself (``s3://bucket/prefix`` through
fsspec/s3fs, which takes the usual AWS variables). This hook turns an Airflow
connection of type ``aws`` into those variables:

==========================  ===============================================
variable                    from the connection
==========================  ===============================================
``AWS_ACCESS_KEY_ID``       login (or ``extra.aws_access_key_id``, or the role/profile the connection names)
``AWS_SECRET_ACCESS_KEY``   password (or ``extra.aws_secret_access_key``)
``AWS_SESSION_TOKEN``       ``extra.aws_session_token`` or an assumed role's token
``AWS_DEFAULT_REGION``      ``extra.region_name``
``AWS_ENDPOINT_URL`` and    ``extra.endpoint_url`` (S3-compatible stores, moto, MinIO);
``SIGHTLINES_S3_ENDPOINT_URL``  a per-service ``extra.service_config.s3.endpoint_url`` wins
==========================  ===============================================

The values are registered with Airflow's secret masker as soon as they are
read, so they print as ``***`` in any task log; operators pass them to the
step through :attr:`~sightlines_airflow.backends.base.StepSpec.secret_env`
(the environment), never on a command line.

Examples
--------
A connection for an S3-compatible endpoint, defined in the environment::

    export AIRFLOW_CONN_SIGHTLINES_S3='{"conn_type": "aws", "login": "AKIA...", "password": "...",
        "extra": {"region_name": "eu-west-1", "endpoint_url": "https://s3.example.com"}}'

and the operator argument ``aws_conn_id="sightlines_s3"``.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

from airflow.sdk import BaseHook

__all__ = ["SightlinesStorageHook"]


def _mask(value: str | None, name: str) -> None:
    if not value:
        return
    try:
        from airflow.sdk.log import mask_secret
    except ImportError:  # pragma: no cover - older Airflow
        from airflow.utils.log.secrets_masker import mask_secret  # type: ignore[no-redef]
    mask_secret(value, name)


class SightlinesStorageHook(BaseHook):
    """Storage credentials for ``sightlines step`` processes from an Airflow AWS connection.

    Parameters
    ----------
    aws_conn_id : str or None
        Airflow connection (type ``aws``). None means the step uses whatever the
        worker has (instance role, ``~/.aws``, environment): no variables are set.
    region_name : str, optional
        Overrides the connection's region.

    Notes
    -----
    Nothing is read at construction; the connection is resolved on the first
    call of :meth:`step_env`, which runs in the task (or the triggerer).
    """

    conn_name_attr = "aws_conn_id"
    hook_name = "Sightlines storage"

    def __init__(self, aws_conn_id: str | None = None, *, region_name: str | None = None) -> None:
        super().__init__()
        self.aws_conn_id = aws_conn_id
        self.region_name = region_name

    @cached_property
    def aws_hook(self) -> Any:
        """The Amazon provider's ``AwsBaseHook`` for the connection (built on first use)."""
        from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

        return AwsBaseHook(aws_conn_id=self.aws_conn_id, client_type="s3", region_name=self.region_name)

    def step_env(self) -> dict[str, str]:
        """Environment variables that give a step process access to storage; secrets are masked.

        Returns
        -------
        dict
            Empty when ``aws_conn_id`` is None.

        Raises
        ------
        airflow.exceptions.AirflowNotFoundException
            The connection does not exist: create it (``airflow connections add``) or fix ``aws_conn_id``.
        """
        if not self.aws_conn_id:
            return {}
        # the Amazon hook quietly falls back to the machine's credentials for an unknown connection id;
        # a connection that was named must exist
        self.get_connection(self.aws_conn_id)
        hook = self.aws_hook
        creds = hook.get_credentials(region_name=self.region_name)  # masks the secret key and token itself
        env: dict[str, str] = {}
        if creds.access_key:
            _mask(creds.access_key, "AWS_ACCESS_KEY_ID")
            env["AWS_ACCESS_KEY_ID"] = creds.access_key
        if creds.secret_key:
            _mask(creds.secret_key, "AWS_SECRET_ACCESS_KEY")
            env["AWS_SECRET_ACCESS_KEY"] = creds.secret_key
        if creds.token:
            _mask(creds.token, "AWS_SESSION_TOKEN")
            env["AWS_SESSION_TOKEN"] = creds.token
        config = hook.conn_config
        region = self.region_name or config.region_name
        if region:
            env["AWS_DEFAULT_REGION"] = region
        endpoint = config.get_service_endpoint_url("s3")
        if endpoint:
            env["AWS_ENDPOINT_URL"] = endpoint
            env["SIGHTLINES_S3_ENDPOINT_URL"] = endpoint
        self.log.info("storage credentials from connection %r: %s", self.aws_conn_id,
                      ", ".join(sorted(env)) or "none")
        return env

    def get_conn(self) -> dict[str, str]:
        """Same as :meth:`step_env` (what a step process needs is its environment)."""
        return self.step_env()

    def storage_options(self) -> dict[str, Any]:
        """The same credentials as fsspec/s3fs ``storage_options`` (for code that opens storage in-process)."""
        env = self.step_env()
        if not env:
            return {}
        opts: dict[str, Any] = {}
        if "AWS_ACCESS_KEY_ID" in env:
            opts["key"] = env["AWS_ACCESS_KEY_ID"]
        if "AWS_SECRET_ACCESS_KEY" in env:
            opts["secret"] = env["AWS_SECRET_ACCESS_KEY"]
        if "AWS_SESSION_TOKEN" in env:
            opts["token"] = env["AWS_SESSION_TOKEN"]
        client_kwargs: dict[str, Any] = {}
        if "AWS_ENDPOINT_URL" in env:
            client_kwargs["endpoint_url"] = env["AWS_ENDPOINT_URL"]
        if "AWS_DEFAULT_REGION" in env:
            client_kwargs["region_name"] = env["AWS_DEFAULT_REGION"]
        if client_kwargs:
            opts["client_kwargs"] = client_kwargs
        return opts
