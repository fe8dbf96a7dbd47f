"""Build the Sightlines DAGs: one per client (``sightlines__{client}``) and one for the fleet (``sightlines_fleet``).

A client's DAG runs its day::

    extract >> sample >> train[sightline for each sightline of its catalogue] >> score >> publish

``train`` is one *mapped* task: one task instance per sightline, all in
parallel, each labelled with its sightline in the UI (``map_index_template``)
and cleared, retried or failed on its own. A mapped task is one operator where
a task per sightline would be thirteen, which is what keeps a DAG file of
5,000 clients within the DAG processor's budget (``bench/bench_dag_parse.py``).

``score`` and ``publish`` run whatever happened upstream (``ALL_DONE``): a
sightline whose training failed is scored with its last good model, and
``publish`` always applies the fallback ladder (fresh predictions, or the
last ones republished with ``stale_days``). A failed task stays failed, so the
grid shows what went wrong while the client still gets predictions; the
publish task's log, its XCom summary and the published manifest say what was used.

The schedule is a *data interval* timetable: the run of logical date D starts
once D is over and processes the snapshot of D (``{{ ds }}`` = D), which is
also what ``airflow backfill create --from-date D1 --to-date D2`` creates, one
run per date. ``max_active_runs=1`` keeps a client's days in order (the
fallback ladder republishes *yesterday*), and every step task takes
``pool_slots = cpus`` slots of one pool, so a fleet of 1,000 clients cannot
ask the workers for more cores than the pool has.

The fleet DAG, daily as well, watches storage for the day's predictions of
every client with one deferred task (no mapping, so no ``max_map_length``
ceiling) and then reports fresh / stale / failed / missing per client.

Building a DAG opens no connection and imports nothing heavy, so a DAG file
can build thousands (see ``bench/bench_dag_parse.py``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import gc
import logging
import math
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from airflow.sdk import DAG, TriggerRule
from airflow.sdk.definitions.timetables.interval import CronDataIntervalTimetable

from .operators.config import ClientConfigErrorOperator
from .operators.fleet import FleetReportOperator, FleetWatchOperator
from .operators.step import SightlinesStepOperator

__all__ = [
    "DAG_ID_PREFIX",
    "DEFAULT_POOL",
    "DEFAULT_START_DATE",
    "FLEET_DAG_ID",
    "STEP_SETTINGS",
    "StepSettings",
    "build_client_dag",
    "build_fleet_dag",
    "build_registry_dags",
    "client_dag_id",
    "daily_timetable",
]

log = logging.getLogger(__name__)

DAG_ID_PREFIX = "sightlines__"
FLEET_DAG_ID = "sightlines_fleet"
#: the pool every step task takes its slots from (create it with as many slots as the workers have cores)
DEFAULT_POOL = "sightlines"
DEFAULT_START_DATE = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
TAGS = ("sightlines",)


@dataclass(frozen=True)
class StepSettings:
    """Resources and retry policy of one kind of step.

    Parameters
    ----------
    cpus : float
        Cores (``$SIGHTLINES_CPUS`` of the step; pool slots of the task).
    memory_mb : int
        Memory for cluster backends.
    retries : int
        Airflow retries (exponential backoff from ``retry_delay``).
    execution_timeout : datetime.timedelta
        Hard limit of one attempt; the step is cancelled when it passes.
    """

    cpus: float
    memory_mb: int
    retries: int
    execution_timeout: dt.timedelta


#: defaults per step; override any field per step with ``settings={"train": {"cpus": 2}}``
STEP_SETTINGS: dict[str, StepSettings] = {
    "extract": StepSettings(cpus=2, memory_mb=4096, retries=2, execution_timeout=dt.timedelta(hours=2)),
    "sample": StepSettings(cpus=2, memory_mb=4096, retries=2, execution_timeout=dt.timedelta(hours=2)),
    "train": StepSettings(cpus=1, memory_mb=4096, retries=1, execution_timeout=dt.timedelta(hours=3)),
    "score": StepSettings(cpus=2, memory_mb=4096, retries=2, execution_timeout=dt.timedelta(hours=2)),
    "publish": StepSettings(cpus=1, memory_mb=2048, retries=2, execution_timeout=dt.timedelta(minutes=30)),
}


def client_dag_id(client: str) -> str:
    """The DAG id of a client: ``sightlines__{client}``."""
    return f"{DAG_ID_PREFIX}{client}"


def daily_timetable(cron: str | Any = "@daily", timezone: str = "UTC") -> Any:
    """A data-interval timetable for ``cron``: the run of logical date D starts when D's interval ends.

    One instance per (cron, timezone) is shared by every DAG (timetables are immutable); a
    timetable given instead of a cron expression is returned as it is.
    """
    return _cron_timetable(cron, timezone) if isinstance(cron, str) else cron


@functools.cache
def _cron_timetable(cron: str, timezone: str) -> CronDataIntervalTimetable:
    return CronDataIntervalTimetable(cron, timezone=timezone)


@functools.cache
def _dag_config_defaults() -> dict[str, Any]:
    """DAG arguments whose defaults come from Airflow's config, read once per parse instead of once per DAG."""
    from airflow.sdk.configuration import conf

    return {
        "max_active_tasks": conf.getint("core", "max_active_tasks_per_dag"),
        "max_consecutive_failed_dag_runs": conf.getint("core", "max_consecutive_failed_dag_runs_per_dag"),
        "disable_bundle_versioning": conf.getboolean("dag_processor", "disable_bundle_versioning"),
    }


