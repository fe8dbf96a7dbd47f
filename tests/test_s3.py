"""An s3:// root end to end against moto's S3 server over real HTTP (credentials from the environment)."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys

import pyarrow.parquet as pq

from sightlines.pipeline import extract
from sightlines.profiles import gzip_size
from sightlines.registry import add_clients, load_registry
from sightlines.storage import Storage

from .test_extract import DATE, user


def test_extract_on_s3_with_worker_processes(s3_root, write_snapshot):
    storage = Storage(s3_root)
    store = storage.client("acme")
    write_snapshot(store, DATE, [user(i) for i in range(60)], name="part-00000.ndjson.gz")
    write_snapshot(store, DATE, [user(i) for i in range(60, 100)] + [b"oops"], name="part-00001.ndjson.gz")
    result = extract("acme", DATE, storage, workers=2)
    assert result.n_records == 100 and result.details["bad_records"] == 1
    one = f"{store.raw(DATE)}/part-00000.ndjson.gz"  # the size a gzip file states, read with one ranged GET
    assert gzip_size(store, one, store.size(one)) == len(gzip.decompress(store.read_bytes(one)))
    assert store.read_tail(one, 1 << 30) == store.read_bytes(one)
    keys = store.dataset_files(store.features(DATE), ".parquet")
    assert [k.rsplit("/", 1)[-1] for k in keys] == ["part-00000-00000.parquet", "part-00001-00000.parquet"]
    rows = 0
    for k in keys:
        with store.open(k) as f:
            rows += pq.read_table(f).num_rows
    assert rows == 100
    assert store.manifest(store.quarantine(DATE))["bad"] == 1


def test_cli_reads_the_root_from_the_environment(s3_root, write_snapshot):
    storage = Storage(s3_root)
    add_clients(storage, ["acme", "globex"])
    assert load_registry(storage).names() == ["acme", "globex"]
    write_snapshot(storage.client("globex"), DATE, [user(i) for i in range(20)])
    env = dict(os.environ, SIGHTLINES_ROOT=s3_root)
    out = subprocess.run([sys.executable, "-m", "sightlines", "step", "extract", "--client", "globex", "--date", DATE],
                         env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "extract globex 2026-11-24: ok, 20 records" in out.stdout
    listed = subprocess.run([sys.executable, "-m", "sightlines", "clients", "list"], env=env, capture_output=True,
                            text=True, timeout=60)
    assert listed.stdout.split() == ["acme", "globex"]
