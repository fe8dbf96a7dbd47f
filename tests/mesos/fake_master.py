"""A fake Mesos master that speaks the real v1 HTTP protocol on a real socket.

It is small but honest where the client's correctness depends on it:

* ``POST /api/v1/scheduler``: SUBSCRIBE answers a chunked RecordIO event stream
  with a ``Mesos-Stream-Id`` header; other calls answer 202, or 400 (missing or
  stale stream id), 403 (framework not subscribed), 401 (bad credentials).
* Heartbeats, offers from simulated agents (cpus/mem/disk, hostname), refuse
  filters, SUPPRESS/REVIVE, offer validation on ACCEPT.
* LAUNCH really runs the command as a subprocess in a sandbox directory
  (``stdout``/``stderr`` files, the task's environment).
* Status updates carry uuids and are delivered like an agent's status update
  manager does: one unacknowledged update per task at a time, retried, and
  re-sent when the framework re-subscribes. Only acknowledgements advance.
* KILL (TASK_KILLING then TASK_KILLED), RECONCILE (latest state, no uuid),
  TEARDOWN, failover re-subscription (ERROR to the old stream).
* Operator API ``POST /api/v1``: GET_MASTER, GET_FRAMEWORKS, GET_TASKS, GET_AGENTS.
* Agent ``GET /files/read`` for sandboxes (served by the same socket; the
  agents' ``pid`` points here).
* A redirect mode (a standby that answers 307 pointing at the leader).

Fault hooks for tests: :meth:`FakeMesosMaster.drop_streams`,
:meth:`~FakeMesosMaster.stall_streams` (no more events, not even heartbeats),
:meth:`~FakeMesosMaster.drop_streams_on` (drop right before delivering a given
state, so it stays unacknowledged), :meth:`~FakeMesosMaster.lose_task`,
:meth:`~FakeMesosMaster.make_agent_unreachable`,
:meth:`~FakeMesosMaster.reconnect_agent`, :meth:`~FakeMesosMaster.remove_agent`.
Every launch is recorded in :attr:`~FakeMesosMaster.launches`.

The server runs its own event loop in a background thread, like a separate
process would; hooks are thread-safe.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import signal
import ssl
import threading
import time
import urllib.parse
import uuid as uuidlib
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

TERMINAL = {
    "TASK_FINISHED", "TASK_FAILED", "TASK_KILLED", "TASK_ERROR", "TASK_LOST", "TASK_DROPPED",
    "TASK_GONE", "TASK_GONE_BY_OPERATOR",
}

_REASONS = {200: "OK", 202: "Accepted", 307: "Temporary Redirect", 400: "Bad Request", 401: "Unauthorized",
            403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}


def _id(value: str) -> dict[str, str]:
    return {"value": value}


def _val(obj: Any) -> str | None:
    return obj.get("value") if isinstance(obj, dict) else None


@dataclass
class AgentSpec:
    """A simulated agent."""

    hostname: str
    cpus: float = 4.0
    mem: float = 4096.0
    disk: float = 10000.0


@dataclass
class LaunchRecord:
    """One LAUNCH the master accepted (what tests count for exactly-once)."""

    task_id: str
    framework_id: str
    agent_id: str
    hostname: str
    sandbox: Path
    command: dict[str, Any]
    env: dict[str, str]
    container: dict[str, Any] | None
    resources: dict[str, float]
    at: float


@dataclass
class _Agent:
    agent_id: str
    spec: AgentSpec
    state: str = "active"  # active | unreachable | gone
    used: dict[str, float] = field(default_factory=lambda: {"cpus": 0.0, "mem": 0.0, "disk": 0.0})

    def available(self) -> dict[str, float]:
        total = {"cpus": self.spec.cpus, "mem": self.spec.mem, "disk": self.spec.disk}
        return {k: round(total[k] - self.used[k], 3) for k in total}


@dataclass
class _Stream:
    stream_id: str
    writer: asyncio.StreamWriter
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    silent: bool = False

    def send(self, event: dict[str, Any]) -> bool:
        if self.closed.is_set() or self.silent:
            return False
        if self.writer.transport is None or self.writer.transport.is_closing():
            self.closed.set()
            return False
        data = json.dumps(event).encode()
        record = str(len(data)).encode() + b"\n" + data
        try:
            self.writer.write(b"%x\r\n%s\r\n" % (len(record), record))
        except (ConnectionError, RuntimeError):
            self.closed.set()
            return False
        return True

    def abort(self) -> None:
        self.closed.set()
        transport = self.writer.transport
        if transport is not None:
            transport.abort()

    def finish(self) -> None:
        if not self.closed.is_set():
            try:
                self.writer.write(b"0\r\n\r\n")
            except (ConnectionError, RuntimeError):
                pass
        self.closed.set()
        self.writer.close()


@dataclass
class _Task:
    task_id: str
    framework_id: str
    agent_id: str
    info: dict[str, Any]
    resources: dict[str, float]
    sandbox: Path
    state: str = "TASK_STAGING"
    statuses: list[dict[str, Any]] = field(default_factory=list)
    pending: deque = field(default_factory=deque)  # unacknowledged updates, oldest first
    held: list[dict[str, Any]] = field(default_factory=list)  # generated while the agent is unreachable
    process: asyncio.subprocess.Process | None = None
    fault: str | None = None  # the exit of the process is not reported (lost, gone, teardown)
    killed: bool = False
    last_sent: float = 0.0


@dataclass
class _Framework:
    framework_id: str
    info: dict[str, Any]
    registered_time: float
    stream: _Stream | None = None
    completed: bool = False
    suppressed: bool = False
    refuse_until: dict[str, float] = field(default_factory=dict)
    offers: dict[str, str] = field(default_factory=dict)  # offer id -> agent id
    tasks: dict[str, _Task] = field(default_factory=dict)
    completed_tasks: list[_Task] = field(default_factory=list)

    @property
    def role(self) -> str:
        roles = self.info.get("roles") or [self.info.get("role", "*")]
        return roles[0]


class FakeMesosMaster:
    """See the module docstring.

    Parameters
    ----------
    sandbox_root : Path
        Where task sandboxes are created.
    agents : list of AgentSpec
        The simulated agents (default: two with 4 cpus, 4 GiB).
    heartbeat_interval : float
        Seconds between HEARTBEAT events (sent in SUBSCRIBED as well).
    offer_interval : float
        How often offers are (re)sent.
    principal, secret : str, optional
        Require HTTP basic auth with these credentials.
    redirect_to : str, optional
        Act as a standby master: answer every POST with 307 to this URL.
    ssl_context : ssl.SSLContext, optional
        Serve HTTPS.
    update_retry_interval : float
        Re-send an unacknowledged status update after this long.
    kill_grace_period : float
        Default seconds between SIGTERM and SIGKILL on KILL.
    """

    def __init__(
        self,
        sandbox_root: Path,
        *,
        agents: list[AgentSpec] | None = None,
        heartbeat_interval: float = 0.2,
        offer_interval: float = 0.05,
        principal: str | None = None,
        secret: str | None = None,
        redirect_to: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        update_retry_interval: float = 1.0,
        kill_grace_period: float = 1.0,
    ):
        self.sandbox_root = Path(sandbox_root)
        self.agent_specs = agents if agents is not None else [AgentSpec("agent-a.test"), AgentSpec("agent-b.test")]
        self.heartbeat_interval = heartbeat_interval
        self.offer_interval = offer_interval
        self.principal, self.secret = principal, secret
        self.redirect_to = redirect_to
        self.ssl_context = ssl_context
        self.update_retry_interval = update_retry_interval
        self.kill_grace_period = kill_grace_period
        self.master_id = str(uuidlib.uuid4())
        # records for assertions (read from the test thread under the lock)
        self._lock = threading.Lock()
        self.launches: list[LaunchRecord] = []
        self.calls: list[dict[str, Any]] = []  # every scheduler call: type, framework id, body
        self.subscriptions: list[dict[str, Any]] = []  # requested id, assigned id, stream id
        self.acks: list[dict[str, Any]] = []  # acknowledged updates: task id, state, uuid
        self.requests: list[dict[str, Any]] = []  # method, path, headers (lower-case)
        self.deliveries: list[dict[str, Any]] = []  # every UPDATE sent: task id, state, uuid (None = no uuid)
        # state owned by the loop thread
        self._agents: dict[str, _Agent] = {}
        self._frameworks: dict[str, _Framework] = {}
        self._counter = 0
        self._unavailable_until = 0.0
        self._drop_on: tuple[str, float] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.base_events.Server | None = None
        self._background: list[asyncio.Task[Any]] = []
        self.port: int = 0

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def url(self) -> str:
        scheme = "https" if self.ssl_context else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    def start(self) -> "FakeMesosMaster":
        ready = threading.Event()

        def main() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            loop.set_exception_handler(self._on_loop_error)
            loop.run_until_complete(self._start_server())
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._shutdown())
            loop.close()

        self._thread = threading.Thread(target=main, name="fake-mesos-master", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("fake master did not start")
        return self

    def stop(self) -> None:
        if self._loop is None:
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        assert self._thread is not None
        self._thread.join(10)
        self._loop = None

    def __enter__(self) -> "FakeMesosMaster":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @staticmethod
    def _on_loop_error(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        # clients hanging up (or refusing our test certificate) are part of the tests, not errors
        if isinstance(context.get("exception"), (ConnectionError, ssl.SSLError)):
            return
        loop.default_exception_handler(context)

    async def _start_server(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.ssl_context)
        self.port = self._server.sockets[0].getsockname()[1]
        for index, spec in enumerate(self.agent_specs):
            agent_id = f"{self.master_id}-S{index}"
            self._agents[agent_id] = _Agent(agent_id, spec)
        if self.redirect_to is None:
            self._background.append(asyncio.ensure_future(self._offer_loop()))
            self._background.append(asyncio.ensure_future(self._retry_loop()))

    async def _shutdown(self) -> None:
        for framework in self._frameworks.values():
            for task in list(framework.tasks.values()):
                self._kill_process(task, signal.SIGKILL)
            if framework.stream is not None:
                framework.stream.abort()
        for task in self._background:
            task.cancel()
        if self._server is not None:
            self._server.close()
        await asyncio.sleep(0)

    def _run(self, fn: Callable[[], Any], timeout: float = 10.0) -> Any:
        """Run ``fn`` on the master's loop and return its result (thread-safe hook plumbing)."""
        assert self._loop is not None

        async def wrapper() -> Any:
            result = fn()
            if asyncio.iscoroutine(result):
                result = await result
            return result

        return asyncio.run_coroutine_threadsafe(wrapper(), self._loop).result(timeout)

    def _next(self, prefix: str) -> str:
        self._counter += 1
        return f"{self.master_id}-{prefix}{self._counter:04d}"

    # -- fault hooks and views (called from tests) ------------------------------------------

    def drop_streams(self, *, refuse_for: float = 0.0) -> None:
        """Close every subscription connection; refuse SUBSCRIBE (503) for ``refuse_for`` seconds."""
        def do() -> None:
            self._unavailable_until = time.monotonic() + refuse_for
            for framework in self._frameworks.values():
                self._disconnect(framework, abort=True)
        self._run(do)

    def drop_streams_on(self, state: str, *, refuse_for: float = 0.2) -> None:
        """Drop every stream right before an update with ``state`` is first delivered (it stays unacknowledged)."""
        self._run(lambda: setattr(self, "_drop_on", (state, refuse_for)))

    def stall_streams(self) -> None:
        """From now on send nothing (no heartbeats either) on the current streams, but keep them open."""
        def do() -> None:
            for framework in self._frameworks.values():
                if framework.stream is not None:
                    framework.stream.silent = True
        self._run(do)

    def lose_task(self, task_id: str) -> None:
        """Kill the task's process without a trace and report TASK_LOST."""
        def do() -> None:
            task = self._find_task(task_id)
            task.fault = "lost"
            self._kill_process(task, signal.SIGKILL)
            self._status(task, "TASK_LOST", "Executor terminated", reason="REASON_EXECUTOR_TERMINATED",
                         source="SOURCE_AGENT")
        self._run(do)

    def make_agent_unreachable(self, hostname: str) -> None:
        """Partition an agent: its tasks go TASK_UNREACHABLE but keep running; their updates are held."""
        def do() -> None:
            agent = self._agent_by_host(hostname)
            agent.state = "unreachable"
            for framework in self._frameworks.values():
                self._rescind_agent_offers(framework, agent.agent_id)
                for task in list(framework.tasks.values()):
                    if task.agent_id == agent.agent_id and task.state not in TERMINAL:
                        self._master_status(task, "TASK_UNREACHABLE", "Agent is unreachable",
                                            reason="REASON_AGENT_REMOVED")
        self._run(do)

    def reconnect_agent(self, hostname: str) -> None:
        """End the partition: held updates flow again; reconciliation reports the agent's real state."""
        def do() -> None:
            agent = self._agent_by_host(hostname)
            agent.state = "active"
            for framework in self._frameworks.values():
                for task in list(framework.tasks.values()):
                    if task.agent_id != agent.agent_id:
                        continue
                    latest_known = next((s["state"] for s in reversed(task.statuses)
                                         if s["source"] != "SOURCE_MASTER"), task.state)
                    task.state = latest_known
                    held, task.held = task.held, []
                    for status in held:
                        self._queue(task, status)
        self._run(do)

    def remove_agent(self, hostname: str, *, gone_after: float = 0.3) -> None:
        """The agent dies: its tasks go TASK_UNREACHABLE, then (after ``gone_after``) TASK_GONE."""
        self.make_agent_unreachable(hostname)

        async def later() -> None:
            await asyncio.sleep(gone_after)
            agent = self._agent_by_host(hostname)
            agent.state = "gone"
            for framework in self._frameworks.values():
                for task in list(framework.tasks.values()):
                    if task.agent_id == agent.agent_id and task.state not in TERMINAL:
                        task.fault = "gone"
                        task.held = []
                        self._kill_process(task, signal.SIGKILL)
                        self._master_status(task, "TASK_GONE", "Agent was removed", reason="REASON_AGENT_REMOVED")
                if framework.stream is not None:
                    framework.stream.send({"type": "FAILURE", "failure": {"agent_id": _id(agent.agent_id)}})

        self._run(lambda: self._spawn(later()))

    def forget_task(self, task_id: str) -> None:
        """The master forgets the task (its partitioned agent was garbage-collected); the process keeps running."""
        def do() -> None:
            task = self._find_task(task_id)
            del self._frameworks[task.framework_id].tasks[task_id]
        self._run(do)

    def task_state(self, task_id: str) -> str | None:
        """The master's current view of the task's state (None if unknown)."""
        def do() -> str | None:
            try:
                return self._find_task(task_id).state
            except KeyError:
                return None
        return self._run(do)

    def framework_ids(self, *, completed: bool | None = None) -> list[str]:
        def do() -> list[str]:
            return [f.framework_id for f in self._frameworks.values() if completed is None or f.completed == completed]
        return self._run(do)

    def resubscribed(self, framework_id: str) -> bool:
        """Whether a client has subscribed again to ``framework_id`` (a waiter, a trigger or a retry re-attached)."""
        with self._lock:
            return any(s["requested"] == framework_id for s in self.subscriptions)

    def pending_updates(self) -> int:
        """Unacknowledged updates over all registered frameworks."""
        return self._run(lambda: sum(len(t.pending) for f in self._frameworks.values() if not f.completed
                                     for t in f.tasks.values()))

    def launch_count(self, task_id: str | None = None) -> int:
        with self._lock:
            return sum(1 for r in self.launches if task_id is None or r.task_id == task_id)

    def calls_of(self, kind: str) -> list[dict[str, Any]]:
        with self._lock:
            return [c for c in self.calls if c["type"] == kind]

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
        """Poll ``predicate`` (from the test thread) until true; fail after ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.02)
        raise AssertionError(f"timed out after {timeout}s waiting for {what}")

    # -- HTTP --------------------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                method, target, _version = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        name, value = line.split(":", 1)
                        headers[name.strip().lower()] = value.strip()
                body = b""
                if "content-length" in headers:
                    body = await reader.readexactly(int(headers["content-length"]))
                with self._lock:
                    self.requests.append({"method": method, "path": target, "headers": dict(headers)})
                keep_open = await self._dispatch(method, target, headers, body, reader, writer)
                if not keep_open or headers.get("connection", "").lower() == "close":
                    break
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            try:
                writer.close()
            except RuntimeError:
                pass

    def _respond(self, writer: asyncio.StreamWriter, code: int, body: Any = b"", *,
                 headers: dict[str, str] | None = None) -> None:
        if isinstance(body, (dict, list)):
            payload = json.dumps(body).encode()
            content_type = "application/json"
        else:
            payload = body.encode() if isinstance(body, str) else body
            content_type = "text/plain; charset=utf-8"
        lines = [f"HTTP/1.1 {code} {_REASONS.get(code, 'Status')}", f"Content-Type: {content_type}",
                 f"Content-Length: {len(payload)}"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + payload)

    def _authorized(self, headers: dict[str, str]) -> bool:
        if self.principal is None:
            return True
        expected = "Basic " + base64.b64encode(f"{self.principal}:{self.secret}".encode()).decode()
        return headers.get("authorization") == expected

    async def _dispatch(self, method: str, target: str, headers: dict[str, str], body: bytes,
                        reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        parsed = urllib.parse.urlsplit(target)
        if self.redirect_to is not None:
            leader = urllib.parse.urlsplit(self.redirect_to)
            self._respond(writer, 307, headers={"Location": f"//{leader.netloc}{parsed.path}"})
            return True
        if not self._authorized(headers):
            self._respond(writer, 401, "Unauthorized", headers={"WWW-Authenticate": 'Basic realm="mesos"'})
            return True
        if method == "GET" and parsed.path == "/files/read":
            self._files_read(writer, urllib.parse.parse_qs(parsed.query))
            return True
        if method != "POST":
            self._respond(writer, 405, "Expecting POST")
            return True
        try:
            call = json.loads(body or b"{}")
        except ValueError:
            self._respond(writer, 400, "Failed to parse body")
            return True
        if parsed.path == "/api/v1":
            self._operator(writer, call)
            return True
        if parsed.path == "/api/v1/scheduler":
            if call.get("type") == "SUBSCRIBE":
                await self._subscribe(call, reader, writer)
                return False
            self._scheduler_call(writer, call, headers)
            return True
        self._respond(writer, 404, "Not found")
        return True

    # -- scheduler API -----------------------------------------------------------------------

    async def _subscribe(self, call: dict[str, Any], reader: asyncio.StreamReader,
                         writer: asyncio.StreamWriter) -> None:
        if time.monotonic() < self._unavailable_until:
            self._respond(writer, 503, "Master is recovering")
            return
        info = dict((call.get("subscribe") or {}).get("framework_info") or {})
        requested = _val(info.get("id")) or _val(call.get("framework_id"))
        stream = _Stream(str(uuidlib.uuid4()), writer)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
                     b"Mesos-Stream-Id: " + stream.stream_id.encode() + b"\r\n\r\n")
        if requested:
            framework = self._frameworks.get(requested)
            if framework is None or framework.completed:
                stream.send({"type": "ERROR", "error": {"message": f"Framework {requested} has been removed"}})
                stream.finish()
                return
            if framework.stream is not None:
                framework.stream.send({"type": "ERROR", "error": {"message": "Framework failed over"}})
                self._disconnect(framework, abort=False)
            info["id"] = _id(requested)
            framework.info = info
        else:
            framework_id = self._next("")
            info["id"] = _id(framework_id)
            framework = _Framework(framework_id, info, registered_time=time.time())
            self._frameworks[framework_id] = framework
        framework.stream = stream
        # like Mesos, each SUBSCRIBE sets the framework's suppression anew (Call.Subscribe.suppressed_roles)
        framework.suppressed = bool((call.get("subscribe") or {}).get("suppressed_roles"))
        with self._lock:
            self.subscriptions.append({"requested": requested, "framework_id": framework.framework_id,
                                       "stream_id": stream.stream_id})
        stream.send({"type": "SUBSCRIBED", "subscribed": {
            "framework_id": _id(framework.framework_id), "heartbeat_interval_seconds": self.heartbeat_interval,
            "master_info": self._master_info()}})
        for task in self._runs_with_pending(framework):  # re-send what is still unacknowledged
            self._deliver_head(task, force=True)
        heartbeat = self._spawn(self._heartbeats(stream))
        closed_by_peer = self._spawn(reader.read())
        waiter = self._spawn(stream.closed.wait())
        await asyncio.wait({closed_by_peer, waiter}, return_when=asyncio.FIRST_COMPLETED)
        heartbeat.cancel()
        closed_by_peer.cancel()
        waiter.cancel()
        if framework.stream is stream:
            self._disconnect(framework, abort=False)

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._background.append(task)
        task.add_done_callback(lambda t: self._background.remove(t) if t in self._background else None)
        return task

    async def _heartbeats(self, stream: _Stream) -> None:
        while not stream.closed.is_set():
            await asyncio.sleep(self.heartbeat_interval)
            stream.send({"type": "HEARTBEAT"})

    def _disconnect(self, framework: _Framework, *, abort: bool) -> None:
        stream, framework.stream = framework.stream, None
        framework.offers.clear()  # outstanding offers are recovered
        if stream is not None:
            stream.abort() if abort else stream.finish()

    def _scheduler_call(self, writer: asyncio.StreamWriter, call: dict[str, Any], headers: dict[str, str]) -> None:
        kind = call.get("type", "")
        framework = self._frameworks.get(_val(call.get("framework_id")) or "")
        with self._lock:
            self.calls.append({"type": kind, "framework_id": framework.framework_id if framework else None,
                               "stream_id": headers.get("mesos-stream-id"), "body": call})
        stream_id = headers.get("mesos-stream-id")
        if not stream_id:
            self._respond(writer, 400, "All non-subscribe calls should include the 'Mesos-Stream-Id' header")
            return
        if framework is None or framework.completed or framework.stream is None:
            self._respond(writer, 403, "Framework is not subscribed")
            return
        if stream_id != framework.stream.stream_id:
            self._respond(writer, 400, f"The stream ID '{stream_id}' included in this request didn't match "
                                       f"the stream ID currently associated with framework ID")
            return
        handler = getattr(self, f"_call_{kind.lower()}", None)
        if handler is None:
            self._respond(writer, 400, f"Unsupported call {kind}")
            return
        handler(framework, call.get(kind.lower()) or {})
        self._respond(writer, 202)

    def _call_teardown(self, framework: _Framework, _payload: dict[str, Any]) -> None:
        for task in list(framework.tasks.values()):
            task.fault = "teardown"
            self._kill_process(task, signal.SIGKILL)
            task.state = "TASK_KILLED" if task.state not in TERMINAL else task.state
            self._complete(framework, task)
        framework.completed = True
        self._disconnect(framework, abort=False)

    def _call_decline(self, framework: _Framework, payload: dict[str, Any]) -> None:
        refuse = float((payload.get("filters") or {}).get("refuse_seconds", 5.0))
        for offer in payload.get("offer_ids", []):
            agent_id = framework.offers.pop(offer["value"], None)
            if agent_id:
                framework.refuse_until[agent_id] = time.monotonic() + refuse

    def _call_suppress(self, framework: _Framework, _payload: dict[str, Any]) -> None:
        framework.suppressed = True

    def _call_revive(self, framework: _Framework, _payload: dict[str, Any]) -> None:
        framework.suppressed = False
        framework.refuse_until.clear()

    def _call_acknowledge(self, framework: _Framework, payload: dict[str, Any]) -> None:
        # Mesos routes an acknowledgement to the agent it names, so it reaches the run it was meant for even
        # when the task id was relaunched meanwhile (the framework learned of the old run's end from a
        # reconciliation, relaunched, and only then acknowledged the old run's update).
        task_id, agent_id = _val(payload.get("task_id")) or "", _val(payload.get("agent_id"))
        runs = [framework.tasks.get(task_id), *reversed(framework.completed_tasks)]
        task = next((t for t in runs if t is not None and t.task_id == task_id and t.pending
                     and t.pending[0]["uuid"] == payload.get("uuid")
                     and (agent_id is None or t.agent_id == agent_id)), None)
        if task is None:
            return  # duplicate or stale acknowledgement: ignored, as Mesos does
        acked = task.pending.popleft()
        with self._lock:
            self.acks.append({"task_id": task.task_id, "state": acked["state"], "uuid": acked["uuid"],
                              "framework_id": framework.framework_id})
        if task.pending:
            self._deliver_head(task, force=True)
        elif task.state in TERMINAL:
            self._complete(framework, task)

    def _call_reconcile(self, framework: _Framework, payload: dict[str, Any]) -> None:
        wanted = payload.get("tasks") or []
        if not wanted:
            targets = [(t.task_id, t) for t in framework.tasks.values()]
        else:
            targets = [(_val(w.get("task_id")) or "", framework.tasks.get(_val(w.get("task_id")) or ""))
                       for w in wanted]
        for task_id, task in targets:
            if task is not None:
                status = self._make_status(task, task.state, self._latest_message(task),
                                           reason="REASON_RECONCILIATION", source="SOURCE_MASTER", with_uuid=False)
            else:
                status = {"task_id": _id(task_id), "state": "TASK_UNKNOWN", "reason": "REASON_RECONCILIATION",
                          "source": "SOURCE_MASTER", "message": "Reconciliation: Task is unknown",
                          "timestamp": time.time()}
            self._send_update(framework, status, task)

    def _call_kill(self, framework: _Framework, payload: dict[str, Any]) -> None:
        task_id = _val(payload.get("task_id")) or ""
        task = framework.tasks.get(task_id)
        if task is None or task.state in TERMINAL:
            self._send_update(framework, {"task_id": _id(task_id), "state": "TASK_LOST", "source": "SOURCE_MASTER",
                                          "reason": "REASON_RECONCILIATION", "message": "Attempted to kill an "
                                          "unknown task", "timestamp": time.time()})
            return
        grace = self.kill_grace_period
        nanos = ((task.info.get("kill_policy") or {}).get("grace_period") or {}).get("nanoseconds")
        if nanos is not None:
            grace = int(nanos) / 1e9
        task.killed = True
        self._status(task, "TASK_KILLING", "Killing the task", source="SOURCE_EXECUTOR")
        self._kill_process(task, signal.SIGTERM)  # if not started yet, the runner kills it on start

        async def escalate() -> None:
            await asyncio.sleep(grace)
            self._kill_process(task, signal.SIGKILL)
        self._spawn(escalate())

    def _call_accept(self, framework: _Framework, payload: dict[str, Any]) -> None:
        offer_ids = [o["value"] for o in payload.get("offer_ids", [])]
        agents = {framework.offers.pop(o, None) for o in offer_ids}
        refuse = float((payload.get("filters") or {}).get("refuse_seconds", 5.0))
        # every offer must be outstanding, and all of them on one agent
        agent_id = next(iter(agents)) if len(agents) == 1 and None not in agents else None
        for operation in payload.get("operations", []):
            if operation.get("type") != "LAUNCH":
                continue
            for info in (operation.get("launch") or {}).get("task_infos", []):
                self._launch(framework, info, agent_id)
        for agent_id in agents:
            if agent_id:
                framework.refuse_until[agent_id] = time.monotonic() + refuse

    # -- tasks -------------------------------------------------------------------------------

    def _launch(self, framework: _Framework, info: dict[str, Any], agent_id: str | None) -> None:
        task_id = _val(info.get("task_id")) or ""
        wanted: dict[str, float] = {}
        for resource in info.get("resources", []):
            wanted[resource["name"]] = wanted.get(resource["name"], 0.0) + float(resource["scalar"]["value"])
        agent = self._agents.get(agent_id or "")
        sandbox = self.sandbox_root / framework.framework_id / f"{task_id}-{self._next('run')[-4:]}"
        task = _Task(task_id, framework.framework_id, agent_id or _val(info.get("agent_id")) or "", info,
                     wanted, sandbox)
        if agent is None or agent.state != "active":
            self._master_status(task, "TASK_DROPPED", "Task launched with invalid offers",
                                reason="REASON_INVALID_OFFERS", framework=framework)
            return
        if task_id in framework.tasks and framework.tasks[task_id].state not in TERMINAL:
            self._master_status(task, "TASK_ERROR", "Task has duplicate ID", reason="REASON_TASK_INVALID",
                                framework=framework)
            return
        available = agent.available()
        if any(amount > available.get(name, 0.0) + 1e-6 for name, amount in wanted.items()):
            self._master_status(task, "TASK_ERROR", "Task uses more resources than available",
                                reason="REASON_TASK_INVALID", framework=framework)
            return
        if task_id in framework.tasks:
            framework.completed_tasks.append(framework.tasks.pop(task_id))
        framework.tasks[task_id] = task
        for name, amount in wanted.items():
            agent.used[name] = agent.used.get(name, 0.0) + amount
        sandbox.mkdir(parents=True, exist_ok=True)
        command = info.get("command") or {}
        env = {v["name"]: v.get("value", "") for v in (command.get("environment") or {}).get("variables", [])}
        with self._lock:
            self.launches.append(LaunchRecord(task_id, framework.framework_id, agent.agent_id, agent.spec.hostname,
                                              sandbox, command, env, info.get("container"), wanted, time.time()))
        docker = (info.get("container") or {}).get("type") == "DOCKER"
        self._spawn(self._run_process(task, command, env, docker=docker))

    async def _run_process(self, task: _Task, command: dict[str, Any], env: dict[str, str], *,
                           docker: bool = False) -> None:
        # no Docker here: an image task runs on the host, with the argv `docker run IMAGE ...` would give it
        if command.get("shell", True):
            argv = ["/bin/sh", "-c", command.get("value", "")]
            executable = "/bin/sh"
        elif docker:
            argv = [command.get("value", ""), *(command.get("arguments") or [])]
            executable = shutil.which(argv[0]) or argv[0]
        else:
            argv = list(command.get("arguments") or [command.get("value", "")])
            executable = shutil.which(command.get("value", "")) or command.get("value", "")
        full_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(task.sandbox),
                    "MESOS_SANDBOX": str(task.sandbox), "MESOS_TASK_ID": task.task_id,
                    "MESOS_FRAMEWORK_ID": task.framework_id, "MESOS_AGENT_ID": task.agent_id, **env}
        self._status(task, "TASK_STARTING", "", source="SOURCE_EXECUTOR")
        with open(task.sandbox / "stdout", "wb") as out, open(task.sandbox / "stderr", "wb") as err:
            try:
                task.process = await asyncio.create_subprocess_exec(
                    executable, *argv[1:], cwd=task.sandbox, env=full_env, stdout=out, stderr=err,
                    start_new_session=True)
            except OSError as exc:
                err.write(f"Failed to execute {argv[0]!r}: {exc}\n".encode())
                self._status(task, "TASK_FAILED", f"Failed to launch the command: {exc}",
                             reason="REASON_COMMAND_EXECUTOR_FAILED", source="SOURCE_EXECUTOR")
                return
            if task.killed:  # KILL arrived while starting
                self._kill_process(task, signal.SIGTERM)
            else:
                self._status(task, "TASK_RUNNING", "", source="SOURCE_EXECUTOR")
            code = await task.process.wait()
        if task.fault is not None:
            return  # lost, gone or torn down: the executor's view never reaches the master
        if task.killed:
            self._status(task, "TASK_KILLED", "Command terminated with signal "
                         f"{signal.Signals(-code).name if code < 0 else code}", source="SOURCE_EXECUTOR")
        elif code == 0:
            self._status(task, "TASK_FINISHED", "Command exited with status 0", source="SOURCE_EXECUTOR")
        else:
            self._status(task, "TASK_FAILED", f"Command exited with status {code}",
                         reason="REASON_COMMAND_EXECUTOR_FAILED", source="SOURCE_EXECUTOR")

    def _kill_process(self, task: _Task, sig: signal.Signals) -> None:
        if task.process is not None and task.process.returncode is None:
            try:
                os.killpg(task.process.pid, sig)
            except ProcessLookupError:
                pass

    def _find_task(self, task_id: str) -> _Task:
        for framework in self._frameworks.values():
            if task_id in framework.tasks and not framework.completed:
                return framework.tasks[task_id]
        raise KeyError(task_id)

    def _agent_by_host(self, hostname: str) -> _Agent:
        return next(a for a in self._agents.values() if a.spec.hostname == hostname)

    def _latest_message(self, task: _Task) -> str:
        return task.statuses[-1].get("message", "") if task.statuses else ""

    def _make_status(self, task: _Task, state: str, message: str, *, reason: str | None = None,
                     source: str, with_uuid: bool = True) -> dict[str, Any]:
        status: dict[str, Any] = {
            "task_id": _id(task.task_id), "state": state, "source": source, "agent_id": _id(task.agent_id),
            "executor_id": _id(task.task_id), "timestamp": time.time(), "message": message,
        }
        if reason:
            status["reason"] = reason
        if with_uuid:
            status["uuid"] = base64.b64encode(uuidlib.uuid4().bytes).decode()
        return status

    def _status(self, task: _Task, state: str, message: str, *, reason: str | None = None,
                source: str = "SOURCE_EXECUTOR") -> None:
        """A status generated on the agent: held while the agent is unreachable."""
        status = self._make_status(task, state, message, reason=reason, source=source)
        task.statuses.append(status)
        agent = self._agents.get(task.agent_id)
        if agent is not None and agent.state == "unreachable":
            task.held.append(status)
            return
        task.state = state
        self._queue(task, status)

    def _master_status(self, task: _Task, state: str, message: str, *, reason: str,
                       framework: _Framework | None = None) -> None:
        """A status generated by the master itself (unreachable, gone, invalid launch)."""
        status = self._make_status(task, state, message, reason=reason, source="SOURCE_MASTER")
        task.statuses.append(status)
        task.state = state
        if framework is not None and task.task_id not in framework.tasks:
            framework.completed_tasks.append(task)  # never became active: report once, no ack needed
            self._send_update(framework, {k: v for k, v in status.items() if k != "uuid"}, task)
            return
        self._queue(task, status)

    def _queue(self, task: _Task, status: dict[str, Any]) -> None:
        if self._drop_on is not None and status["state"] == self._drop_on[0]:
            _state, refuse_for = self._drop_on
            self._drop_on = None
            self._unavailable_until = time.monotonic() + refuse_for
            for framework in self._frameworks.values():
                self._disconnect(framework, abort=True)
        task.pending.append(status)
        if len(task.pending) == 1:
            self._deliver_head(task, force=True)
        if status["state"] in TERMINAL:
            agent = self._agents.get(task.agent_id)
            if agent is not None:
                for name, amount in task.resources.items():
                    agent.used[name] = max(0.0, agent.used.get(name, 0.0) - amount)
                task.resources = {}

    def _deliver_head(self, task: _Task, *, force: bool = False) -> None:
        framework = self._frameworks.get(task.framework_id)
        if framework is None or not task.pending:
            return
        if not force and time.monotonic() - task.last_sent < self.update_retry_interval:
            return
        task.last_sent = time.monotonic()
        self._send_update(framework, task.pending[0], task)

    def _send_update(self, framework: _Framework, status: dict[str, Any], task: _Task | None = None) -> None:
        if framework.stream is None:
            return
        if framework.stream.send({"type": "UPDATE", "update": {"status": status}}):
            with self._lock:  # "run": which launch of the task id the update is about (its sandbox)
                self.deliveries.append({"task_id": _val(status["task_id"]), "state": status["state"],
                                        "uuid": status.get("uuid"), "framework_id": framework.framework_id,
                                        "run": str(task.sandbox) if task is not None else None})

    @staticmethod
    def _runs_with_pending(framework: _Framework) -> list[_Task]:
        """Runs with unacknowledged updates: the active ones and those a relaunch of their task id replaced."""
        return [t for t in [*framework.tasks.values(), *framework.completed_tasks] if t.pending]

    def _complete(self, framework: _Framework, task: _Task) -> None:
        if framework.tasks.get(task.task_id) is task:
            del framework.tasks[task.task_id]
        if not any(t is task for t in framework.completed_tasks):  # a replaced run is there already
            framework.completed_tasks.append(task)
        task.pending.clear()
        agent = self._agents.get(task.agent_id)
        if agent is not None:
            for name, amount in task.resources.items():
                agent.used[name] = max(0.0, agent.used.get(name, 0.0) - amount)
            task.resources = {}

    async def _retry_loop(self) -> None:
        while True:
            await asyncio.sleep(self.update_retry_interval / 2)
            for framework in self._frameworks.values():
                if framework.stream is None or framework.completed:
                    continue
                for task in self._runs_with_pending(framework):
                    self._deliver_head(task)

    # -- offers ------------------------------------------------------------------------------

    async def _offer_loop(self) -> None:
        while True:
            await asyncio.sleep(self.offer_interval)
            now = time.monotonic()
            for framework in self._frameworks.values():
                if framework.stream is None or framework.completed or framework.suppressed:
                    continue
                offered_agents = set(framework.offers.values())
                offers = []
                for agent in self._agents.values():
                    if agent.state != "active" or agent.agent_id in offered_agents:
                        continue
                    if framework.refuse_until.get(agent.agent_id, 0.0) > now:
                        continue
                    available = agent.available()
                    if all(v <= 0 for v in available.values()):
                        continue
                    offer_id = self._next("O")
                    framework.offers[offer_id] = agent.agent_id
                    offers.append({
                        "id": _id(offer_id), "framework_id": _id(framework.framework_id),
                        "agent_id": _id(agent.agent_id), "hostname": agent.spec.hostname,
                        "allocation_info": {"role": framework.role},
                        "resources": [
                            {"name": name, "type": "SCALAR", "scalar": {"value": value}, "role": "*",
                             "allocation_info": {"role": framework.role}}
                            for name, value in available.items() if value > 0
                        ],
                    })
                if offers:
                    framework.stream.send({"type": "OFFERS", "offers": {"offers": offers}})

    def _rescind_agent_offers(self, framework: _Framework, agent_id: str) -> None:
        for offer_id, offered_on in list(framework.offers.items()):
            if offered_on == agent_id:
                del framework.offers[offer_id]
                if framework.stream is not None:
                    framework.stream.send({"type": "RESCIND", "rescind": {"offer_id": _id(offer_id)}})

    # -- operator API and files --------------------------------------------------------------

    def _master_info(self) -> dict[str, Any]:
        return {"id": self.master_id, "hostname": "127.0.0.1", "port": self.port, "pid": f"master@127.0.0.1:{self.port}",
                "address": {"hostname": "127.0.0.1", "ip": "127.0.0.1", "port": self.port}, "version": "1.11.0"}

    def _operator(self, writer: asyncio.StreamWriter, call: dict[str, Any]) -> None:
        kind = call.get("type")
        if kind == "GET_MASTER":
            answer: dict[str, Any] = {"master_info": self._master_info()}
        elif kind == "GET_FRAMEWORKS":
            answer = {"frameworks": [], "completed_frameworks": []}
            for framework in self._frameworks.values():
                entry = {"framework_info": framework.info, "active": framework.stream is not None,
                         "connected": framework.stream is not None, "recovered": False,
                         "registered_time": {"nanoseconds": int(framework.registered_time * 1e9)}}
                answer["completed_frameworks" if framework.completed else "frameworks"].append(entry)
        elif kind == "GET_TASKS":
            answer = {"tasks": [], "unreachable_tasks": [], "completed_tasks": []}
            for framework in self._frameworks.values():
                for task in framework.tasks.values():
                    listed = "unreachable_tasks" if task.state == "TASK_UNREACHABLE" else "tasks"
                    answer[listed].append(self._task_json(task))
                for task in framework.completed_tasks:
                    answer["completed_tasks"].append(self._task_json(task))
        elif kind == "GET_AGENTS":
            answer = {"agents": [
                {"agent_info": {"id": _id(a.agent_id), "hostname": a.spec.hostname, "port": self.port},
                 "pid": f"slave(1)@127.0.0.1:{self.port}", "active": a.state == "active"}
                for a in self._agents.values() if a.state != "gone"]}
        else:
            self._respond(writer, 400, f"Unsupported operator call {kind}")
            return
        self._respond(writer, 200, {"type": kind, kind.lower(): answer})

    def _task_json(self, task: _Task) -> dict[str, Any]:
        return {"task_id": _id(task.task_id), "framework_id": _id(task.framework_id),
                "agent_id": _id(task.agent_id), "executor_id": _id(task.task_id),
                "name": task.info.get("name", ""), "state": task.state,
                "statuses": [{k: v for k, v in s.items() if k != "uuid"} for s in task.statuses],
                "resources": task.info.get("resources", [])}

    def _files_read(self, writer: asyncio.StreamWriter, query: dict[str, list[str]]) -> None:
        path = (query.get("path") or [""])[0]
        parts = path.strip("/").split("/")
        # frameworks/<fid>/executors/<eid>/runs/latest/<file>
        if len(parts) < 7 or parts[0] != "frameworks" or parts[2] != "executors" or parts[4:6] != ["runs", "latest"]:
            self._respond(writer, 404, "No such file")
            return
        framework = self._frameworks.get(parts[1])
        runs = [t for t in ([*framework.completed_tasks, *framework.tasks.values()] if framework else [])
                if t.task_id == parts[3]]
        if not runs:
            self._respond(writer, 404, "No such file")
            return
        file = runs[-1].sandbox.joinpath(*parts[6:])
        if not file.is_file():
            self._respond(writer, 404, "No such file")
            return
        data = file.read_bytes()
        offset = int((query.get("offset") or ["0"])[0])
        if offset < 0:
            self._respond(writer, 200, {"data": "", "offset": len(data)})
            return
        length = int((query.get("length") or [str(len(data))])[0])
        chunk = data[offset: offset + max(0, length)]
        self._respond(writer, 200, {"data": chunk.decode("utf-8", "replace"), "offset": offset})