def _resolve_settings(settings: Mapping[str, Mapping[str, Any] | StepSettings] | None) -> dict[str, StepSettings]:
    out = dict(STEP_SETTINGS)
    for step, value in (settings or {}).items():
        targets = list(STEP_SETTINGS) if step == "*" else [step]
        for name in targets:
            if name not in STEP_SETTINGS:
                raise ValueError(f"settings has an entry for {step!r}; steps are {list(STEP_SETTINGS)} (or '*')")
            if isinstance(value, StepSettings):
                out[name] = value
                continue
            known = {f.name for f in dataclasses.fields(StepSettings)}
            unknown = sorted(set(value) - known)
            if unknown:
                raise ValueError(f"settings[{step!r}] has unknown field(s) {unknown}; known: {sorted(known)}")
            fields = dict(value)
            if isinstance(fields.get("execution_timeout"), (int, float)):  # seconds, as JSON has no timedelta
                fields["execution_timeout"] = dt.timedelta(seconds=fields["execution_timeout"])
            out[name] = dataclasses.replace(out[name], **fields)
    return out


def _doc(client: str, sightlines: Sequence[str], backend: str) -> str:
    return (f"Daily predictions of **{client}** on the `{backend}` backend: extract, sample, "
            f"train ({len(sightlines)} sightline(s): {', '.join(sightlines) or 'none'}), score, publish. "
            "`score` and `publish` always run; `publish` falls back to the last predictions (`stale_days`) "
            "when today's cannot be produced. Backfill (the DAG must be unpaused): "
            f"`airflow backfill create --dag-id {client_dag_id(client)} --from-date D1 --to-date D2 "
            "--max-active-runs 1`.")


