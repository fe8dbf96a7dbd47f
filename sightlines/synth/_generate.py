"""The ``generate`` step: write one day's raw snapshot of a synthetic client, with its truth."""

from __future__ import annotations

import datetime as dt
import logging
import os
import time

import numpy as np
import orjson

from ..errors import ConfigError, NotFoundError
from ..result import StepResult
from ..storage import ClientStore, date_str
from ._truth import truth_table
from ._world import Sim, World, sim_for
from ._write import FileTask, empty_file, part_name, run_tasks

__all__ = ["generate_client", "world_key", "truth_key", "bad_lines_key"]

log = logging.getLogger(__name__)


def world_key() -> str:
    return f"{ClientStore.TRUTH_DIR}/world.json"


def truth_key(date: dt.date | str) -> str:
    return f"{ClientStore.TRUTH_DIR}/{date_str(date)}/users.parquet"


def bad_lines_key(date: dt.date | str) -> str:
    return f"{ClientStore.TRUTH_DIR}/{date_str(date)}/bad_lines.json"


def _parse_date(value: dt.date | str) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise ConfigError(f"date {value!r} is not a date: use YYYY-MM-DD") from None


def _check_int(name: str, value: object, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(f"{name} is {value!r}; expected an integer >= {low}")
    return value


def _resolve_world(store: ClientStore, users: int, seed: int, date: dt.date) -> tuple[World, bool]:
    """The client's world: the stored one (checked against the arguments) or a new one anchored at ``date``."""
    try:
        stored = store.read_json(world_key())
    except NotFoundError:
        return World(client=store.client, seed=seed, anchor=date, users=users), True
    world = World.from_json(stored)
    if world.client != store.client:
        raise ConfigError(
            f"{store.url_of(world_key())} belongs to client {world.client!r}, not {store.client!r}; "
            "it was copied from another client: delete it to start a new world"
        )
    if (world.seed, world.users) != (seed, users):
        raise ConfigError(
            f"client {store.client!r} already has a synthetic world with seed={world.seed} and "
            f"users={world.users} at its anchor {world.anchor}, but seed={seed} and users={users} were passed; "
            f"pass seed={world.seed}, users={world.users} to add snapshots of the same world, or delete "
            f"clients/{store.client}/truth and clients/{store.client}/raw to start a new one"
        )
    return world, False


def generate_client(
    store: ClientStore,
    *,
    users: int,
    date: dt.date | str,
    seed: int = 0,
    bad_fraction: float = 0.0,
    users_per_file: int = 100_000,
    workers: int | None = None,
) -> StepResult:
    """Write the raw profile snapshot of ``date`` for a synthetic client, and its ground truth.

    The first call for a client fixes its *world* in ``truth/world.json``:
    the seed, the anchor date (this ``date``) and ``users`` (the number of
    users at the anchor). The world spans 800 days before the anchor to 400
    days after it; every user's whole timeline in it is simulated
    deterministically, and a snapshot is that world cut at the end of
    ``date``. Later calls may take any ``date`` in the span and produce the
    same users with the same events up to that date, plus the users created
    since.

    Parameters
    ----------
    store : ClientStore
        The client to write (``clients/{client}/raw/{date}/`` and ``truth/``).
    users : int
        Users at the world's anchor date. Must match the stored world.
    date : datetime.date or str
        Snapshot date (``YYYY-MM-DD``): the profiles as of the end of that day.
    seed : int, default=0
        Seed of the world (mixed with the client id). Must match the stored world.
    bad_fraction : float, default=0.0
        Rate of injected bad records per user (and, at the same rate, of
        oddities a reader must survive: blank lines, a byte-order mark,
        ``NaN`` and wrong-typed fields in good users). 0 writes clean files.
    users_per_file : int, default=100000
        Users per ``part-NNNNN.ndjson.gz`` file.
    workers : int, optional
        Processes building files in parallel; default ``min(2, cpu count)``.
        The output does not depend on it.

    Returns
    -------
    StepResult
        ``step="generate"``; ``n_records`` is the number of (good) users;
        ``outputs`` names the raw prefix, the truth table, the bad-line list
        and the world file; ``details`` has files, lines, bytes and timings.

    Raises
    ------
    ConfigError
        If an argument is invalid, ``date`` is outside the world's span, or
        ``seed``/``users`` differ from the client's stored world.

    Notes
    -----
    Written under ``clients/{client}/``:

    * ``raw/{date}/part-NNNNN.ndjson.gz``: one profile per line (DESIGN §2),
      users in id order, each file gzip'd with mtime 0 and written atomically;
    * ``truth/world.json``: the world (seed, anchor, span, user counts,
      catalogue, campaigns, sales, model parameters), written once;
    * ``truth/{date}/users.parquet``: one row per good user of the snapshot
      with every latent parameter (see :func:`load_truth`);
    * ``truth/{date}/bad_lines.json``: a list of ``{"file", "line"
      (1-based), "kind", "bad", "id"}``. ``bad: true`` marks bad records
      (``not_json``, ``not_object``, ``no_id``, ``empty_id``, ``id_object``,
      ``duplicate_id``); ``bad: false`` marks what a reader must survive
      without losing a user: ``blank`` lines, a ``bom`` on a file's first
      line and ``field:*`` problems inside good users (``field:nan`` is a bare
      ``NaN`` literal, so only a lenient JSON parser keeps that user).

    Examples
    --------
    >>> from sightlines.storage import Storage
    >>> from sightlines.synth import generate_client, load_truth
    >>> acme = Storage("memory://doctest-synth-generate").client("acme")
    >>> result = generate_client(acme, users=300, date="2026-11-24", seed=1, workers=1)
    >>> result.step, result.n_records, result.outputs["raw"]
    ('generate', 300, 'raw/2026-11-24')
    >>> acme.list("raw/2026-11-24")
    ['part-00000.ndjson.gz']
    >>> len(load_truth(acme, "2026-11-24"))
    300
    """
    started = time.perf_counter()
    users = _check_int("users", users, 1)
    seed = _check_int("seed", seed, 0)
    users_per_file = _check_int("users_per_file", users_per_file, 1)
    if workers is None:
        workers = min(2, os.cpu_count() or 1)
    workers = _check_int("workers", workers, 1)
    if isinstance(bad_fraction, bool) or not isinstance(bad_fraction, (int, float)) or not 0 <= bad_fraction <= 0.5:
        raise ConfigError(f"bad_fraction is {bad_fraction!r}; expected a number between 0 and 0.5 (the demo uses 0.002)")
    day = _parse_date(date)
    world, new = _resolve_world(store, users, seed, day)
    world.check_date(day)
    sim = sim_for(world)
    if new:
        store.write_json(world_key(), sim.world_json())
        log.info("client %s: new synthetic world (seed %d, %d users at %s)", store.client, seed, users, day)

    n = sim.users_before(world.day(day) + 1)
    tasks = [
        FileTask(world, day, k, lo, min(lo + users_per_file, n), float(bad_fraction))
        for k, lo in enumerate(range(0, n, users_per_file))
    ]
    raw_prefix = ClientStore.raw(day)

    import pyarrow.parquet as pq

    entries: list[dict[str, object]] = []
    lines = raw_bytes = gz_bytes = 0
    peak_rss = 0.0
    with store.open_write(truth_key(day)) as tf:
        writer: pq.ParquetWriter | None = None
        for out in run_tasks(tasks, workers):
            with store.open_write(f"{raw_prefix}/{out.name}") as f:
                f.write(out.data)
            table = truth_table(sim, out.truth)
            if writer is None:
                writer = pq.ParquetWriter(tf, table.schema, compression="zstd")
            writer.write_table(table)
            entries.extend(out.entries)
            lines += out.lines
            raw_bytes += out.raw_bytes
            gz_bytes += len(out.data)
            peak_rss = max(peak_rss, out.peak_rss_mb)
            log.info("client %s %s: wrote %s (%d lines)", store.client, day, out.name, out.lines)
        if writer is None:  # no user yet: an empty snapshot
            with store.open_write(f"{raw_prefix}/{part_name(0)}") as f:
                f.write(empty_file())
            tasks = [FileTask(world, day, 0, 0, 0, float(bad_fraction))]
            writer = pq.ParquetWriter(tf, truth_table(sim, _empty_truth(sim)).schema, compression="zstd")
        writer.close()
    store.write_bytes(bad_lines_key(day), orjson.dumps(entries, option=orjson.OPT_APPEND_NEWLINE))
    # a re-run with fewer files (larger users_per_file) leaves no stale parts behind
    names = {part_name(t.file_index) for t in tasks}
    for stale in store.list(raw_prefix):
        if stale.startswith("part-") and stale not in names:
            store.delete(f"{raw_prefix}/{stale}")

    bad = sum(1 for e in entries if e["bad"])
    seconds = time.perf_counter() - started
    warnings = (f"{bad} bad records injected (bad_fraction={bad_fraction})",) if bad else ()
    return StepResult(
        step="generate",
        client=store.client,
        date=day,
        outputs={
            "raw": raw_prefix,
            "truth": truth_key(day),
            "bad_lines": bad_lines_key(day),
            "world": world_key(),
        },
        n_records=n,
        warnings=warnings,
        details={
            "files": len(tasks),
            "lines": lines,
            "bad_records": bad,
            "oddities": len(entries) - bad,
            "raw_bytes": raw_bytes,
            "gz_bytes": gz_bytes,
            "seconds": round(seconds, 3),
            "workers": workers,
            "worker_peak_rss_mb": round(peak_rss, 1),
            "new_world": new,
            "anchor": world.anchor.isoformat(),
            "users_at_anchor": world.users,
        },
    )


def _empty_truth(sim: Sim) -> dict[str, np.ndarray]:
    """Truth columns of zero users (a snapshot before the first signup)."""
    from ._events import simulate_events
    from ._latent import draw_latent
    from ._profile import truth_columns

    lat = draw_latent(sim, 0)
    return truth_columns(sim, lat, simulate_events(sim, lat, 0), 0, 0)
