"""Fixtures for the Mesos client tests: a fake master on a real socket, and fast settings."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Awaitable, Iterator, TypeVar

import pytest

from sightlines.mesos import MesosConfig

from .fake_master import AgentSpec, FakeMesosMaster

T = TypeVar("T")

#: every test's async part must finish within this (a bug must not hang CI)
RUN_TIMEOUT = 20.0


def run(coro: Awaitable[T], timeout: float = RUN_TIMEOUT) -> T:
    """Run a coroutine to completion in a fresh event loop, with a hard timeout."""
    return asyncio.run(asyncio.wait_for(coro, timeout))  # type: ignore[arg-type]


#: MesosConfig timings scaled down for tests (the fake heartbeats every 0.2 s); the Airflow tests pass them
#: as connection extras
FAST_SETTINGS: dict[str, Any] = dict(
    role="batch",
    user="sightlines",
    heartbeat_tolerance=8,  # 1.6 s of silence: a loaded test machine stalls for 0.6 s now and then
    connect_timeout=2,
    request_timeout=5,
    reconnect_timeout=8,
    backoff_initial=0.05,
    backoff_max=0.3,
    offer_timeout=5,
    decline_refuse_seconds=0.2,
    reconcile_interval=0.3,
    kill_grace_period=0.5,
)


def fast_config(master: str, **overrides: Any) -> MesosConfig:
    """A MesosConfig with :data:`FAST_SETTINGS` (and ``overrides``) for the fake master at ``master``."""
    return MesosConfig(master=master, **{**FAST_SETTINGS, **overrides})


@pytest.fixture
def master(tmp_path: Path) -> Iterator[FakeMesosMaster]:
    with FakeMesosMaster(tmp_path / "sandboxes") as fake:
        yield fake


@pytest.fixture
def config(master: FakeMesosMaster) -> MesosConfig:
    return fast_config(master.url)


@pytest.fixture
def small_master(tmp_path: Path) -> Iterator[FakeMesosMaster]:
    """A cluster whose agents are too small for a 4-cpu task."""
    agents = [AgentSpec("small-a.test", cpus=1, mem=512, disk=1000), AgentSpec("small-b.test", cpus=2, mem=1024)]
    with FakeMesosMaster(tmp_path / "sandboxes", agents=agents) as fake:
        yield fake


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (acts as its own CA) and its key, as PEM files."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fake-mesos-master")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                       critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, content_commitment=False,
                                     key_encipherment=False, data_encipherment=False, key_agreement=False,
                                     crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    cert_path, key_path = folder / "master.pem", folder / "master.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@pytest.fixture
def tls_master(tmp_path: Path, tls_files: tuple[Path, Path]) -> Iterator[FakeMesosMaster]:
    """The fake master serving HTTPS with the self-signed certificate."""
    import ssl

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*tls_files)
    with FakeMesosMaster(tmp_path / "sandboxes", ssl_context=context) as fake:
        yield fake