def build_client_dag(
    client: str,
    *,
    sightlines: Sequence[str],
    start_date: dt.datetime = DEFAULT_START_DATE,
    schedule: str | Any = "@daily",
    backend: str = "local",
    root: str | None = None,
    pool: str | None = DEFAULT_POOL,
    aws_conn_id: str | None = None,
    backend_conn_id: str | None = None,
    backend_options: Mapping[str, Any] | None = None,
    deferrable: bool | None = None,
    poll_interval: float = 30.0,
    settings: Mapping[str, Mapping[str, Any] | StepSettings] | None = None,
    retry_delay: dt.timedelta = dt.timedelta(minutes=2),
    max_retry_delay: dt.timedelta = dt.timedelta(hours=1),
    max_active_runs: int = 1,
    catchup: bool = False,
    tags: Sequence[str] = (),
    timezone: str = "UTC",
) -> DAG:
    """The daily DAG of one client, ``sightlines__{client}``.

    Parameters
    ----------
    client : str
        Client id.
    sightlines : sequence of str
        The sightlines of the client's catalogue: one instance of the mapped ``train`` task each, in parallel.
    start_date : datetime, default=2024-01-01 UTC
        First date the DAG may run for (the lower bound of backfills).
    schedule : str or Timetable, default="@daily"
        A cron expression or preset (turned into a data-interval timetable so
        that ``{{ ds }}`` is the day that just ended), or any Airflow timetable.
    backend : str, default="local"
        Compute backend of the steps.
    root : str, optional
        Storage root; default ``$SIGHTLINES_ROOT`` of the workers.
    pool : str or None, default="sightlines"
        Pool of every step task; each takes ``ceil(cpus)`` slots. None: Airflow's default pool.
    aws_conn_id, backend_conn_id, backend_options, poll_interval
        Passed to every :class:`~sightlines_airflow.operators.step.SightlinesStepOperator`
        (``backend_conn_id`` None: the backend's default, ``sightlines_mesos`` for ``mesos``).
    deferrable : bool, optional
        Defer while a step runs; default: on for a backend whose jobs outlive the worker (``mesos``),
        off for ``local`` (which waits in the worker anyway).
    settings : mapping, optional
        Per-step overrides of :data:`STEP_SETTINGS`, e.g. ``{"train": {"cpus": 2}, "*": {"retries": 0}}``
        (``execution_timeout`` may be given in seconds).
    retry_delay : timedelta, default=2 minutes
        First retry delay; later ones grow exponentially up to ``max_retry_delay``.
    max_retry_delay : timedelta, default=1 hour
    max_active_runs : int, default=1
        Keep a client's days in date order.
    catchup : bool, default=False
        Backfill explicitly (``airflow backfill create``) rather than on unpause.
    tags : sequence of str
        Extra tags (``sightlines`` and ``backend:{name}`` are always there).
    timezone : str, default="UTC"
        Timezone of a cron ``schedule``.

    Returns
    -------
    DAG

    Examples
    --------
    >>> dag = build_client_dag("acme", sightlines=["purchase_7", "rev_30"])
    >>> sorted(dag.task_ids)
    ['extract', 'publish', 'sample', 'score', 'train']
    >>> dag.get_task("train").expand_input.value
    {'sightline': ['purchase_7', 'rev_30']}
    >>> dag.get_task("publish").trigger_rule
    <TriggerRule.ALL_DONE: 'all_done'>
    """
    resolved = _resolve_settings(settings) if settings else STEP_SETTINGS
    if deferrable is None:
        deferrable = backend != "local"
    timetable = daily_timetable(schedule, timezone)
    common: dict[str, Any] = {
        "client": client, "backend": backend, "root": root, "aws_conn_id": aws_conn_id,
        "backend_conn_id": backend_conn_id, "backend_options": dict(backend_options) if backend_options else None,
        "deferrable": deferrable, "poll_interval": poll_interval, "retry_delay": retry_delay,
        "retry_exponential_backoff": 2.0, "max_retry_delay": max_retry_delay,
    }
    if pool:
        common["pool"] = pool

    def step_kwargs(step: str) -> dict[str, Any]:
        s = resolved[step]
        return {**common, "step": step, "cpus": s.cpus, "memory_mb": s.memory_mb, "retries": s.retries,
                "execution_timeout": s.execution_timeout}

    with DAG(
        dag_id=client_dag_id(client),
        schedule=timetable,
        start_date=start_date,
        catchup=catchup,
        max_active_runs=max_active_runs,
        tags=[*TAGS, f"backend:{backend}", *tags],
        doc_md=_doc(client, sightlines, backend),
        description=f"Sightlines daily run of {client}",
        **_dag_config_defaults(),
    ) as dag:
        extract = SightlinesStepOperator(task_id="extract", **step_kwargs("extract"))
        sample = SightlinesStepOperator(task_id="sample", **step_kwargs("sample"))
        score = SightlinesStepOperator(task_id="score", trigger_rule=TriggerRule.ALL_DONE, **step_kwargs("score"))
        publish = SightlinesStepOperator(task_id="publish", trigger_rule=TriggerRule.ALL_DONE,
                                         **step_kwargs("publish"))
        extract >> sample
        if sightlines:
            train_kwargs = step_kwargs("train")
            # partial() does not run __init__, so the pool slots the operator derives from cpus are set here
            train = SightlinesStepOperator.partial(
                task_id="train", map_index_template="{{ task.sightline }}",
                pool_slots=max(1, math.ceil(train_kwargs["cpus"])), **train_kwargs,
            ).expand(sightline=list(sightlines))
            sample >> train >> score
        else:
            sample >> score
        score >> publish
    return dag


def build_config_error_dag(client: str, error: str, *, start_date: dt.datetime = DEFAULT_START_DATE,
                           schedule: str | Any = "@daily", timezone: str = "UTC") -> DAG:
    """A client DAG that fails with ``error`` (its registry entry is invalid), so the problem shows in the UI."""
    with DAG(dag_id=client_dag_id(client), schedule=daily_timetable(schedule, timezone), start_date=start_date,
             catchup=False, max_active_runs=1,
             tags=[*TAGS, "config-error"], doc_md=f"**The registry entry of {client} is invalid:** {error}") as dag:
        ClientConfigErrorOperator(task_id="config_error", client=client, error=error)
    return dag


