"""Storage: client isolation, atomic datasets, pointers; local disk and S3 (moto's server over HTTP)."""

from __future__ import annotations

import os

import pytest

from sightlines.errors import ClientIdError, NotFoundError, StorageError
from sightlines.storage import Storage, resolve_root, validate_client_id


@pytest.mark.parametrize("bad", ["", "../x", "a/b", "a\\b", ".hidden", "a b", "x" * 65, "é", "..", "-lead", None, 5])
def test_client_ids_that_could_escape_are_refused(bad):
    with pytest.raises(ClientIdError, match="is not allowed"):
        validate_client_id(bad)


@pytest.mark.parametrize("good", ["acme", "Acme-2", "a_b", "0x", "x" * 64])
def test_client_ids(good):
    assert validate_client_id(good) == good


def test_a_client_store_cannot_leave_its_prefix(storage):
    acme = storage.client("acme")
    for key in ("../globex/raw/x", "/etc/passwd", "a/../../b", "a//b", "./a"):
        with pytest.raises(StorageError):
            acme.write_bytes(key, b"x")
    acme.write_bytes("raw/2026-11-24/x.ndjson", b"{}")
    assert storage.client("globex").list("raw") == []
    assert acme.key("raw") == "clients/acme/raw"


def test_root_from_argument_environment_or_default(monkeypatch):
    monkeypatch.delenv("SIGHTLINES_ROOT", raising=False)
    assert resolve_root(None) == "./data"
    monkeypatch.setenv("SIGHTLINES_ROOT", "/tmp/elsewhere")
    assert resolve_root(None) == "/tmp/elsewhere"
    assert resolve_root("s3://b/p") == "s3://b/p"


def _exercise_datasets(storage: Storage) -> None:
    acme = storage.client("acme")
    with acme.dataset("features/2026-11-24") as ds:
        ds.write_bytes("part-0.bin", b"first")
        ds.meta["n_users"] = 1
    man = acme.manifest("features/2026-11-24")
    assert man["n_users"] == 1 and set(man["files"]) == {"part-0.bin"}
    assert acme.read_bytes(acme.dataset_file("features/2026-11-24", "part-0.bin")) == b"first"
    # a failed attempt leaves the committed dataset as it was
    with pytest.raises(RuntimeError):
        with acme.dataset("features/2026-11-24") as ds:
            ds.write_bytes("part-0.bin", b"second")
            raise RuntimeError("boom")
    assert acme.read_bytes(acme.dataset_file("features/2026-11-24", "part-0.bin")) == b"first"
    # a successful rewrite replaces it
    with acme.dataset("features/2026-11-24") as ds:
        ds.write_bytes("part-0.bin", b"third")
    assert acme.read_bytes(acme.dataset_file("features/2026-11-24", "part-0.bin")) == b"third"
    assert acme.dates("features") == ["2026-11-24"]
    with pytest.raises(NotFoundError, match="no committed dataset"):
        acme.dataset_file("features/2026-11-23", "part-0.bin")
    acme.write_json("predictions/latest", {"date": "2026-11-24"})
    assert acme.read_json("predictions/latest") == {"date": "2026-11-24"}


def test_datasets_on_local_disk(storage):
    _exercise_datasets(storage)
    # no temporary directories are left behind
    root = storage.url
    leftovers = [d for d, _, _ in os.walk(root) if ".tmp-" in d]
    assert leftovers == []


def test_datasets_on_s3(s3_root):
    storage = Storage(s3_root)
    _exercise_datasets(storage)
    # only the committed attempt remains under the prefix
    acme = storage.client("acme")
    attempts = [n for n in acme.list("features/2026-11-24") if n.startswith("a-")]
    assert len(attempts) == 1


def test_overlapping_attempts_on_s3_never_delete_committed_files(s3_root):
    """Two writers of one dataset (a lost task and its retry): each commit drops only the attempt it replaced."""
    acme = Storage(s3_root).client("acme")
    prefix = "scores/2026-11-20"
    a, b = acme.dataset(prefix), acme.dataset(prefix)
    b.write_bytes("scores.parquet", b"from b")
    a.write_bytes("scores.parquet", b"from a")
    a.commit()
    b.commit()  # b replaces a's commit, and a's attempt is dropped
    assert acme.read_bytes(acme.dataset_file(prefix, "scores.parquet")) == b"from b"
    assert [n for n in acme.list(prefix) if n.startswith("a-")] == [acme.manifest(prefix)["files"]["scores.parquet"]
                                                                    ["path"].split("/")[0]]
    c = acme.dataset(prefix)
    c.write_bytes("scores.parquet", b"from c")
    d = acme.dataset(prefix)  # still writing when c commits: its files stay
    d.write_bytes("scores.parquet", b"from d")
    c.commit()
    assert acme.read_bytes(acme.dataset_file(prefix, "scores.parquet")) == b"from c"
    d.commit()
    assert acme.read_bytes(acme.dataset_file(prefix, "scores.parquet")) == b"from d"
