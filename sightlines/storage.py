"""The one module that knows where everything lives.

A :class:`Storage` is rooted at a local directory or an fsspec URL
(``s3://bucket/prefix``, ``memory://...``). Steps never build paths themselves:
they get a :class:`ClientStore` (``storage.client("acme")``), which can only
form keys under ``clients/acme/`` and names every artefact of DESIGN §2
(``raw``, ``features``, ``schema``, ``models``, ``predictions`` ...).

Commits are atomic. A *dataset* (a directory of files plus ``_manifest.json``)
is written through :meth:`Storage.dataset`:

* on local disk the files go to a temporary directory next to the target, the
  manifest is written last, and the directory is renamed into place;
* on object stores (no rename) the files go to a fresh attempt prefix and the
  manifest, written last with one PUT, points at them. Readers trust only the
  manifest, so a failed attempt never hides or damages the previous good one.

Single files (pointers, step records) are written with :meth:`Storage.write_bytes`,
which is atomic on both kinds of root.

Examples
--------
>>> from sightlines.storage import Storage
>>> store = Storage("memory://doctest-storage")
>>> acme = store.client("acme")
>>> with acme.dataset(acme.features("2026-11-24")) as ds:
...     ds.write_bytes("hello.txt", b"hi")
>>> acme.read_bytes(acme.dataset_file(acme.features("2026-11-24"), "hello.txt"))
b'hi'
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import io
import logging
import os
import posixpath
import re
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import orjson

from .errors import ClientIdError, NotFoundError, StorageError

__all__ = [
    "Storage",
    "ClientStore",
    "DatasetWriter",
    "file_sha256",
    "validate_client_id",
    "resolve_root",
    "date_str",
    "MANIFEST",
]

log = logging.getLogger(__name__)

#: name of the file that commits a dataset; written last
MANIFEST = "_manifest.json"
_CLIENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_DEFAULT_ROOT = "./data"


def validate_client_id(client: str) -> str:
    """Return ``client`` if it is a safe client id, else raise :class:`ClientIdError`.

    A client id is 1-64 characters of ASCII letters, digits, ``-`` and ``_``,
    starting with a letter or digit. Separators, ``..``, spaces and empty
    names are refused, so a client id can never address another client's prefix.

    Examples
    --------
    >>> validate_client_id("acme-shoes_2")
    'acme-shoes_2'
    >>> validate_client_id("../other")
    Traceback (most recent call last):
    ...
    sightlines.errors.ClientIdError: client id '../other' is not allowed: use 1-64 letters, digits, '-' or '_', starting with a letter or digit (no '/', '.', spaces)
    """
    if not isinstance(client, str) or not _CLIENT_ID.fullmatch(client):
        raise ClientIdError(
            f"client id {client!r} is not allowed: use 1-64 letters, digits, '-' or '_', "
            "starting with a letter or digit (no '/', '.', spaces)",
            record_id=str(client),
        )
    return client


def resolve_root(root: str | os.PathLike[str] | None = None) -> str:
    """The storage root: ``root`` if given, else ``$SIGHTLINES_ROOT``, else ``./data``."""
    if root is None or str(root) == "":
        root = os.environ.get("SIGHTLINES_ROOT") or _DEFAULT_ROOT
    return str(root)


def date_str(value: dt.date | str) -> str:
    """ISO date string of ``value`` (a :class:`datetime.date` or ``YYYY-MM-DD``)."""
    if isinstance(value, dt.datetime):
        return value.date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    try:
        return dt.date.fromisoformat(str(value)).isoformat()
    except ValueError:
        raise StorageError(f"{value!r} is not a date: use YYYY-MM-DD") from None


def _check_key(key: str) -> str:
    """Refuse keys that could escape their prefix."""
    if not isinstance(key, str) or key == "":
        raise StorageError(f"storage key {key!r} is empty")
    if key.startswith("/") or "\\" in key:
        raise StorageError(f"storage key {key!r} must be relative and use '/'", path=key)
    parts = key.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise StorageError(f"storage key {key!r} has an empty, '.' or '..' part", path=key)
    return key


class _HashingWriter(io.RawIOBase):
    """A binary file wrapper that hashes and counts what is written through it."""

    def __init__(self, raw: IO[bytes]):
        self._raw = raw
        self.sha256 = hashlib.sha256()
        self.nbytes = 0

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:  # type: ignore[override]
        mv = memoryview(b)
        self.sha256.update(mv)
        self.nbytes += mv.nbytes
        self._raw.write(mv)
        return mv.nbytes

    def tell(self) -> int:
        return self.nbytes

    def flush(self) -> None:
        if not self._raw.closed:
            self._raw.flush()

    def close(self) -> None:
        if not self.closed:
            self._raw.close()
        super().close()


class Storage:
    """A storage root on local disk or any fsspec filesystem (``s3://``, ``memory://``).

    Parameters
    ----------
    root : str or path, optional
        Local directory or URL. Defaults to ``$SIGHTLINES_ROOT``, then ``./data``.
    storage_options : dict, optional
        Passed to fsspec (e.g. ``{"client_kwargs": {"endpoint_url": ...}}``).
        For ``s3://`` roots the endpoint also comes from ``$SIGHTLINES_S3_ENDPOINT_URL``
        or ``$AWS_ENDPOINT_URL``; credentials come from the usual AWS variables.
    """

    def __init__(self, root: str | os.PathLike[str] | None = None, *, storage_options: dict[str, Any] | None = None):
        self.url = resolve_root(root)
        self.storage_options = dict(storage_options or {})
        if "://" in self.url and not self.url.startswith("file://"):
            import fsspec

            protocol = self.url.split("://", 1)[0]
            options = dict(self.storage_options)
            if protocol == "s3":
                endpoint = os.environ.get("SIGHTLINES_S3_ENDPOINT_URL") or os.environ.get("AWS_ENDPOINT_URL")
                if endpoint:
                    options.setdefault("client_kwargs", {}).setdefault("endpoint_url", endpoint)
            self.fs = fsspec.filesystem(protocol, **options)
            self.is_local = False
            self._base = self.url.split("://", 1)[1].rstrip("/")
        else:
            path = self.url[len("file://"):] if self.url.startswith("file://") else self.url
            self.fs = None
            self.is_local = True
            self._base = str(Path(path).expanduser().absolute())

    def __repr__(self) -> str:
        return f"Storage({self.url!r})"

    # -- naming --------------------------------------------------------
    def _path(self, key: str) -> str:
        _check_key(key)
        if self.is_local:
            return os.path.join(self._base, *key.split("/"))
        return f"{self._base}/{key}"

    def url_of(self, key: str) -> str:
        """A URL (or absolute local path) for ``key``, for messages and external readers."""
        if self.is_local:
            return self._path(key)
        return f"{self.url.split('://', 1)[0]}://{self._path(key)}"

    def client(self, client: str) -> ClientStore:
        """A view of this root restricted to one client's prefix."""
        return ClientStore(self, validate_client_id(client))

    # -- reading -------------------------------------------------------
    def exists(self, key: str) -> bool:
        """Whether ``key`` exists as a file or directory."""
        path = self._path(key)
        if self.is_local:
            return os.path.exists(path)
        return bool(self.fs.exists(path))

    def list(self, prefix: str) -> list[str]:
        """Names (not keys) of the direct children of ``prefix``, sorted; [] if absent."""
        path = self._path(prefix)
        if self.is_local:
            try:
                return sorted(n for n in os.listdir(path) if not n.startswith(".tmp-") and ".tmp-" not in n)
            except (FileNotFoundError, NotADirectoryError):
                return []
        try:
            entries = self.fs.ls(path, detail=False, refresh=True)
        except FileNotFoundError:
            return []
        names = {posixpath.basename(e.rstrip("/")) for e in entries}
        return sorted(n for n in names if n)

    def size(self, key: str) -> int:
        """Size of a file in bytes."""
        path = self._path(key)
        try:
            return os.path.getsize(path) if self.is_local else int(self.fs.size(path))
        except FileNotFoundError:
            raise NotFoundError(f"{self.url_of(key)} does not exist", path=key) from None

    def open(self, key: str, mode: str = "rb") -> IO[bytes]:
        """Open a file for reading (binary)."""
        if "r" not in mode:
            raise StorageError("Storage.open is read-only: write through write_bytes() or dataset()")
        path = self._path(key)
        try:
            if self.is_local:
                return open(path, mode)  # noqa: SIM115 - returned to the caller
            return self.fs.open(path, mode)
        except FileNotFoundError:
            raise NotFoundError(f"{self.url_of(key)} does not exist", path=key) from None

    def read_bytes(self, key: str) -> bytes:
        """The whole content of a file."""
        with self.open(key) as f:
            return f.read()

    def read_tail(self, key: str, n: int) -> bytes:
        """The last ``n`` bytes of a file (all of it if shorter): one ranged GET on S3."""
        path = self._path(key)
        try:
            if self.is_local:
                with open(path, "rb") as f:
                    f.seek(max(0, os.fstat(f.fileno()).st_size - n))
                    return f.read()
            return bytes(self.fs.cat_file(path, start=-n))
        except FileNotFoundError:
            raise NotFoundError(f"{self.url_of(key)} does not exist", path=key) from None

    def read_parquet(self, key: str, columns: list[str] | None = None) -> Any:
        """A parquet file as a pyarrow Table (``columns``: only those); see :meth:`open_parquet`."""
        with self.open_parquet(key) as pf:
            return pf.read(columns=columns)

    @contextlib.contextmanager
    def open_parquet(self, key: str) -> Iterator[Any]:
        """A ``pyarrow.parquet.ParquetFile`` of ``key`` whose bytes Arrow holds itself.

        A local file is memory-mapped; a remote one is read into memory that
        Arrow allocated. Never a Python file object or ``bytes``: Arrow decodes
        columns in its own threads, and a task there can drop the last
        reference to a Python object after the read has returned; if the
        interpreter is shutting down by then, the process aborts ("terminate
        called without an active exception") although its work was done.
        """
        import pyarrow as pa
        import pyarrow.parquet as pq

        if self.is_local:
            try:
                source = pa.memory_map(self._path(key))
            except FileNotFoundError:
                raise NotFoundError(f"{self.url_of(key)} does not exist", path=key) from None
        else:
            data = self.read_bytes(key)
            buf = pa.allocate_buffer(len(data))
            if data:
                memoryview(buf).cast("B")[:] = data
            source = pa.BufferReader(buf)
        with source, pq.ParquetFile(source) as pf:
            yield pf

    def read_json(self, key: str) -> Any:
        """Parse a JSON file."""
        data = self.read_bytes(key)
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise StorageError(f"{self.url_of(key)} is not valid JSON ({exc}); fix or delete it", path=key) from None

    # -- writing -------------------------------------------------------
    def write_bytes(self, key: str, data: bytes) -> None:
        """Write a whole file atomically (temporary name + rename, or one PUT)."""
        path = self._path(key)
        if self.is_local:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            tmp = f"{path}.tmp-{uuid.uuid4().hex[:12]}"
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        else:
            self.fs.pipe_file(path, data)

    def write_json(self, key: str, obj: Any) -> None:
        """Write ``obj`` as deterministic, indented JSON (sorted keys), atomically."""
        self.write_bytes(key, dump_json(obj))

    @contextlib.contextmanager
    def open_write(self, key: str) -> Iterator[IO[bytes]]:
        """Stream one file; it appears atomically when the block exits without error."""
        path = self._path(key)
        if self.is_local:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            tmp = f"{path}.tmp-{uuid.uuid4().hex[:12]}"
            try:
                with open(tmp, "wb") as f:
                    yield f
                os.replace(tmp, path)
            finally:
                if os.path.exists(tmp):
                    os.remove(tmp)
        else:
            # an S3 multipart upload only becomes visible when it completes
            with self.fs.open(path, "wb") as f:
                yield f

    def delete(self, key: str) -> None:
        """Delete a file or a directory tree; missing keys are ignored."""
        path = self._path(key)
        if self.is_local:
            if os.path.isdir(path):
                shutil.rmtree(path, ignore_errors=True)
            elif os.path.exists(path):
                os.remove(path)
        else:
            with contextlib.suppress(FileNotFoundError):
                self.fs.rm(path, recursive=True)

    # -- datasets ------------------------------------------------------
    def dataset(self, prefix: str) -> DatasetWriter:
        """Start writing a dataset at ``prefix``; use as a context manager to commit."""
        return DatasetWriter(self, prefix)

    def manifest(self, prefix: str) -> dict[str, Any] | None:
        """The committed manifest of the dataset at ``prefix``, or None."""
        key = f"{prefix}/{MANIFEST}"
        try:
            return self.read_json(key)
        except NotFoundError:
            return None

    def dataset_file(self, prefix: str, name: str) -> str:
        """The key of file ``name`` of the committed dataset at ``prefix``."""
        manifest = self.manifest(prefix)
        if manifest is None:
            raise NotFoundError(f"no committed dataset at {self.url_of(prefix)}", path=prefix)
        try:
            return f"{prefix}/{manifest['files'][name]['path']}"
        except KeyError:
            raise NotFoundError(
                f"dataset {self.url_of(prefix)} has no file {name!r} (has {sorted(manifest['files'])})", path=prefix
            ) from None

    def dataset_files(self, prefix: str, suffix: str = "") -> list[str]:
        """Keys of the committed dataset's files whose name ends with ``suffix``, in name order."""
        manifest = self.manifest(prefix)
        if manifest is None:
            raise NotFoundError(f"no committed dataset at {self.url_of(prefix)}", path=prefix)
        return [f"{prefix}/{meta['path']}" for name, meta in sorted(manifest["files"].items()) if name.endswith(suffix)]


def dump_json(obj: Any) -> bytes:
    """Deterministic JSON bytes (sorted keys, 2-space indent, trailing newline)."""
    return orjson.dumps(
        obj, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS | orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS
    ) + b"\n"


def file_sha256(path: str) -> str:
    """The SHA-256 (hex) of a local file, as dataset manifests record it."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


class DatasetWriter:
    """Writes the files of one dataset and commits them with a manifest.

    Use through :meth:`Storage.dataset` as a context manager: leaving the block
    normally commits; an exception aborts and leaves the previous dataset intact.
    ``meta`` holds extra manifest fields (row counts, model dates, ...).
    """

    def __init__(self, storage: Storage, prefix: str):
        self.storage = storage
        self.prefix = _check_key(prefix)
        self.meta: dict[str, Any] = {}
        self._files: dict[str, dict[str, Any]] = {}
        self._attempt = uuid.uuid4().hex[:12]
        self._committed = False
        if storage.is_local:
            final = storage._path(prefix)
            parent, base = os.path.split(final)
            self._final = final
            self._tmp = os.path.join(parent, f".{base}.tmp-{self._attempt}")
            os.makedirs(self._tmp, exist_ok=True)

    def _rel(self, name: str) -> str:
        _check_key(name)
        return name if self.storage.is_local else f"a-{self._attempt}/{name}"

    @contextlib.contextmanager
    def open(self, name: str) -> Iterator[IO[bytes]]:
        """Stream file ``name`` of the dataset (binary); it is hashed as it is written."""
        if name in self._files or name == MANIFEST:
            raise StorageError(f"dataset {self.prefix}: file {name!r} written twice or reserved")
        rel = self._rel(name)
        if self.storage.is_local:
            path = os.path.join(self._tmp, *rel.split("/"))
            os.makedirs(os.path.dirname(path), exist_ok=True)
            raw: IO[bytes] = open(path, "wb")  # noqa: SIM115
        else:
            raw = self.storage.fs.open(self.storage._path(f"{self.prefix}/{rel}"), "wb")
        writer = _HashingWriter(raw)
        try:
            yield writer  # type: ignore[misc]
        finally:
            writer.close()
        self._files[name] = {"path": rel, "bytes": writer.nbytes, "sha256": writer.sha256.hexdigest()}

    def add_file(self, name: str, local_path: str, *, sha256: str | None = None) -> None:
        """Add a finished local file (e.g. written by a worker process) to the dataset; it is moved or uploaded.

        ``sha256`` is the file's checksum if the caller already has it (:func:`file_sha256`, computed
        where the file was written, while it is in the page cache); otherwise it is computed here.
        """
        if name in self._files or name == MANIFEST:
            raise StorageError(f"dataset {self.prefix}: file {name!r} written twice or reserved")
        digest = sha256 or file_sha256(local_path)
        size = os.path.getsize(local_path)
        rel = self._rel(name)
        if self.storage.is_local:
            dest = os.path.join(self._tmp, *rel.split("/"))
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            shutil.move(local_path, dest)
        else:
            self.storage.fs.put_file(local_path, self.storage._path(f"{self.prefix}/{rel}"))
            os.remove(local_path)
        self._files[name] = {"path": rel, "bytes": size, "sha256": digest}

    def write_bytes(self, name: str, data: bytes) -> None:
        """Write a whole file of the dataset."""
        with self.open(name) as f:
            f.write(data)

    def write_json(self, name: str, obj: Any) -> None:
        """Write a deterministic JSON file of the dataset."""
        self.write_bytes(name, dump_json(obj))

    @property
    def files(self) -> dict[str, dict[str, Any]]:
        """Name -> {path, bytes, sha256} of the files written so far."""
        return dict(self._files)

    def commit(self) -> dict[str, Any]:
        """Write the manifest last and make the dataset visible; returns the manifest."""
        manifest = {"format": "sightlines-dataset/1", **self.meta, "files": self._files}
        data = dump_json(manifest)
        st = self.storage
        if st.is_local:
            with open(os.path.join(self._tmp, MANIFEST), "wb") as f:
                f.write(data)
            old = None
            if os.path.exists(self._final):
                parent, base = os.path.split(self._final)
                old = os.path.join(parent, f".{base}.tmp-old-{self._attempt}")
                os.replace(self._final, old)
            os.replace(self._tmp, self._final)
            if old:
                shutil.rmtree(old, ignore_errors=True)
        else:
            try:
                replaced = st.manifest(self.prefix)
            except StorageError:  # a damaged manifest references nothing we could safely delete
                replaced = None
            st.fs.pipe_file(st._path(f"{self.prefix}/{MANIFEST}"), data)
            # drop the attempt the new manifest replaced, and only that one: another attempt still writing
            # (a retry racing a lost task) keeps its files, and replaces ours in turn if it commits later.
            # Attempts that crashed before committing are never referenced; a bucket lifecycle rule on
            # `a-*` prefixes older than a few days reclaims them.
            keep = {meta["path"].split("/", 1)[0] for meta in self._files.values()}
            old = {meta["path"].split("/", 1)[0] for meta in (replaced or {}).get("files", {}).values()
                   if isinstance(meta, dict) and str(meta.get("path", "")).startswith("a-")}
            for name in sorted(old - keep):
                st.delete(f"{self.prefix}/{name}")
        self._committed = True
        log.debug("committed dataset %s (%d files)", st.url_of(self.prefix), len(self._files))
        return manifest

    def abort(self) -> None:
        """Drop everything written by this attempt; the previous dataset is untouched."""
        st = self.storage
        if st.is_local:
            shutil.rmtree(self._tmp, ignore_errors=True)
        else:
            st.delete(f"{self.prefix}/a-{self._attempt}")

    def __enter__(self) -> DatasetWriter:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()


class ClientStore:
    """One client's view of a :class:`Storage`: every key lives under ``clients/{client}/``.

    Keys passed to its methods are relative to the client prefix and may not
    contain ``..``; so a step holding a ``ClientStore`` cannot touch another
    client's data. The artefact methods (``features(date)``, ``models(date)``
    ...) are the only place where these paths are spelled.
    """

    def __init__(self, storage: Storage, client: str):
        self.storage = storage
        self.client = validate_client_id(client)
        self.prefix = f"clients/{client}"

    def __repr__(self) -> str:
        return f"ClientStore({self.storage.url!r}, {self.client!r})"

    def key(self, key: str) -> str:
        """Root-relative key of a client-relative key."""
        return f"{self.prefix}/{_check_key(key)}"

    # -- artefact names (DESIGN §2) -------------------------------------
    @staticmethod
    def raw(date: dt.date | str) -> str:
        return f"raw/{date_str(date)}"

    @staticmethod
    def quarantine(date: dt.date | str) -> str:
        return f"quarantine/{date_str(date)}"

    @staticmethod
    def features(date: dt.date | str) -> str:
        return f"features/{date_str(date)}"

    @staticmethod
    def events(date: dt.date | str) -> str:
        """The snapshot's columnar event log (written by extract, read by sample)."""
        return f"events/{date_str(date)}"

    SCHEMA_DIR = "schema"
    SCHEMA_CURRENT = "schema/current.json"

    @staticmethod
    def schema_version(version: int) -> str:
        return f"schema/v{int(version):04d}.json"

    @staticmethod
    def training(date: dt.date | str) -> str:
        return f"training/{date_str(date)}"

    @staticmethod
    def models(date: dt.date | str) -> str:
        return f"models/{date_str(date)}"

    @staticmethod
    def model_file(date: dt.date | str, sightline: str, ext: str) -> str:
        return f"models/{date_str(date)}/{sightline}.{ext}"

    @staticmethod
    def scores(date: dt.date | str) -> str:
        return f"scores/{date_str(date)}"

    @staticmethod
    def predictions(date: dt.date | str) -> str:
        return f"predictions/{date_str(date)}"

    PREDICTIONS_LATEST = "predictions/latest"

    @staticmethod
    def reports(date: dt.date | str) -> str:
        return f"reports/{date_str(date)}"

    @staticmethod
    def run_record(date: dt.date | str, step_id: str) -> str:
        return f"runs/{date_str(date)}/{step_id}.json"

    @staticmethod
    def runs(date: dt.date | str) -> str:
        return f"runs/{date_str(date)}"

    TRUTH_DIR = "truth"

    # -- delegation -----------------------------------------------------
    def url_of(self, key: str) -> str:
        return self.storage.url_of(self.key(key))

    def exists(self, key: str) -> bool:
        return self.storage.exists(self.key(key))

    def list(self, prefix: str) -> list[str]:
        return self.storage.list(self.key(prefix))

    def size(self, key: str) -> int:
        return self.storage.size(self.key(key))

    def open(self, key: str, mode: str = "rb") -> IO[bytes]:
        return self.storage.open(self.key(key), mode)

    def read_bytes(self, key: str) -> bytes:
        return self.storage.read_bytes(self.key(key))

    def read_tail(self, key: str, n: int) -> bytes:
        return self.storage.read_tail(self.key(key), n)

    def read_json(self, key: str) -> Any:
        return self.storage.read_json(self.key(key))

    def read_parquet(self, key: str, columns: list[str] | None = None) -> Any:
        return self.storage.read_parquet(self.key(key), columns)

    def open_parquet(self, key: str) -> contextlib.AbstractContextManager[Any]:
        return self.storage.open_parquet(self.key(key))

    def write_bytes(self, key: str, data: bytes) -> None:
        self.storage.write_bytes(self.key(key), data)

    def write_json(self, key: str, obj: Any) -> None:
        self.storage.write_json(self.key(key), obj)

    def open_write(self, key: str) -> contextlib.AbstractContextManager[IO[bytes]]:
        return self.storage.open_write(self.key(key))

    def delete(self, key: str) -> None:
        self.storage.delete(self.key(key))

    def dataset(self, prefix: str) -> DatasetWriter:
        return self.storage.dataset(self.key(prefix))

    def manifest(self, prefix: str) -> dict[str, Any] | None:
        return self.storage.manifest(self.key(prefix))

    def dataset_file(self, prefix: str, name: str) -> str:
        """Client-relative key of file ``name`` of the committed dataset at ``prefix``."""
        return self.storage.dataset_file(self.key(prefix), name)[len(self.prefix) + 1:]

    def dataset_files(self, prefix: str, suffix: str = "") -> list[str]:
        """Client-relative keys of the committed dataset's files ending with ``suffix``."""
        n = len(self.prefix) + 1
        return [k[n:] for k in self.storage.dataset_files(self.key(prefix), suffix)]

    def dates(self, kind: str) -> list[str]:
        """Dates (``YYYY-MM-DD``) that have an entry under ``kind`` (e.g. ``"predictions"``), sorted."""
        out = []
        for name in self.list(kind):
            try:
                out.append(dt.date.fromisoformat(name).isoformat())
            except ValueError:
                continue
        return sorted(out)
