"""SchedulerClient against the fake master: subscription, stream id, calls, heartbeats, reconnection, auth."""

from __future__ import annotations

import asyncio
import base64
import logging

import pytest

from sightlines.mesos import (
    FrameworkError,
    MesosAuthError,
    MesosConnectionError,
    SchedulerClient,
    TaskSpec,
    run_task,
)
from sightlines.mesos._messages import framework_info

from .conftest import fast_config, run
from .fake_master import FakeMesosMaster

pytestmark = pytest.mark.timeout(60)


async def next_of(client: SchedulerClient, kind: str, timeout: float = 5.0) -> dict:
    """The next event of type ``kind`` (others are skipped)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while (left := deadline - loop.time()) > 0:
        event = await client.next_event(timeout=left)
        if event is not None and event["type"] == kind:
            return event
    raise AssertionError(f"no {kind} event within {timeout}s")


def new_client(config, name: str = "sightlines:test", framework_id: str | None = None) -> SchedulerClient:
    return SchedulerClient(config, framework_info(config, name, framework_id=framework_id))


class TestSubscription:
    def test_subscribe_keeps_the_stream_id_and_sends_it_on_every_call(self, master, config):
        async def scenario():
            async with new_client(config) as client:
                subscribed = await next_of(client, "SUBSCRIBED")
                offers = (await next_of(client, "OFFERS"))["offers"]["offers"]
                await client.decline([o["id"]["value"] for o in offers], refuse_seconds=42)
                await client.suppress()
                await client.revive(["batch"])
                await client.reconcile([("t1", None)])
                update = await next_of(client, "UPDATE")
                await next_of(client, "HEARTBEAT")
                return client.framework_id, client.stream_id, client.heartbeat_interval, subscribed, update

        framework_id, stream_id, heartbeat, subscribed, update = run(scenario())
        assert subscribed["subscribed"]["framework_id"]["value"] == framework_id
        assert heartbeat == master.heartbeat_interval
        [subscription] = master.subscriptions
        assert subscription["stream_id"] == stream_id and subscription["requested"] is None
        assert [c["type"] for c in master.calls] == ["DECLINE", "SUPPRESS", "REVIVE", "RECONCILE"]
        assert all(c["stream_id"] == stream_id and c["framework_id"] == framework_id for c in master.calls)
        assert master.calls[0]["body"]["decline"]["filters"] == {"refuse_seconds": 42.0}
        assert master.calls[2]["body"]["revive"] == {"roles": ["batch"]}
        # RECONCILE of an unknown task answers TASK_UNKNOWN without a uuid (nothing to acknowledge)
        assert update["update"]["status"]["state"] == "TASK_UNKNOWN" and "uuid" not in update["update"]["status"]
        subscribe = next(r for r in master.requests if r["path"] == "/api/v1/scheduler")
        assert "mesos-stream-id" not in subscribe["headers"]  # SUBSCRIBE never carries one

    def test_framework_info_and_failover_subscription(self, master, config):
        async def scenario():
            async with new_client(config) as first:
                await first.wait_subscribed(5)
                framework_id = first.framework_id
            async with new_client(config, framework_id=framework_id) as again:
                await again.wait_subscribed(5)
                return framework_id, again.framework_id

        before, after = run(scenario())
        assert before == after
        assert [s["requested"] for s in master.subscriptions] == [None, before]

    def test_missed_heartbeats_drop_and_resubscribe_with_the_same_id(self, master, config, caplog):
        caplog.set_level(logging.WARNING, logger="sightlines.mesos.client")

        async def scenario():
            async with new_client(config) as client:
                await next_of(client, "SUBSCRIBED")
                await asyncio.to_thread(master.stall_streams)
                started = asyncio.get_running_loop().time()
                await next_of(client, "SUBSCRIBED", timeout=5)
                return client, asyncio.get_running_loop().time() - started

        client, took = run(scenario())
        # 8 x 0.2 s heartbeat interval of silence, then a short backoff
        assert 1.5 < took < 4.0
        assert client.subscriptions == 2
        assert master.subscriptions[1]["requested"] == master.subscriptions[0]["framework_id"]
        assert "missed heartbeats" in caplog.text

    def test_dropped_stream_resubscribes_after_the_master_comes_back(self, master, config):
        async def scenario():
            async with new_client(config) as client:
                await next_of(client, "SUBSCRIBED")
                await asyncio.to_thread(master.drop_streams, refuse_for=0.4)
                await next_of(client, "SUBSCRIBED", timeout=5)
                return client.stream_id

        stream_id = run(scenario())
        assert len(master.subscriptions) == 2 and master.subscriptions[1]["stream_id"] == stream_id
        assert any(r["path"] == "/api/v1/scheduler" for r in master.requests[2:])

    def test_gives_up_after_reconnect_timeout(self, master):
        config = fast_config(master.url, reconnect_timeout=0.5)

        async def scenario():
            async with new_client(config) as client:
                await next_of(client, "SUBSCRIBED")
                await asyncio.to_thread(master.drop_streams, refuse_for=30)
                while True:
                    await client.next_event(timeout=5)

        with pytest.raises(MesosConnectionError, match=r"could not \(re-\)subscribe within 0.5s.*retrying re-attaches"):
            run(scenario())

    def test_a_long_lived_subscription_is_not_given_up_on_a_short_outage(self, master):
        config = fast_config(master.url, reconnect_timeout=0.6)

        async def scenario():
            async with new_client(config) as client:
                await next_of(client, "SUBSCRIBED")
                await asyncio.sleep(1.0)  # longer than reconnect_timeout, but alive all along
                await asyncio.to_thread(master.drop_streams, refuse_for=0.2)
                await next_of(client, "SUBSCRIBED", timeout=5)
                return client.subscriptions

        assert run(scenario()) == 2

    def test_first_subscription_failing_for_good(self):
        config = fast_config("http://127.0.0.1:9", reconnect_timeout=0.3)

        async def scenario():
            async with new_client(config) as client:
                await client.next_event(timeout=5)

        with pytest.raises(MesosConnectionError, match=r"Could not subscribe framework \(new\)"):
            run(scenario())

    def test_another_scheduler_taking_over_is_an_error(self, master, config):
        async def scenario():
            async with new_client(config) as first:
                await first.wait_subscribed(5)
                async with new_client(config, framework_id=first.framework_id) as second:
                    await second.wait_subscribed(5)
                    with pytest.raises(FrameworkError, match="Framework failed over"):
                        await next_of(first, "NEVER", timeout=5)
                    return second.subscribed

        assert run(scenario())

    def test_teardown_ends_the_subscription_for_good(self, master, config):
        async def scenario():
            async with new_client(config) as client:
                await client.wait_subscribed(5)
                await client.teardown()
                await asyncio.sleep(0.3)
                return client.framework_id

        framework_id = run(scenario())
        assert master.framework_ids(completed=True) == [framework_id]
        assert len(master.subscriptions) == 1  # no re-subscription after TEARDOWN

    def test_calls_wait_for_a_subscription(self, master, config):
        async def scenario():
            client = new_client(config)
            async with client:
                await client.revive()  # sent only once SUBSCRIBED
                return client.stream_id

        stream_id = run(scenario())
        assert master.calls_of("REVIVE")[0]["stream_id"] == stream_id


class TestAuthentication:
    @pytest.fixture
    def secured(self, tmp_path):
        with FakeMesosMaster(tmp_path / "sb", principal="sightlines", secret="s3cr3t-value") as fake:
            yield fake

    def test_basic_auth_header_is_sent_everywhere(self, secured, tmp_path):
        config = fast_config(secured.url, principal="sightlines", secret="s3cr3t-value")
        outcome = run(run_task(config, TaskSpec(task_id="t-auth", command="echo hi")))
        assert outcome.ok and secured.launch_count() == 1
        expected = "Basic " + base64.b64encode(b"sightlines:s3cr3t-value").decode()
        assert secured.requests and all(r["headers"].get("authorization") == expected for r in secured.requests)
        # and the framework registered with the principal
        assert secured.subscriptions

    def test_missing_credentials_are_refused_with_a_hint(self, secured):
        config = fast_config(secured.url)
        with pytest.raises(MesosAuthError, match="HTTP 401.*no credentials.*Check the principal and secret"):
            run(run_task(config, TaskSpec(task_id="t-noauth", command="true")))
        assert secured.launch_count() == 0

    def test_secret_never_appears_in_logs_or_errors(self, secured, caplog):
        caplog.set_level(logging.DEBUG)  # httpx and httpcore included
        config = fast_config(secured.url, principal="sightlines", secret="s3cr3t-value")
        outcome = run(run_task(config, TaskSpec(task_id="t-logs", command="echo hi")))
        assert outcome.ok
        bad = fast_config(secured.url, principal="sightlines", secret="wr0ng-s3cr3t")
        with pytest.raises(MesosAuthError) as info:
            run(run_task(bad, TaskSpec(task_id="t-logs2", command="true")))
        encoded = base64.b64encode(b"sightlines:s3cr3t-value").decode()
        for text in (caplog.text, str(info.value), repr(config), repr(outcome)):
            assert "s3cr3t-value" not in text and "wr0ng-s3cr3t" not in text and encoded not in text
