"""An asyncio client of the Mesos v1 scheduler HTTP API.

:class:`SchedulerClient` holds one framework's subscription to the leading
master: it SUBSCRIBEs, reads the RecordIO event stream in a background task,
and hands events to the caller through :meth:`SchedulerClient.next_event`.
When the stream breaks, or no event (not even a HEARTBEAT) arrives for
``heartbeat_tolerance`` heartbeat intervals, it drops the connection,
re-detects the leader and SUBSCRIBEs again with the same framework id
(failover), backing off exponentially with jitter. Every SUBSCRIBED event is
passed on, so the caller knows when to reconcile.

Calls (ACCEPT, DECLINE, KILL, ACKNOWLEDGE, RECONCILE, TEARDOWN, SUPPRESS,
REVIVE, SHUTDOWN) go on separate connections and carry the
``Mesos-Stream-Id`` of the current subscription.

Examples
--------
A minimal scheduler that declines everything (not run here: needs a master)::

    from sightlines.mesos import MesosConfig, SchedulerClient, framework_info

    config = MesosConfig(master="https://m1:5050,https://m2:5050", principal="sl", secret=..., role="batch")
    async with SchedulerClient(config, framework_info(config, "demo")) as client:
        while (event := await client.next_event(timeout=30)) is not None:
            if event["type"] == "OFFERS":
                await client.decline([o["id"]["value"] for o in event["offers"]["offers"]])
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from typing import Any, Iterable, Mapping

import httpx

from ._http import auth_error, build_http_client, describe_transport_error, resolve_location, post_json
from ._messages import ids
from ._recordio import RecordIODecoder
from .config import MesosConfig
from .detector import MasterDetector, detector_for
from .errors import (
    FrameworkError,
    MasterNotFoundError,
    MesosAuthError,
    MesosCallError,
    MesosConnectionError,
    MesosError,
    MesosProtocolError,
)
from .states import TaskStatus

__all__ = ["SchedulerClient", "Event"]

logger = logging.getLogger(__name__)

Event = dict[str, Any]

SCHEDULER_PATH = "/api/v1/scheduler"
STREAM_ID_HEADER = "Mesos-Stream-Id"
#: heartbeat interval assumed until the master tells its own
DEFAULT_HEARTBEAT_SECONDS = 15.0


class _StreamEnded(Exception):
    """The subscription stream ended or went silent; re-subscribe."""


class SchedulerClient:
    """One framework's subscription to the leading Mesos master.

    Parameters
    ----------
    config : MesosConfig
        Cluster settings (auth, TLS, timeouts, backoff).
    framework_info : mapping
        The ``FrameworkInfo`` to subscribe with (see
        :func:`sightlines.mesos._messages.framework_info`). If it has an ``id``
        the subscription is a failover of that existing framework.
    detector : MasterDetector, optional
        How to find the leader (default: from ``config.master``).
    http : httpx.AsyncClient, optional
        A client to share (the caller closes it); by default one is built from
        ``config`` and closed by :meth:`close`.

    Attributes
    ----------
    framework_id : str or None
        Known once SUBSCRIBED (or given in ``framework_info``).
    stream_id : str or None
        ``Mesos-Stream-Id`` of the live subscription.
    master_url : str or None
        Base URL of the master we are subscribed to.
    subscriptions : int
        How many SUBSCRIBED events were received (1 + reconnections).
    """

    def __init__(
        self,
        config: MesosConfig,
        framework_info: Mapping[str, Any],
        *,
        detector: MasterDetector | None = None,
        http: httpx.AsyncClient | None = None,
    ):
        self.config = config
        self._framework_info = dict(framework_info)
        self.framework_id: str | None = (framework_info.get("id") or {}).get("value")
        self.stream_id: str | None = None
        self.master_url: str | None = None
        self.heartbeat_interval: float = DEFAULT_HEARTBEAT_SECONDS
        self.subscriptions = 0
        self._owns_http = http is None
        self._http = http
        self._detector = detector
        self._events: asyncio.Queue[Event | BaseException] = asyncio.Queue()
        self._subscribed = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None
        self._stopping = False
        self._tearing_down = False

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Start subscribing in the background (returns at once; see :meth:`wait_subscribed`)."""
        if self._loop_task is not None:
            return
        if self._http is None:
            self._http = build_http_client(self.config)
        if self._detector is None:
            self._detector = detector_for(self.config, self._http)
        self._loop_task = asyncio.create_task(self._subscription_loop(), name="mesos-subscription")

    async def close(self) -> None:
        """Drop the subscription (the framework stays registered until ``failover_timeout``)."""
        self._stopping = True
        self._subscribed.clear()
        task, self._loop_task = self._loop_task, None
        while task is not None and not task.done():
            task.cancel()
            # asyncio.wait neither raises the task's error nor swallows our own cancellation
            await asyncio.wait({task}, timeout=1.0)
        if task is not None and not task.cancelled():
            task.exception()  # retrieved: already handed to the caller through next_event
        if self._owns_http and self._http is not None:
            await self._http.aclose()
            self._http = None

    async def __aenter__(self) -> "SchedulerClient":
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def subscribed(self) -> bool:
        """Whether a subscription is live right now."""
        return self._subscribed.is_set()

    async def wait_subscribed(self, timeout: float | None = None) -> None:
        """Wait for a live subscription.

        Raises
        ------
        MesosConnectionError
            If none within ``timeout`` seconds (default ``config.reconnect_timeout``).
        """
        timeout = self.config.reconnect_timeout if timeout is None else timeout
        if self._subscribed.is_set():
            return
        self._raise_if_failed()
        waiter = asyncio.ensure_future(self._subscribed.wait())
        tasks: set[asyncio.Future[Any]] = {waiter}
        if self._loop_task is not None:
            tasks.add(self._loop_task)
        await asyncio.wait(tasks, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        if self._subscribed.is_set():
            return
        self._raise_if_failed()
        raise MesosConnectionError(
            f"No subscription to a Mesos master within {timeout:g}s (framework {self.framework_id or '(new)'}). "
            "Check that the master is reachable; a task already launched keeps running and a retry re-attaches."
        )

    def _raise_if_failed(self) -> None:
        task = self._loop_task
        if task is not None and task.done() and not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]

    async def next_event(self, timeout: float | None = None) -> Event | None:
        """The next event from the master, or ``None`` after ``timeout`` seconds without one.

        Raises
        ------
        FrameworkError, MesosAuthError, MesosConnectionError
            When the subscription failed for good (the error is raised once
            every event received before it has been handed out).
        """
        try:
            async with asyncio.timeout(timeout):
                item = await self._events.get()
        except TimeoutError:
            return None
        if isinstance(item, BaseException):
            self._events.put_nowait(item)  # keep raising on later calls
            raise item
        return item

    # -- the subscription loop ---------------------------------------------------------------

    def _backoff(self, attempt: int) -> float:
        ceiling = min(self.config.backoff_max, self.config.backoff_initial * (2**attempt))
        return ceiling / 2 + random.uniform(0, ceiling / 2)  # "equal jitter"

    async def _subscription_loop(self) -> None:
        attempt = 0
        last_alive = time.monotonic()
        while not self._stopping:
            subscriptions_before = self.subscriptions
            try:
                reason = await self._subscribe_once()
            except (FrameworkError, MesosAuthError) as exc:
                self._events.put_nowait(exc)
                raise
            except MesosCallError as exc:
                if exc.status_code is not None and 400 <= exc.status_code < 500:
                    self._events.put_nowait(exc)  # the request itself is wrong: retrying will not help
                    raise
                reason = str(exc)
            except (httpx.TransportError, httpx.DecodingError, _StreamEnded, MasterNotFoundError,
                    MesosProtocolError) as exc:
                reason = str(exc) if isinstance(exc, (MesosError, _StreamEnded)) else describe_transport_error(
                    self.master_url or "master", exc)
            finally:
                self._subscribed.clear()
                self.stream_id = None
            if self._stopping or self._tearing_down:
                return
            now = time.monotonic()
            if self.subscriptions > subscriptions_before:
                attempt, last_alive = 0, now
            if now - last_alive > self.config.reconnect_timeout:
                what = "Lost the subscription of" if self.subscriptions else "Could not subscribe"
                error = MesosConnectionError(
                    f"{what} framework {self.framework_id or '(new)'} and could not "
                    f"(re-)subscribe within {self.config.reconnect_timeout:g}s (last problem: {reason}). "
                    "A launched task keeps running for the framework's failover_timeout; "
                    "retrying re-attaches to it."
                )
                self._events.put_nowait(error)
                raise error
            delay = self._backoff(attempt)
            attempt += 1
            logger.warning(
                "Mesos subscription of framework %s lost (%s); re-subscribing in %.2fs",
                self.framework_id or "(new)", reason, delay,
            )
            await asyncio.sleep(delay)

    async def _subscribe_once(self) -> str:
        """Subscribe and pump events until the stream ends; return why it ended."""
        assert self._http is not None and self._detector is not None
        master = await self._detector.detect()
        info = dict(self._framework_info)
        body: dict[str, Any] = {"type": "SUBSCRIBE", "subscribe": {"framework_info": info}}
        if self.framework_id:
            info["id"] = {"value": self.framework_id}
            body["framework_id"] = {"value": self.framework_id}
        timeout = httpx.Timeout(self.config.request_timeout, connect=self.config.connect_timeout, read=None)
        for _ in range(6):
            url = master + SCHEDULER_PATH
            # a dedicated connection that is never handed back to the pool for other calls
            headers = {"Connection": "close"}
            async with self._http.stream("POST", url, json=body, headers=headers, timeout=timeout) as response:
                location = response.headers.get("location")
                if response.status_code in (301, 302, 307, 308) and location:
                    master = resolve_location(master, location)
                    logger.info("Mesos master redirected the subscription to the leader %s", master)
                    continue
                if response.status_code in (401, 403):
                    await response.aread()
                    raise auth_error(master, response, self.config, "the SUBSCRIBE call")
                if response.status_code != 200:
                    await response.aread()
                    hint = ""
                    if response.status_code < 500:
                        hint = " Check the framework settings (role, user) in MesosConfig."
                    raise MesosCallError(
                        f"SUBSCRIBE to {master} answered HTTP {response.status_code}: "
                        f"{response.text.strip()[:300]}.{hint}",
                        status_code=response.status_code,
                    )
                self.master_url = master
                return await self._pump(response)
        raise MesosProtocolError(f"Too many redirects subscribing to the Mesos master (last: {master}).")

    async def _pump(self, response: httpx.Response) -> str:
        stream_id = response.headers.get(STREAM_ID_HEADER)
        decoder = RecordIODecoder()
        chunks = response.aiter_raw().__aiter__()
        got_subscribed = False
        while True:
            if got_subscribed:
                silence = self.heartbeat_interval * self.config.heartbeat_tolerance
            else:
                silence = self.config.request_timeout
            if self._stopping:
                return "the client is closing"
            try:
                async with asyncio.timeout(silence):
                    chunk = await chunks.__anext__()
            except StopAsyncIteration:
                return "the master closed the event stream"
            except TimeoutError:
                raise _StreamEnded(
                    f"no event for {silence:.1f}s ({self.config.heartbeat_tolerance:g} x heartbeat interval "
                    f"{self.heartbeat_interval:g}s): missed heartbeats"
                ) from None
            for record in decoder.feed(chunk):
                try:
                    event = json.loads(record)
                except ValueError as exc:
                    raise MesosProtocolError(f"The master sent an event that is not JSON: {exc}") from None
                kind = event.get("type")
                if kind == "SUBSCRIBED":
                    got_subscribed = True
                    self._on_subscribed(event, stream_id)
                elif kind == "ERROR":
                    message = (event.get("error") or {}).get("message") or event.get("message") or "(no message)"
                    raise FrameworkError(
                        f"The Mesos master sent ERROR to framework {self.framework_id or '(new)'}: {message}. "
                        "Another scheduler may have taken the framework over (a retry or kill_task), or the "
                        "framework was removed; run again to re-attach or relaunch."
                    )
                self._events.put_nowait(event)

    def _on_subscribed(self, event: Event, stream_id: str | None) -> None:
        subscribed = event.get("subscribed") or {}
        framework_id = (subscribed.get("framework_id") or {}).get("value")
        if not framework_id or not stream_id:
            raise MesosProtocolError(
                "SUBSCRIBED without a framework id or a Mesos-Stream-Id header; is this a Mesos v1 master?"
            )
        if self.framework_id and framework_id != self.framework_id:
            raise FrameworkError(
                f"Re-subscribed as framework {self.framework_id} but the master answered {framework_id}."
            )
        self.framework_id = framework_id
        self.stream_id = stream_id
        self.heartbeat_interval = float(subscribed.get("heartbeat_interval_seconds") or DEFAULT_HEARTBEAT_SECONDS)
        self.subscriptions += 1
        self._subscribed.set()
        logger.info(
            "Subscribed framework %s to Mesos master %s (subscription #%d, heartbeat %gs)",
            framework_id, self.master_url, self.subscriptions, self.heartbeat_interval,
        )

    # -- calls -------------------------------------------------------------------------------

    async def call(self, kind: str, payload: Mapping[str, Any] | None = None) -> None:
        """Send one scheduler call (``kind`` is its type, ``payload`` its lower-case body field).

        Waits for a live subscription first. Retries when the subscription
        changed under the call (HTTP 400/403 with a stale stream id) or the
        connection failed. ACCEPT is only retried when it surely did not reach
        the master (connection refused): a second ACCEPT of a processed one
        would make the master drop the task it just launched, so an uncertain
        ACCEPT is left to reconciliation.

        Raises
        ------
        MesosCallError
            The master rejected the call.
        MesosConnectionError
            No subscription could be had to send it on.
        """
        body: dict[str, Any] = {"type": kind}
        if payload is not None:
            body[kind.lower()] = dict(payload)
        last_problem = ""
        for attempt in range(4):
            await self.wait_subscribed()
            assert self._http is not None and self.master_url is not None
            body["framework_id"] = {"value": self.framework_id}
            stream_id = self.stream_id or ""
            try:
                response, _ = await post_json(
                    self._http, self.master_url, SCHEDULER_PATH, body, headers={STREAM_ID_HEADER: stream_id}
                )
            except httpx.TransportError as exc:
                last_problem = describe_transport_error(self.master_url, exc)
                surely_not_sent = isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout))
                if kind == "ACCEPT" and not surely_not_sent:
                    raise MesosConnectionError(
                        f"ACCEPT for framework {self.framework_id} may or may not have reached the master "
                        f"({last_problem}); reconcile to find out."
                    ) from None
                await asyncio.sleep(self._backoff(attempt))
                continue
            if response.status_code in (200, 202):
                return
            if response.status_code == 401:
                raise auth_error(self.master_url, response, self.config, f"the {kind} call")
            last_problem = f"HTTP {response.status_code}: {response.text.strip()[:300]}"
            if response.status_code in (400, 403) and (self.stream_id != stream_id or not self.subscribed):
                continue  # re-subscribed meanwhile: send again on the new stream
            if response.status_code in (403, 503) or response.status_code >= 500:
                await asyncio.sleep(self._backoff(attempt))
                continue
            break
        raise MesosCallError(
            f"The Mesos master rejected {kind} for framework {self.framework_id}: {last_problem}",
            status_code=None,
        )

    async def accept(
        self,
        offer_ids: Iterable[str],
        operations: list[Mapping[str, Any]],
        *,
        refuse_seconds: float | None = None,
    ) -> None:
        """ACCEPT offers with operations (see :meth:`launch` for the common case)."""
        payload: dict[str, Any] = {"offer_ids": ids(offer_ids), "operations": list(operations)}
        if refuse_seconds is not None:
            payload["filters"] = {"refuse_seconds": float(refuse_seconds)}
        await self.call("ACCEPT", payload)

    async def launch(
        self, offer_id: str, task_infos: list[Mapping[str, Any]], *, refuse_seconds: float | None = None
    ) -> None:
        """ACCEPT one offer with a LAUNCH of ``task_infos``."""
        operation = {"type": "LAUNCH", "launch": {"task_infos": list(task_infos)}}
        await self.accept([offer_id], [operation], refuse_seconds=refuse_seconds)

    async def decline(self, offer_ids: Iterable[str], *, refuse_seconds: float | None = None) -> None:
        """DECLINE offers; ``refuse_seconds`` keeps the same resources away that long."""
        payload: dict[str, Any] = {"offer_ids": ids(offer_ids)}
        if refuse_seconds is not None:
            payload["filters"] = {"refuse_seconds": float(refuse_seconds)}
        await self.call("DECLINE", payload)

    async def kill(self, task_id: str, agent_id: str | None = None) -> None:
        """KILL a task."""
        payload: dict[str, Any] = {"task_id": {"value": task_id}}
        if agent_id:
            payload["agent_id"] = {"value": agent_id}
        await self.call("KILL", payload)

    async def acknowledge(self, agent_id: str, task_id: str, uuid: str) -> None:
        """ACKNOWLEDGE a status update (``uuid`` is the base64 string the update carried)."""
        await self.call(
            "ACKNOWLEDGE", {"agent_id": {"value": agent_id}, "task_id": {"value": task_id}, "uuid": uuid}
        )

    async def acknowledge_status(self, status: TaskStatus) -> bool:
        """ACKNOWLEDGE ``status`` if it needs it (has a uuid and an agent); return whether it did."""
        if not status.uuid or not status.agent_id:
            return False
        await self.acknowledge(status.agent_id, status.task_id, status.uuid)
        return True

    async def acknowledge_operation_status(self, status: Mapping[str, Any]) -> bool:
        """ACKNOWLEDGE_OPERATION_STATUS for an ``UPDATE_OPERATION_STATUS`` status that has a uuid."""
        uuid = status.get("uuid")
        if isinstance(uuid, Mapping):  # OperationStatus.uuid is a UUID message: {"value": base64}
            uuid = uuid.get("value")
        if not uuid:
            return False
        payload: dict[str, Any] = {"uuid": uuid}
        for key in ("agent_id", "resource_provider_id", "operation_id"):
            if status.get(key):
                payload[key] = status[key]
        await self.call("ACKNOWLEDGE_OPERATION_STATUS", payload)
        return True

    async def reconcile(self, tasks: Iterable[tuple[str, str | None]] = ()) -> None:
        """RECONCILE ``(task_id, agent_id or None)`` pairs; an empty list asks about every task."""
        entries = []
        for task_id, agent_id in tasks:
            entry: dict[str, Any] = {"task_id": {"value": task_id}}
            if agent_id:
                entry["agent_id"] = {"value": agent_id}
            entries.append(entry)
        await self.call("RECONCILE", {"tasks": entries})

    async def suppress(self, roles: Iterable[str] | None = None) -> None:
        """SUPPRESS offers (for ``roles``, default all of the framework's roles)."""
        await self.call("SUPPRESS", {"roles": list(roles)} if roles is not None else {})

    async def revive(self, roles: Iterable[str] | None = None) -> None:
        """REVIVE offers and clear refuse filters (for ``roles``, default all)."""
        await self.call("REVIVE", {"roles": list(roles)} if roles is not None else {})

    async def shutdown(self, executor_id: str, agent_id: str) -> None:
        """SHUTDOWN an executor."""
        await self.call(
            "SHUTDOWN", {"executor_id": {"value": executor_id}, "agent_id": {"value": agent_id}}
        )

    async def teardown(self) -> None:
        """TEARDOWN the framework: the master kills its tasks and forgets it. Ends the subscription."""
        self._tearing_down = True  # the master closes the stream after TEARDOWN: do not re-subscribe then
        try:
            await self.call("TEARDOWN")
        except BaseException:
            self._tearing_down = False
            raise
        self._stopping = True
        if self._loop_task is not None and self._loop_task is not asyncio.current_task():
            self._loop_task.cancel()
