"""Run one task on Mesos exactly once, even across retries.

This is what the Airflow ``mesos`` backend calls. One task gets one framework,
named deterministically from the task id (``framework_name_prefix + task_id``).
The master is the only record of what was launched, so a retry -- a new
process, on another worker, after a crash -- finds the earlier try there:

1. ``GET_FRAMEWORKS``/``GET_TASKS`` (operator API) look up frameworks with the
   task's framework name and the task's last known status.
2. A framework that is still registered (its scheduler may be gone, it lives
   for ``failover_timeout``) is **re-attached**: we SUBSCRIBE with its id
   (failover; the master sends ERROR to any older scheduler still connected)
   and RECONCILE the task. The task is launched only if the master does not
   know it (it was never launched).
3. With no registered framework, a task whose last status is ``TASK_FINISHED``
   is **not run again** (unless ``rerun_finished=True``); otherwise a new
   framework is registered and the task launched.
4. Two tries that both registered a new framework at the same moment notice
   each other right after SUBSCRIBED: the younger one tears itself down and
   re-attaches to the older one.

While the task runs: ``TASK_LOST``/``DROPPED``/``GONE`` relaunch (at most
``max_relaunches`` times); ``TASK_UNREACHABLE`` keeps waiting (the task may
still run) and reconciles; ``FAILED``/``KILLED``/``ERROR`` end the run with
the task's message. Every update carrying a uuid is acknowledged. After a
terminal state the framework is torn down.

Examples
--------
Not run here (needs a master)::

    config = MesosConfig(master="zk://zk1:2181/mesos", principal="sl", secret=..., role="batch")
    spec = TaskSpec(task_id="sl.acme.2026-11-24.train", command=["sightlines", "step", "train", ...],
                    cpus=4, mem_mb=16384)
    outcome = await run_task(config, spec)
    outcome.raise_for_state()       # TaskFailedError unless TASK_FINISHED
    print(outcome.sandbox.stdout_url)
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Awaitable, Callable, Mapping

import httpx

from ._http import build_http_client, describe_transport_error
from ._messages import (
    OfferSummary,
    agent_base_url,
    files_url,
    framework_info,
    sandbox_virtual_path,
    summarize_offer,
    take_resources,
    task_info,
)
from .client import Event, SchedulerClient
from .config import MesosConfig, TaskSpec
from .detector import MasterDetector, detector_for
from .errors import FrameworkError, MesosConfigError, MesosError, NoMatchingOfferError, TaskFailedError
from .master_api import FrameworkRecord, MasterAPI, TaskRecord
from .states import (
    ACTIVE_STATES,
    FAILED_STATES,
    RELAUNCH_STATES,
    TASK_DROPPED,
    TASK_FINISHED,
    TASK_RUNNING,
    TASK_STAGING,
    TASK_UNKNOWN,
    TASK_UNREACHABLE,
    TaskStatus,
)

__all__ = [
    "TaskOutcome",
    "SandboxInfo",
    "run_task",
    "submit_task",
    "kill_task",
    "find_task",
    "read_sandbox",
    "run_task_sync",
    "kill_task_sync",
    "find_task_sync",
]

logger = logging.getLogger(__name__)

OnEvent = Callable[[TaskStatus], "Awaitable[None] | None"]

#: refuse filter for offers we do not need at all (we also SUPPRESS)
_IDLE_REFUSE_SECONDS = 3600.0
#: how often a try may yield to an older framework and re-attach before giving up
_MAX_RESTARTS = 3


@dataclass(frozen=True)
class SandboxInfo:
    """Where the task's sandbox (stdout, stderr, files) can be read.

    Parameters
    ----------
    path : str
        Virtual path of the executor's latest sandbox on the agent's ``/files`` API.
    agent_url : str, optional
        Base URL of the agent (``http://10.0.0.5:5051``), when it could be found.
    stdout_url, stderr_url, browse_url : str, optional
        Ready-to-GET ``/files/read`` and ``/files/browse`` URLs on the agent.
    """

    path: str
    agent_url: str | None = None
    stdout_url: str | None = None
    stderr_url: str | None = None
    browse_url: str | None = None

    def describe(self) -> str:
        """One line for a log: where stdout and stderr are."""
        if self.stdout_url:
            return f"stdout: {self.stdout_url} stderr: {self.stderr_url}"
        return f"sandbox {self.path} on the agent (agent address unknown: see the Mesos UI)"


@dataclass(frozen=True)
class TaskOutcome:
    """How a task ended.

    Parameters
    ----------
    task_id : str
        The task.
    state : str
        Final Mesos state (``TASK_FINISHED`` means success).
    message, reason : str
        From the final status, or ours when the runner gave up (e.g. lost too often).
    framework_id, agent_id, agent_hostname : str, optional
        Where the task ran (its last launch).
    launches : int
        LAUNCH operations sent by this call (0 when it re-attached to a task
        launched earlier or found it already finished).
    reattached : bool
        Whether this call found the task's framework from an earlier try.
    sandbox : SandboxInfo, optional
        Where stdout/stderr can be read.
    history : tuple of str
        The task states seen by this call, in order.
    """

    task_id: str
    state: str
    message: str = ""
    reason: str = ""
    framework_id: str | None = None
    agent_id: str | None = None
    agent_hostname: str | None = None
    launches: int = 0
    reattached: bool = False
    sandbox: SandboxInfo | None = None
    history: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """Whether the task finished successfully."""
        return self.state == TASK_FINISHED

    def raise_for_state(self) -> "TaskOutcome":
        """Return ``self`` if the task finished; raise :class:`TaskFailedError` otherwise."""
        if self.ok:
            return self
        where = f" on {self.agent_hostname or self.agent_id}" if (self.agent_hostname or self.agent_id) else ""
        logs = f" Logs: {self.sandbox.describe()}." if self.sandbox else ""
        raise TaskFailedError(
            f"Mesos task {self.task_id} ended {self.state}{where}: {self.message or '(no message)'}"
            f"{' [' + self.reason + ']' if self.reason else ''}.{logs}",
            outcome=self,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict (e.g. for an Airflow trigger event)."""
        data = asdict(self)
        data["history"] = list(self.history)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "TaskOutcome":
        """Inverse of :meth:`to_dict`."""
        values = dict(data)
        if values.get("sandbox") is not None:
            values["sandbox"] = SandboxInfo(**values["sandbox"])
        values["history"] = tuple(values.get("history") or ())
        return cls(**values)


@dataclass(frozen=True)
class _Restart:
    """Start the session again, re-attached to another framework."""

    framework_id: str


@dataclass
class _Connections:
    """The HTTP client, leader detector and operator API one call shares."""

    config: MesosConfig
    http: httpx.AsyncClient | None = None
    detector: MasterDetector | None = None
    api: MasterAPI = field(init=False)
    _owns_http: bool = field(init=False, default=False)

    async def __aenter__(self) -> "_Connections":
        if self.http is None:
            self.http = build_http_client(self.config)
            self._owns_http = True
        if self.detector is None:
            self.detector = detector_for(self.config, self.http)
        self.api = MasterAPI(self.config, self.http, self.detector)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._owns_http and self.http is not None:
            await self.http.aclose()


def _best_record(records: list[TaskRecord]) -> TaskRecord | None:
    """The record that says most about the task: a live one first, else the latest."""
    if not records:
        return None
    return max(records, key=lambda r: (r.live, r.status.timestamp or 0.0))


async def _look_up(
    api: MasterAPI, config: MesosConfig, task_id: str
) -> tuple[list[FrameworkRecord], TaskRecord | None]:
    """Frameworks named for ``task_id`` and the task's most telling record among them."""
    name = f"{config.framework_name_prefix}{task_id}"
    frameworks = [f for f in await api.get_frameworks() if f.name == name]
    framework_ids = {f.framework_id for f in frameworks}
    records = [
        r for r in await api.get_tasks() if r.status.task_id == task_id and r.framework_id in framework_ids
    ]
    return frameworks, _best_record(records)


def _registered_order(framework: FrameworkRecord) -> tuple[float, str]:
    return (framework.registered_time, framework.framework_id)


async def _sandbox_for(
    conns: _Connections, framework_id: str | None, agent_id: str | None, executor_id: str
) -> tuple[SandboxInfo | None, str | None]:
    """Sandbox URLs and the agent's hostname, from ``GET_AGENTS`` (best effort)."""
    if not framework_id:
        return None, None
    path = sandbox_virtual_path(framework_id, executor_id)
    if not agent_id:
        return SandboxInfo(path=path), None
    try:
        agent = await conns.api.find_agent(agent_id)
    except MesosError as exc:
        logger.info("Could not look up agent %s for sandbox URLs: %s", agent_id, exc)
        agent = None
    if agent is None:
        return SandboxInfo(path=path), None
    hostname = (agent.get("agent_info") or {}).get("hostname")
    scheme = (conns.api.master_url or "http://").split("://", 1)[0]
    base = agent_base_url(agent, scheme)
    if base is None:
        return SandboxInfo(path=path), hostname
    return (
        SandboxInfo(
            path=path,
            agent_url=base,
            stdout_url=files_url(base, "read", f"{path}/stdout", offset=0, length=65536),
            stderr_url=files_url(base, "read", f"{path}/stderr", offset=0, length=65536),
            browse_url=files_url(base, "browse", path),
        ),
        hostname,
    )


class _TaskRun:
    """One call of :func:`run_task` / :func:`submit_task`: a small state machine over events."""

    def __init__(
        self,
        conns: _Connections,
        spec: TaskSpec,
        *,
        on_event: OnEvent | None,
        rerun_finished: bool,
        until_running: bool,
    ):
        self.conns = conns
        self.config = conns.config
        self.spec = spec
        self.on_event = on_event
        self.rerun_finished = rerun_finished
        self.until_running = until_running
        self.name = spec.framework_name(self.config.framework_name_prefix)
        self.wanted = spec.resources()
        # across sessions of this call
        self.launches = 0
        self.relaunches = 0
        self.history: list[str] = []
        self.reattached = False
        self.invalid_offer_drops = 0

    # -- entry point -------------------------------------------------------------------------

    async def run(self) -> TaskOutcome | TaskStatus:
        frameworks, record = await _look_up(self.conns.api, self.config, self.spec.task_id)
        registered = sorted((f for f in frameworks if not f.completed), key=_registered_order)
        target: str | None = None
        known: TaskRecord | None = None
        if registered:
            holder = next((f for f in registered if record and f.framework_id == record.framework_id), None)
            target = (holder or registered[0]).framework_id
            known = record if record and record.framework_id == target else None
        elif record and record.status.state == TASK_FINISHED and not self.rerun_finished:
            logger.info(
                "Task %s already finished in framework %s (an earlier try); not running it again",
                self.spec.task_id, record.framework_id,
            )
            return await self._outcome_from_record(record)
        for _ in range(_MAX_RESTARTS + 1):
            result = await self._session(target, known)
            if not isinstance(result, _Restart):
                return result
            target, known = result.framework_id, None
        raise MesosError(
            f"Task {self.spec.task_id}: kept finding competing frameworks named {self.name!r}; another process "
            "is running the same task. Stop the duplicate run and retry."
        )

    async def _outcome_from_record(self, record: TaskRecord) -> TaskOutcome:
        status = record.status
        sandbox, hostname = await _sandbox_for(
            self.conns, record.framework_id, status.agent_id, status.executor_id or status.task_id
        )
        return TaskOutcome(
            task_id=status.task_id, state=status.state, message=status.message, reason=status.reason,
            framework_id=record.framework_id, agent_id=status.agent_id, agent_hostname=hostname,
            launches=0, reattached=True, sandbox=sandbox, history=(status.state,),
        )

    # -- one subscription --------------------------------------------------------------------

    async def _session(
        self, framework_id: str | None, known: TaskRecord | None
    ) -> TaskOutcome | TaskStatus | _Restart:
        self.framework_id = framework_id
        self.reattaching = framework_id is not None
        self.reattached = self.reattached or self.reattaching
        self.known = known
        self.ever_launched = known is not None
        self.agent_id: str | None = known.status.agent_id if known else None
        self.agent_hostname: str | None = None
        self.need_launch = False
        self.offer_deadline: float | None = None
        self.reconcile_due: float | None = None
        self.unreachable_since: float | None = None
        self.warned_unknown = False
        self.suppressed = False
        self.first_subscription = True
        self.best_offer: OfferSummary | None = None
        self.offers_seen = 0
        self.last_status: TaskStatus | None = known.status if known else None
        self.started = known is not None and known.status.state not in (TASK_STAGING, TASK_UNKNOWN)
        if not self.reattaching:
            self._want_launch()
        info = framework_info(self.config, self.name, framework_id=framework_id, task_id=self.spec.task_id)
        self.client = SchedulerClient(self.config, info, detector=self.conns.detector, http=self.conns.http)
        async with self.client:
            while True:
                event = await self.client.next_event(timeout=self._wakeup_in())
                result = await self._handle(event) if event is not None else None
                if result is None:
                    result = await self._tick()
                if result is not None:
                    return result

    def _wakeup_in(self) -> float:
        now = time.monotonic()
        deadlines = [d for d in (self.offer_deadline, self.reconcile_due) if d is not None]
        if not deadlines:
            return 1.0
        return max(0.01, min(1.0, min(deadlines) - now))

    async def _tick(self) -> TaskOutcome | None:
        now = time.monotonic()
        if self.need_launch and self.offer_deadline is not None and now >= self.offer_deadline:
            await self._teardown()
            raise NoMatchingOfferError(self._no_offer_message())
        if self.reconcile_due is not None and now >= self.reconcile_due and self.client.subscribed:
            await self._reconcile()
        return None

    def _no_offer_message(self) -> str:
        asked = " ".join(f"{k}={v:g}" for k, v in self.wanted.items())
        if self.best_offer is None:
            seen = "no offer was received at all (check that agents offer resources to the role and that it has quota)"
        else:
            seen = f"the largest offer seen was {self.best_offer.describe()} ({self.offers_seen} offers seen)"
        return (
            f"No Mesos offer fitted task {self.spec.task_id} within {self.config.offer_timeout:g}s: it asks for "
            f"{asked} (MiB for mem/disk) in role {self.config.role!r}; {seen}. Lower the step's resources, add "
            "capacity to the role, or raise MesosConfig.offer_timeout."
        )

    # -- events ------------------------------------------------------------------------------

    async def _handle(self, event: Event) -> TaskOutcome | TaskStatus | _Restart | None:
        kind = event.get("type")
        if kind == "SUBSCRIBED":
            return await self._on_subscribed()
        if kind == "OFFERS":
            await self._on_offers((event.get("offers") or {}).get("offers", []))
        elif kind == "UPDATE":
            return await self._on_update((event.get("update") or {}).get("status") or {})
        elif kind == "UPDATE_OPERATION_STATUS":
            status = (event.get("update_operation_status") or {}).get("status") or {}
            await self._best_effort(self.client.acknowledge_operation_status(status), "ACKNOWLEDGE_OPERATION_STATUS")
        elif kind == "RESCIND":
            logger.debug("Offer rescinded: %s", event.get("rescind"))
        elif kind == "FAILURE":
            failure = event.get("failure") or {}
            agent = (failure.get("agent_id") or {}).get("value")
            executor = (failure.get("executor_id") or {}).get("value")
            if executor:
                logger.warning("Mesos reports executor %s on agent %s ended (status %s)",
                               executor, agent, failure.get("status"))
            else:
                logger.warning("Mesos reports agent %s as failed (removed from the cluster)", agent)
        elif kind == "MESSAGE":
            logger.debug("Ignoring an executor MESSAGE")
        return None

    async def _on_subscribed(self) -> TaskOutcome | TaskStatus | _Restart | None:
        self.framework_id = self.client.framework_id
        if self.first_subscription:
            self.first_subscription = False
            if self.reattaching:
                logger.info("Re-attached to framework %s of task %s", self.framework_id, self.spec.task_id)
                if self.known is not None and self.known.status.terminal:
                    return await self._on_status(self.known.status)
            else:
                logger.info("Registered framework %s (%s) for task %s",
                            self.framework_id, self.name, self.spec.task_id)
                restart = await self._yield_to_older_framework()
                if restart is not None:
                    return restart
        if self.need_launch:
            if self.suppressed:
                await self._best_effort(self.client.revive(), "REVIVE")
                self.suppressed = False
        else:
            await self._reconcile()
        return None

    async def _yield_to_older_framework(self) -> _Restart | None:
        try:
            frameworks = [f for f in await self.conns.api.get_frameworks() if f.name == self.name and not f.completed]
        except MesosError as exc:
            logger.info("Could not check for competing frameworks: %s", exc)
            return None
        mine = next((f for f in frameworks if f.framework_id == self.framework_id), None)
        if mine is None:
            return None
        older = [f for f in frameworks if _registered_order(f) < _registered_order(mine)]
        if not older:
            return None
        winner = min(older, key=_registered_order)
        logger.warning(
            "Another try registered framework %s for task %s first; tearing down %s and re-attaching to it",
            winner.framework_id, self.spec.task_id, self.framework_id,
        )
        await self._teardown()
        return _Restart(winner.framework_id)

    async def _on_offers(self, offers: list[Mapping[str, Any]]) -> None:
        too_small: list[str] = []
        not_needed: list[str] = []
        for offer in offers:
            summary = summarize_offer(offer, self.config.role)
            if not self.need_launch:
                not_needed.append(summary.offer_id)
                continue
            self.offers_seen += 1
            if self.best_offer is None or summary.closeness(self.wanted) > self.best_offer.closeness(self.wanted):
                self.best_offer = summary
            resources = take_resources(offer, self.wanted, self.config.role)
            if resources is None:
                too_small.append(summary.offer_id)
                continue
            await self._launch(summary, resources)
        if too_small:
            logger.debug("Declining %d offers too small for task %s", len(too_small), self.spec.task_id)
            await self._best_effort(
                self.client.decline(too_small, refuse_seconds=self.config.decline_refuse_seconds), "DECLINE"
            )
        if not_needed:
            await self._best_effort(self.client.decline(not_needed, refuse_seconds=_IDLE_REFUSE_SECONDS), "DECLINE")
            if not self.suppressed:
                await self._best_effort(self.client.suppress(), "SUPPRESS")
                self.suppressed = True

    async def _launch(self, offer: OfferSummary, resources: list[dict[str, Any]]) -> None:
        task = task_info(self.spec, offer.agent_id, resources, kill_grace_period=self.config.kill_grace_period)
        self.need_launch = False
        self.offer_deadline = None
        self.started = False
        self.launches += 1
        self.ever_launched = True
        self.agent_id, self.agent_hostname = offer.agent_id, offer.hostname
        self.reconcile_due = time.monotonic() + self.config.reconcile_interval
        logger.info(
            "Launching task %s on agent %s (%s) with %s (framework %s, launch #%d)",
            self.spec.task_id, offer.agent_id, offer.hostname,
            " ".join(f"{k}={v:g}" for k, v in self.wanted.items()), self.framework_id, self.launches,
        )
        try:
            await self.client.launch(offer.offer_id, [task], refuse_seconds=self.config.decline_refuse_seconds)
        except MesosError as exc:  # the launch may or may not have happened: reconciliation tells
            logger.warning("LAUNCH of task %s may have failed (%s); reconciling", self.spec.task_id, exc)
        if not self.suppressed:
            await self._best_effort(self.client.suppress(), "SUPPRESS")
            self.suppressed = True

    def _want_launch(self) -> None:
        self.need_launch = True
        self.unreachable_since = None
        self.offer_deadline = time.monotonic() + self.config.offer_timeout
        self.reconcile_due = None
        self.best_offer = None
        self.offers_seen = 0

    async def _reconcile(self) -> None:
        await self._best_effort(self.client.reconcile([(self.spec.task_id, self.agent_id)]), "RECONCILE")
        self.reconcile_due = time.monotonic() + self.config.reconcile_interval

    async def _on_update(self, raw: Mapping[str, Any]) -> TaskOutcome | TaskStatus | None:
        status = TaskStatus.from_json(raw, framework_id=self.framework_id)
        await self._best_effort(self.client.acknowledge_status(status), "ACKNOWLEDGE")
        if status.task_id != self.spec.task_id:
            logger.warning("Ignoring an update for unexpected task %s in framework %s",
                           status.task_id, self.framework_id)
            return None
        return await self._on_status(status)

    async def _on_status(self, status: TaskStatus) -> TaskOutcome | TaskStatus | None:
        state = status.state
        stale = (
            self.launches > 0 and status.agent_id is not None and self.agent_id is not None
            and status.agent_id != self.agent_id
        )
        # DROPPED means "never started": after a start it answers a duplicate or stale launch request
        dropped_after_start = state == TASK_DROPPED and self.started
        if stale or dropped_after_start or (self.need_launch and (state in RELAUNCH_STATES or state == TASK_UNKNOWN)):
            logger.debug("Ignoring %s of an earlier launch of task %s", state, status.task_id)
            return None
        self.last_status = status
        if not self.history or self.history[-1] != state:
            self.history.append(state)
        if status.agent_id:
            self.agent_id = status.agent_id
        await self._notify(status)
        if state in ACTIVE_STATES:
            self.started = self.started or state != TASK_STAGING
            if self.unreachable_since is not None:
                logger.warning("Task %s is reachable again (%s)", status.task_id, state)
                self.unreachable_since = None
            self.reconcile_due = None
            if self.until_running and state == TASK_RUNNING:
                return status
            return None
        if state == TASK_UNREACHABLE:
            if self.unreachable_since is None:
                self.unreachable_since = time.monotonic()
                logger.warning(
                    "Task %s is unreachable on agent %s; it may still be running, so it is NOT relaunched. "
                    "Waiting for it to come back (reconciling every %gs). If the agent is dead for good, mark it "
                    "gone (operator API MARK_AGENT_GONE) and the task will be relaunched.",
                    status.task_id, status.agent_id, self.config.reconcile_interval,
                )
            self.reconcile_due = time.monotonic() + self.config.reconcile_interval
            return None
        if state == TASK_FINISHED or state in FAILED_STATES:
            return await self._finish(status)
        if state == TASK_UNKNOWN and self.unreachable_since is not None:
            # the master forgot the partitioned agent (GC); the task may still be running there
            if not self.warned_unknown:
                self.warned_unknown = True
                logger.warning(
                    "Task %s was unreachable and is now unknown to the master; it may still be running, so it is "
                    "NOT relaunched. Check agent %s by hand; kill_task() or a cleared Airflow task ends the wait.",
                    status.task_id, self.agent_id,
                )
            self.reconcile_due = time.monotonic() + self.config.reconcile_interval
            return None
        if state in RELAUNCH_STATES or state == TASK_UNKNOWN:
            if state == TASK_DROPPED and status.reason == "REASON_INVALID_OFFERS" and self.invalid_offer_drops < 5:
                # the offer went stale (e.g. rescinded during a reconnection): the task never ran, try again
                self.invalid_offer_drops += 1
                logger.info("Launch of task %s used a stale offer; launching again", status.task_id)
                self._want_launch()
                await self._revive()
                return None
            if not self.ever_launched:
                logger.info("Task %s is unknown to framework %s: launching it", status.task_id, self.framework_id)
                self._want_launch()
                await self._revive()
                return None
            if self.relaunches >= self.config.max_relaunches:
                return await self._finish(
                    status,
                    message=(
                        f"{state} after {self.relaunches} relaunches ({status.message or 'no message'}); "
                        "raise MesosConfig.max_relaunches or check the agents' health"
                    ),
                )
            self.relaunches += 1
            logger.warning(
                "Task %s is %s (%s); relaunching it (%d of at most %d)",
                status.task_id, state, status.message or status.reason or "no message",
                self.relaunches, self.config.max_relaunches,
            )
            self._want_launch()
            await self._revive()
            return None
        logger.info("Task %s is %s", status.task_id, state)
        return None

    async def _revive(self) -> None:
        if self.suppressed:
            await self._best_effort(self.client.revive(), "REVIVE")
            self.suppressed = False

    async def _notify(self, status: TaskStatus) -> None:
        if self.on_event is None:
            return
        try:
            result = self.on_event(status)
            if inspect.isawaitable(result):
                await result
        except Exception:  # a broken callback must not break exactly-once bookkeeping
            logger.exception("on_event callback failed for %s %s", status.task_id, status.state)

    async def _finish(self, status: TaskStatus, *, message: str | None = None) -> TaskOutcome | TaskStatus:
        level = logging.INFO if status.state == TASK_FINISHED else logging.WARNING
        logger.log(level, "Task %s ended %s: %s", status.task_id, status.state, message or status.message or "-")
        await self._teardown()
        sandbox, hostname = await _sandbox_for(
            self.conns, self.framework_id, status.agent_id or self.agent_id, status.executor_id or status.task_id
        )
        outcome = TaskOutcome(
            task_id=self.spec.task_id,
            state=status.state,
            message=message if message is not None else status.message,
            reason=status.reason,
            framework_id=self.framework_id,
            agent_id=status.agent_id or self.agent_id,
            agent_hostname=hostname or self.agent_hostname,
            launches=self.launches,
            reattached=self.reattached,
            sandbox=sandbox,
            history=tuple(self.history),
        )
        if sandbox is not None and status.state != TASK_FINISHED:
            logger.warning("Task %s logs: %s", status.task_id, sandbox.describe())
        if self.until_running:
            return status
        return outcome

    async def _teardown(self) -> None:
        await self._best_effort(self.client.teardown(), "TEARDOWN")

    async def _best_effort(self, call: Awaitable[Any], what: str) -> None:
        """Run a call whose failure the protocol recovers from (redelivery, reconciliation)."""
        try:
            await call
        except (MesosError, httpx.HTTPError) as exc:
            logger.warning("%s for task %s failed: %s", what, self.spec.task_id, exc)


async def run_task(
    config: MesosConfig,
    spec: TaskSpec,
    *,
    on_event: OnEvent | None = None,
    rerun_finished: bool = False,
    http: httpx.AsyncClient | None = None,
    detector: MasterDetector | None = None,
) -> TaskOutcome:
    """Run ``spec`` to completion, launching it only if no earlier try did.

    Parameters
    ----------
    config : MesosConfig
        The cluster.
    spec : TaskSpec
        The task; ``spec.task_id`` must be deterministic for the (client, date, step).
    on_event : callable, optional
        Called with every :class:`TaskStatus` of the task (sync or async).
    rerun_finished : bool, default=False
        Run again even if the master remembers the task as ``TASK_FINISHED``
        (for a deliberate re-run, e.g. a cleared Airflow task).
    http : httpx.AsyncClient, optional
        A client to share; by default one is built from ``config``.
    detector : MasterDetector, optional
        Leader detection override (tests).

    Returns
    -------
    TaskOutcome
        The final state; call :meth:`TaskOutcome.raise_for_state` to turn a
        failure into an exception.

    Raises
    ------
    NoMatchingOfferError
        No offer fitted the task within ``offer_timeout`` (the message says
        what was asked and the largest offer seen).
    MesosConnectionError, FrameworkError, MesosAuthError, MasterNotFoundError
        The cluster could not be used. A task already launched keeps running;
        calling again re-attaches to it.
    """
    async with _Connections(config, http, detector) as conns:
        result = await _TaskRun(conns, spec, on_event=on_event, rerun_finished=rerun_finished,
                                until_running=False).run()
    assert isinstance(result, TaskOutcome)
    return result


async def submit_task(
    config: MesosConfig,
    spec: TaskSpec,
    *,
    on_event: OnEvent | None = None,
    rerun_finished: bool = False,
    http: httpx.AsyncClient | None = None,
    detector: MasterDetector | None = None,
) -> TaskStatus:
    """Launch (or re-attach to) the task and return once it is ``TASK_RUNNING`` or over.

    The framework stays registered (for ``failover_timeout``) so that a later
    :func:`run_task` -- e.g. in an Airflow trigger -- re-attaches and waits.
    Same parameters and errors as :func:`run_task`.

    Returns
    -------
    TaskStatus
        The RUNNING status, or the final one if the task already ended.
    """
    async with _Connections(config, http, detector) as conns:
        run = _TaskRun(conns, spec, on_event=on_event, rerun_finished=rerun_finished, until_running=True)
        result = await run.run()
    if isinstance(result, TaskOutcome):  # found finished from an earlier try
        return TaskStatus(task_id=result.task_id, state=result.state, message=result.message,
                          reason=result.reason, agent_id=result.agent_id, framework_id=result.framework_id)
    return result


async def find_task(
    config: MesosConfig,
    task_id: str,
    *,
    http: httpx.AsyncClient | None = None,
    detector: MasterDetector | None = None,
) -> TaskStatus | None:
    """What the master knows of ``task_id`` (from this task's frameworks), without launching anything.

    Read-only (operator API only): safe to call from anywhere, any number of times.

    Returns
    -------
    TaskStatus or None
        The live status if the task may be running, else its latest status;
        ``None`` if the master knows no such task (never launched, or forgotten).
    """
    async with _Connections(config, http, detector) as conns:
        _, record = await _look_up(conns.api, config, task_id)
    return record.status if record else None


async def kill_task(
    config: MesosConfig,
    task_id: str,
    reason: str,
    *,
    timeout: float = 30.0,
    http: httpx.AsyncClient | None = None,
    detector: MasterDetector | None = None,
) -> TaskStatus | None:
    """Kill the task and tear its framework down (idempotent).

    Re-subscribes to the task's framework (taking it over from any scheduler
    still attached, which then stops with :class:`FrameworkError`), sends KILL,
    waits up to ``timeout`` seconds for the terminal update, then TEARDOWN
    (which kills whatever is left and stops any later launch).

    Parameters
    ----------
    reason : str
        Why (logged), e.g. ``"Airflow task marked failed by alice"``.

    Returns
    -------
    TaskStatus or None
        The task's final status if one was seen, else its last known one
        (``None`` when the master does not know the task).
    """
    async with _Connections(config, http, detector) as conns:
        frameworks, record = await _look_up(conns.api, config, task_id)
        registered = sorted((f for f in frameworks if not f.completed), key=_registered_order)
        if not registered:
            logger.info("Kill of task %s (%s): no registered framework, nothing to kill", task_id, reason)
            return record.status if record else None
        final: TaskStatus | None = record.status if record else None
        for framework in registered:
            agent_id = record.status.agent_id if record and record.framework_id == framework.framework_id else None
            try:
                seen = await _kill_in_framework(conns, framework.framework_id, task_id, agent_id, reason, timeout)
            except FrameworkError as exc:  # removed meanwhile (finished and torn down): nothing left to kill
                logger.info("Kill of task %s: framework %s is gone (%s)", task_id, framework.framework_id, exc)
                continue
            final = seen or final
        return final


async def _kill_in_framework(
    conns: _Connections, framework_id: str, task_id: str, agent_id: str | None, reason: str, timeout: float
) -> TaskStatus | None:
    config = conns.config
    info = framework_info(config, f"{config.framework_name_prefix}{task_id}", framework_id=framework_id,
                          task_id=task_id)
    final: TaskStatus | None = None
    async with SchedulerClient(config, info, detector=conns.detector, http=conns.http) as client:
        await client.wait_subscribed(timeout)
        logger.warning("Killing Mesos task %s (framework %s): %s", task_id, framework_id, reason)
        await client.kill(task_id, agent_id)
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            event = await client.next_event(timeout=left)
            if event is None:
                break
            if event.get("type") == "OFFERS":
                offer_ids = [o["id"]["value"] for o in (event.get("offers") or {}).get("offers", [])]
                if offer_ids:
                    await client.decline(offer_ids, refuse_seconds=_IDLE_REFUSE_SECONDS)
            elif event.get("type") == "UPDATE":
                status = TaskStatus.from_json((event.get("update") or {}).get("status") or {},
                                              framework_id=framework_id)
                await client.acknowledge_status(status)
                if status.task_id == task_id and (status.terminal or status.state == TASK_UNKNOWN):
                    final = status
                    break
        if final is None:
            logger.warning("No terminal update for task %s within %gs; tearing the framework down", task_id, timeout)
        await client.teardown()
    return final


async def read_sandbox(
    config: MesosConfig,
    outcome: TaskOutcome,
    filename: str = "stdout",
    *,
    tail_bytes: int | None = 65536,
    http: httpx.AsyncClient | None = None,
) -> str:
    """Read a file of the task's sandbox from its agent (``stdout``, ``stderr``, or any file in it).

    Parameters
    ----------
    tail_bytes : int or None, default=65536
        Read only the last bytes (``None``: the whole file, which may be large).

    Raises
    ------
    MesosError
        When the sandbox address is unknown or the agent does not answer.
    """
    if outcome.sandbox is None or outcome.sandbox.agent_url is None:
        raise MesosError(f"The sandbox of task {outcome.task_id} has no known agent address; see the Mesos UI.")
    base, path = outcome.sandbox.agent_url, f"{outcome.sandbox.path}/{filename}"
    owns = http is None
    http = http or build_http_client(config)
    try:
        offset = 0
        if tail_bytes is not None:
            size = (await _files_read(http, base, path, offset=-1)).get("offset", 0)
            offset = max(0, int(size) - tail_bytes)
        chunks: list[str] = []
        while True:
            answer = await _files_read(http, base, path, offset=offset, length=65536)
            data = str(answer.get("data", ""))
            if not data:
                return "".join(chunks)
            chunks.append(data)
            offset = int(answer.get("offset", offset)) + len(data.encode())
    finally:
        if owns:
            await http.aclose()


async def _files_read(http: httpx.AsyncClient, base: str, path: str, **params: Any) -> dict[str, Any]:
    url = files_url(base, "read", path, **params)
    try:
        response = await http.get(url)
    except httpx.TransportError as exc:
        raise MesosError(f"Reading the sandbox failed: {describe_transport_error(base, exc)}") from None
    if response.status_code != 200:
        raise MesosError(f"Reading {path} from agent {base} answered HTTP {response.status_code}.")
    return response.json()


def _run_sync(coro: Awaitable[Any]) -> Any:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)  # type: ignore[arg-type]
    if inspect.iscoroutine(coro):
        coro.close()
    raise MesosConfigError(
        "A *_sync Mesos function was called from inside a running event loop; await the async version instead."
    )


def run_task_sync(config: MesosConfig, spec: TaskSpec, **kwargs: Any) -> TaskOutcome:
    """Blocking :func:`run_task` (for code without an event loop)."""
    return _run_sync(run_task(config, spec, **kwargs))


def kill_task_sync(config: MesosConfig, task_id: str, reason: str, **kwargs: Any) -> TaskStatus | None:
    """Blocking :func:`kill_task`."""
    return _run_sync(kill_task(config, task_id, reason, **kwargs))


def find_task_sync(config: MesosConfig, task_id: str, **kwargs: Any) -> TaskStatus | None:
    """Blocking :func:`find_task`."""
    return _run_sync(find_task(config, task_id, **kwargs))
