"""Shared fixtures: a storage root per test, snapshot writers, a real S3 endpoint (moto's server) over HTTP."""

from __future__ import annotations

import gzip
import os
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest

from sightlines.storage import ClientStore, Storage

# LightGBM's OpenMP threads must not fight over the two cores CI has
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


@pytest.fixture
def storage(tmp_path) -> Storage:
    """A fresh local storage root."""
    return Storage(str(tmp_path / "root"))


def _encode(line: Any) -> bytes:
    if isinstance(line, bytes):
        return line
    if isinstance(line, str):
        return line.encode()
    return orjson.dumps(line)


@pytest.fixture
def write_snapshot() -> Callable[..., str]:
    """Write profile lines (dicts, str or bytes) as one gzip NDJSON file of a client's snapshot."""

    def write(store: ClientStore, date: str, lines: list[Any], name: str = "part-00000.ndjson.gz",
              *, bom: bool = False) -> str:
        data = b"\n".join(_encode(x) for x in lines) + b"\n"
        if bom:
            data = b"\xef\xbb\xbf" + data
        key = f"{store.raw(date)}/{name}"
        if name.endswith(".gz"):
            data = gzip.compress(data, mtime=0)
        store.write_bytes(key, data)
        return key

    return write


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A real S3 API over HTTP: moto's server on a free local port, for the whole session."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    yield url
    server.stop()


@pytest.fixture
def s3_root(s3_endpoint, monkeypatch, request) -> str:
    """An ``s3://`` root in a fresh bucket; credentials and endpoint come from the environment."""
    import boto3

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("SIGHTLINES_S3_ENDPOINT_URL", s3_endpoint)
    bucket = "sl-" + request.node.name.lower().replace("_", "-")[:40].strip("-")
    boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1").create_bucket(Bucket=bucket)
    return f"s3://{bucket}/prefix"