def build_fleet_dag(
    clients: Sequence[str] | None = None,
    *,
    start_date: dt.datetime = DEFAULT_START_DATE,
    schedule: str | Any = "@daily",
    root: str | None = None,
    aws_conn_id: str | None = None,
    max_wait: dt.timedelta = dt.timedelta(hours=20),
    poll_interval: float = 300.0,
    catchup: bool = False,
    tags: Sequence[str] = (),
    timezone: str = "UTC",
) -> DAG:
    """The fleet DAG ``sightlines_fleet``: ``watch`` (deferred, all clients at once) >> ``report`` (ALL_DONE).

    Parameters
    ----------
    clients : sequence of str, optional
        The clients to cover; None covers the registry under the root as it is when the tasks run
        (the DAG file passes None, so that thousands of names are neither serialised nor in trigger kwargs).
    start_date, schedule, catchup, timezone
        As for :func:`build_client_dag` (use the same schedule so that ``{{ ds }}`` matches).
    root : str, optional
        Storage root; default ``$SIGHTLINES_ROOT`` of the workers and the triggerer.
    aws_conn_id : str, optional
        Airflow AWS connection for an ``s3://`` root.
    max_wait : timedelta, default=20 hours
        How long ``watch`` waits for the last client.
    poll_interval : float, default=300
        Seconds between two polls of storage.
    tags : sequence of str
        Extra tags.

    Returns
    -------
    DAG
    """
    timetable = daily_timetable(schedule, timezone)
    covered = "every client of the registry" if clients is None else f"{len(clients)} client(s)"
    with DAG(
        dag_id=FLEET_DAG_ID,
        schedule=timetable,
        start_date=start_date,
        catchup=catchup,
        max_active_runs=3,
        tags=[*TAGS, "fleet", *tags],
        description="Sightlines fleet: wait for every client's predictions, then report fresh / stale / failed",
        doc_md=(f"Watches storage until {covered} have published the day's predictions (one deferred task, "
                "no mapping), then writes `fleet/{date}/status.json` with fresh / stale N days / failed / missing "
                "per client and prints the table in the `report` log."),
    ) as dag:
        watch = FleetWatchOperator(task_id="watch", root=root, clients=clients, max_wait=max_wait,
                                   poll_interval=poll_interval, aws_conn_id=aws_conn_id, retries=1,
                                   retry_delay=dt.timedelta(minutes=5))
        report = FleetReportOperator(task_id="report", root=root, clients=clients, aws_conn_id=aws_conn_id,
                                     trigger_rule=TriggerRule.ALL_DONE, retries=2,
                                     retry_delay=dt.timedelta(minutes=2), execution_timeout=dt.timedelta(hours=1))
        watch >> report
    return dag


#: keys of the registry's ``fleet.airflow`` settings that the DAG file passes to the factories
REGISTRY_AIRFLOW_KEYS = ("pool", "aws_conn_id", "backend_conn_id", "backend_options", "deferrable", "poll_interval",
                         "schedule", "start_date", "timezone", "settings")


def _registry_options(fleet: Mapping[str, Any]) -> dict[str, Any]:
    options = dict(fleet.get("airflow") or {})
    unknown = sorted(set(options) - set(REGISTRY_AIRFLOW_KEYS))
    if unknown:
        raise ValueError(f"registry fleet.airflow has unknown setting(s) {unknown}; "
                         f"known: {list(REGISTRY_AIRFLOW_KEYS)}")
    if "start_date" in options:
        start = dt.datetime.fromisoformat(str(options["start_date"]))
        options["start_date"] = start if start.tzinfo else start.replace(tzinfo=dt.timezone.utc)
    _check_backend_options(options.get("backend_options"))
    return options


def _check_backend_options(value: Any) -> None:
    """``backend_options`` of the registry: ``{backend name: {option: value}}`` (each client gets its backend's)."""
    if value is None:
        return
    if not isinstance(value, Mapping) or not all(isinstance(v, Mapping) for v in value.values()):
        raise ValueError("registry fleet.airflow.backend_options must map a backend name to its options, e.g. "
                         f"{{\"mesos\": {{\"docker_image\": \"sightlines:1.4\"}}}}; got {value!r}")


def client_shard(client: str, shards: int) -> int:
    """The shard (0 .. shards-1) of a client: a stable hash of its id, so a client never moves between files.

    Examples
    --------
    >>> client_shard("acme", 4) == client_shard("acme", 4) and 0 <= client_shard("acme", 4) < 4
    True
    """
    return zlib.crc32(client.encode()) % shards


def build_registry_dags(root: str | None = None, *, only_dag_id: str | None = None, shard: int = 0,
                        shards: int = 1, **overrides: Any) -> dict[str, DAG]:
    """Every DAG of the registry under ``root``: one per client, plus the fleet DAG; keyed by DAG id.

    Parameters
    ----------
    root : str, optional
        Storage root holding ``registry.json``; default ``$SIGHTLINES_ROOT``.
    only_dag_id : str, optional
        Build only this DAG (a running task passes ``get_parsing_context().dag_id``,
        so it parses one DAG instead of thousands). Unknown ids build nothing.
    shard, shards : int, default=0 and 1
        Build only the clients of shard ``shard`` of ``shards`` (:func:`client_shard`);
        the fleet DAG belongs to shard 0. With thousands of clients, several DAG
        files (``build_registry_dags(shard=i, shards=n)`` in file ``i``) let the DAG
        processor parse and serialise them in parallel, each well within its timeouts.
    **overrides
        Options for :func:`build_client_dag` / :func:`build_fleet_dag` that win over
        the registry's ``fleet.airflow`` settings (:data:`REGISTRY_AIRFLOW_KEYS`: ``pool``,
        ``aws_conn_id``, ``schedule``, ``settings`` ...; set them with
        ``sightlines.registry.set_fleet(root, airflow={...})``). ``backend_options`` maps a
        backend name to its options (``{"mesos": {"docker_image": ...}}``): each client gets
        those of its backend (``Registry.backend``).

    Returns
    -------
    dict
        DAG id -> DAG. A client whose registry entry is invalid gets a DAG whose one
        task fails with the error, so one bad entry neither hides itself nor stops the others.
    """
    from sightlines.registry import load_registry

    if not 0 <= shard < shards:
        raise ValueError(f"shard is {shard}; expected 0 <= shard < shards ({shards})")
    reg = load_registry(root)
    options = {**_registry_options(reg.fleet), **overrides}
    # Thousands of long-lived objects: the cyclic GC would only rescan them (about 5% of the build).
    gc_enabled = gc.isenabled()
    gc.disable()
    try:
        return _build_registry_dags(reg, root, only_dag_id, options, shard, shards)
    finally:
        if gc_enabled:
            gc.enable()


def _build_registry_dags(reg: Any, root: str | None, only_dag_id: str | None, options: dict[str, Any],
                         shard: int, shards: int) -> dict[str, DAG]:
    from sightlines.catalog import catalog
    from sightlines.errors import SightlinesError
    from sightlines.storage import validate_client_id

    fleet_keys = {"start_date", "schedule", "aws_conn_id", "timezone"}
    dags: dict[str, DAG] = {}
    if shard == 0 and (only_dag_id is None or only_dag_id == FLEET_DAG_ID):
        dags[FLEET_DAG_ID] = build_fleet_dag(None, root=root, **{k: v for k, v in options.items() if k in fleet_keys})
        if only_dag_id is not None:
            return dags
    if only_dag_id is not None:
        if not only_dag_id.startswith(DAG_ID_PREFIX):
            return dags
        wanted = only_dag_id[len(DAG_ID_PREFIX):]
        names = [wanted] if wanted in reg.clients else []
    else:
        names = reg.names()
    if shards > 1:
        names = [n for n in names if client_shard(n, shards) == shard]
    error_options = {k: v for k, v in options.items() if k in ("start_date", "schedule", "timezone")}
    per_backend = options.pop("backend_options", None) or {}
    _check_backend_options(per_backend)
    cache: dict[str, list[str]] = {}
    for name in names:
        try:
            validate_client_id(name)
        except SightlinesError as exc:
            log.error("registry: skipping client %r: %s", name, exc)
            continue
        raw = reg.clients.get(name) or {}
        try:
            # clients without catalogue changes share one catalogue computation
            ckey = repr(sorted((k, repr(v)) for k, v in raw.items() if k in ("sightlines", "disabled_sightlines")))
            sightlines = cache.get(ckey)
            if sightlines is None:
                sightlines = cache[ckey] = [s.name for s in catalog(reg.config(name))]
            elif raw:
                reg.config(name)  # still validate the rest of the entry
        except SightlinesError as exc:
            log.error("client %s: invalid registry entry: %s", name, exc)
            dags[client_dag_id(name)] = build_config_error_dag(name, str(exc), **error_options)
            continue
        backend = reg.backend(name)
        dags[client_dag_id(name)] = build_client_dag(name, sightlines=sightlines, backend=backend, root=root,
                                                     backend_options=per_backend.get(backend), **options)
    return dags
