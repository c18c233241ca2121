"""The WebSocket consumer through Channels' communicator: in push mode on a real Redis
layer (both channels-redis layers) and on the in-process push double (``MemoryPush``),
and on the embedded default (in-memory layer: the hub watches the database)."""

import asyncio
import json

import pytest
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.conf import settings as django_settings
from django.db import connections

from django_jobprogress import consumers
from django_jobprogress.adapters.push_memory import MemoryPush, MemoryWatch, RecordingPush
from django_jobprogress.consumers import ProgressHub, _hubs
from django_jobprogress.groups import job_group
from django_jobprogress.models import JobRecord
from django_jobprogress.routing import websocket_urlpatterns
from tests.conftest import clear_run_keys
from tests.factories import start
from tests.workers import require_redis

pytestmark = pytest.mark.django_db(transaction=True)

LAYERS = {
    "redis-pubsub": "channels_redis.pubsub.RedisPubSubChannelLayer",
    "redis-core": "channels_redis.core.RedisChannelLayer",
}


@pytest.fixture(autouse=True)
async def close_executor_connections():
    """Channels' communicator keeps the executor thread's connection open on purpose;
    close it so the test database can be dropped."""
    yield
    await sync_to_async(connections.close_all)()


def use_redis_layer(settings, name):
    """Push through ``ChannelsPush`` on the real Redis layer ``name``; the Redis client."""
    client = require_redis()
    clear_run_keys(client)
    config = {"hosts": [settings.REDIS_URL], "prefix": settings.CHANNELS_PREFIX}
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": LAYERS[name], "CONFIG": config}}
    return client


@pytest.fixture(params=sorted(LAYERS))
def redis_layer(request, settings):
    client = use_redis_layer(settings, request.param)
    yield client
    clear_run_keys(client)


@pytest.fixture
def memory_push(settings):
    """Push through the in-process double. The database is re-read once an hour, so
    what reaches a socket after its first snapshot was pushed."""
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    settings.JOBPROGRESS = {
        **settings.JOBPROGRESS,
        "PUSH_ADAPTER": "django_jobprogress.adapters.push_memory.MemoryPush",
        "WATCH_INTERVAL": 3600,
    }
    MemoryPush.clear()
    yield MemoryPush
    MemoryPush.clear()


@pytest.fixture(params=[*sorted(LAYERS), "memory-push"])
def push_mode(request, settings):
    """Push mode on each real Redis layer, and on the in-process double."""
    if request.param == "memory-push":
        yield request.getfixturevalue("memory_push")
        return
    client = use_redis_layer(settings, request.param)
    yield client
    clear_run_keys(client)


@pytest.fixture
def embedded_layer(settings):
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    settings.JOBPROGRESS = {**settings.JOBPROGRESS, "WATCH_INTERVAL": 0.05}


@pytest.fixture
def owned_job(make_user):
    owner = make_user(username="owner")
    record = start(JobRecord.objects.create(task_name="tests.jobs.add", owner=owner))
    record.owner = owner  # start() refreshed the row: async tests read the owner from here
    return record


def communicator(record, user=None, token=None):
    path = f"/ws/jobs/{record.pk}/" + (f"?token={token}" if token else "")
    comm = WebsocketCommunicator(URLRouter(websocket_urlpatterns), path)
    comm.scope["user"] = user
    return comm


async def receive_json(comm, timeout=5):
    return json.loads(await comm.receive_from(timeout))


@database_sync_to_async
def report(record, **values):
    JobRecord.objects.get(pk=record.pk).save_progress(values)


@database_sync_to_async
def complete(record, result):
    JobRecord.objects.get(pk=record.pk).complete(result)


async def receive_until(comm, predicate, timeout=5):
    async with asyncio.timeout(timeout):
        while True:
            snapshot = await receive_json(comm, timeout)
            if predicate(snapshot):
                return snapshot


async def assert_stranger_is_refused(record, user):
    comm = communicator(record, user)
    connected, _ = await comm.connect()
    assert connected
    output = await comm.receive_output(5)
    assert output == {"type": "websocket.close", "code": 4403}


async def test_stranger_is_closed_with_4403_and_sees_nothing(push_mode, owned_job, make_user):
    stranger = await database_sync_to_async(make_user)()
    await assert_stranger_is_refused(owned_job, stranger)
    await assert_stranger_is_refused(owned_job, None)
    comm = communicator(owned_job, None, token="forged")
    await comm.connect()
    assert await comm.receive_output(5) == {"type": "websocket.close", "code": 4403}


async def test_owner_gets_snapshot_then_updates_then_close(push_mode, owned_job):
    comm = communicator(owned_job, owned_job.owner)
    connected, _ = await comm.connect()
    assert connected
    first = await receive_json(comm)
    assert (first["id"], first["status"], first["progress"]) == (str(owned_job.pk), "running", 0.0)

    await report(owned_job, progress=0.4, stage="copying")
    update = await receive_until(comm, lambda s: s["progress"] == 0.4)
    assert update["stage"] == "copying"

    await complete(owned_job, {"path": "x.zip"})
    final = await receive_until(comm, lambda s: s["status"] == "completed")
    assert final["result"] == {"path": "x.zip"} and final["progress"] == 1.0
    assert await comm.receive_output(5) == {"type": "websocket.close", "code": 1000}


async def test_token_holder_is_accepted(push_mode, owned_job):
    comm = communicator(owned_job, None, token=owned_job.access_token())
    await comm.connect()
    assert (await receive_json(comm))["id"] == str(owned_job.pk)
    await comm.disconnect()


async def test_client_after_the_end_gets_the_final_snapshot_at_once(push_mode, owned_job):
    await complete(owned_job, 7)
    comm = communicator(owned_job, owned_job.owner)
    await comm.connect()
    final = await receive_json(comm)
    assert (final["status"], final["result"]) == ("completed", 7)
    assert await comm.receive_output(5) == {"type": "websocket.close", "code": 1000}


async def test_embedded_default_watches_the_database(embedded_layer, owned_job):
    comm = communicator(owned_job, owned_job.owner)
    await comm.connect()
    await receive_json(comm)
    await report(owned_job, progress=0.5, message="half way")
    update = await receive_until(comm, lambda s: s["progress"] == 0.5)
    assert update["message"] == "half way"
    await complete(owned_job, None)
    await receive_until(comm, lambda s: s["status"] == "completed")
    assert await comm.receive_output(5) == {"type": "websocket.close", "code": 1000}


async def test_two_hundred_sockets_connect_update_and_leave_together(redis_layer, owned_job):
    comms = [communicator(owned_job, owned_job.owner) for _ in range(200)]
    results = await asyncio.gather(*(comm.connect(timeout=10) for comm in comms))
    assert all(connected for connected, _ in results)
    firsts = await asyncio.gather(*(receive_json(comm, 10) for comm in comms))
    assert {s["id"] for s in firsts} == {str(owned_job.pk)}

    await report(owned_job, progress=0.3)
    updates = await asyncio.gather(
        *(receive_until(comm, lambda s: s["progress"] == 0.3, 10) for comm in comms)
    )
    assert len(updates) == 200

    await asyncio.gather(*(comm.disconnect() for comm in comms))
    group = job_group(owned_job.pk)
    assert all(group not in hub.watchers for hub in _hubs.values())
    # Nothing is left subscribed or registered in Redis for the group.
    prefix = django_settings.CHANNELS_PREFIX
    assert redis_layer.pubsub_numsub(f"{prefix}__group__{group}")[0][1] == 0
    assert redis_layer.zcard(f"{prefix}:group:{group}") == 0


async def test_batch_socket_follows_its_members(push_mode, make_user, memory_queue):
    from django_jobprogress.models import Batch
    from tests import jobs

    @database_sync_to_async
    def make_batch():
        owner = make_user(username="batch-owner")
        with Batch.open("blast", owner=owner) as batch:
            member = jobs.add.enqueue(1, 2, batch=batch)
        return batch, member, owner

    batch, member, owner = await make_batch()
    comm = WebsocketCommunicator(URLRouter(websocket_urlpatterns), f"/ws/batches/{batch.pk}/")
    comm.scope["user"] = owner
    await comm.connect()
    first = await receive_json(comm)
    assert (first["kind"], first["total"], first["succeeded"]) == ("batch", 1, 0)

    @database_sync_to_async
    def finish_member():
        start(JobRecord.objects.get(pk=member.pk)).complete(3)

    await finish_member()
    final = await receive_until(comm, lambda s: s["status"] == "completed")
    assert (final["succeeded"], final["progress"]) == (1, 1.0)
    assert await comm.receive_output(5) == {"type": "websocket.close", "code": 1000}


# -- push mode on the in-process double: what the hub asks of the port ----------------


async def test_the_hub_subscribes_once_and_the_last_socket_to_leave_unsubscribes(
    memory_push, owned_job
):
    group = job_group(owned_job.pk)
    comms = [communicator(owned_job, owned_job.owner) for _ in range(3)]
    for comm in comms:
        await comm.connect()
        assert (await receive_json(comm))["progress"] == 0.0
    assert memory_push.subscribed() == {group}
    assert memory_push.open_watches() == 1  # one watch for the hub, not one per socket

    await report(owned_job, progress=0.6)
    for comm in comms:
        assert (await receive_until(comm, lambda s: s["progress"] == 0.6))["status"] == "running"

    for comm in comms[:2]:
        await comm.disconnect()
    assert memory_push.subscribed() == {group}
    await comms[2].disconnect()
    assert memory_push.subscribed() == set()
    assert memory_push.open_watches() == 0  # the hub let go of its idle watch
    assert all(group not in hub.watchers for hub in _hubs.values())


async def test_a_stranger_costs_no_subscription(memory_push, owned_job, make_user):
    stranger = await database_sync_to_async(make_user)()
    await assert_stranger_is_refused(owned_job, stranger)
    assert memory_push.subscribed() == set()
    assert memory_push.open_watches() == 0


async def test_a_socket_closes_after_the_pushed_final_snapshot(memory_push, owned_job):
    comm = communicator(owned_job, owned_job.owner)
    await comm.connect()
    await receive_json(comm)
    await complete(owned_job, "done")
    final = await receive_json(comm)
    assert (final["status"], final["result"]) == ("completed", "done")
    assert await comm.receive_output(5) == {"type": "websocket.close", "code": 1000}
    assert memory_push.subscribed() == set()
    assert any(s["status"] == "completed" for _, s in memory_push.sent)


async def test_a_lost_push_is_made_up_for_by_the_resync(
    memory_push, owned_job, settings, monkeypatch
):
    # In push mode the hub re-reads every max(WATCH_INTERVAL, RESYNC_INTERVAL).
    settings.JOBPROGRESS = {**settings.JOBPROGRESS, "WATCH_INTERVAL": 0.01}
    monkeypatch.setattr(consumers, "RESYNC_INTERVAL", 0.2)
    monkeypatch.setattr(MemoryWatch, "offer", lambda self, group, snapshot: None)  # all lost
    comm = communicator(owned_job, owned_job.owner)
    await comm.connect()
    await receive_json(comm)
    await report(owned_job, progress=0.8)
    assert (await receive_until(comm, lambda s: s["progress"] == 0.8))["status"] == "running"
    await comm.disconnect()


async def test_a_failed_subscribe_falls_back_to_watching_the_database(
    memory_push, owned_job, settings, monkeypatch, caplog
):
    settings.JOBPROGRESS = {**settings.JOBPROGRESS, "WATCH_INTERVAL": 0.05}

    async def refuse(self, group):
        raise ConnectionRefusedError("no layer")

    monkeypatch.setattr(MemoryWatch, "subscribe", refuse)
    comm = communicator(owned_job, owned_job.owner)
    await comm.connect()
    await receive_json(comm)
    assert memory_push.open_watches() == 0  # the watch that failed is closed
    assert "watching jobprogress.job." in caplog.text
    await report(owned_job, progress=0.5)
    assert (await receive_until(comm, lambda s: s["progress"] == 0.5))["status"] == "running"
    await comm.disconnect()


class PublishOnlyPush(RecordingPush):
    """A custom adapter that publishes across processes but has no watch half."""

    crosses_processes = True


async def test_an_adapter_without_a_watch_half_leaves_the_hub_watching_the_database(
    settings, owned_job
):
    settings.JOBPROGRESS = {
        **settings.JOBPROGRESS,
        "PUSH_ADAPTER": f"{__name__}.PublishOnlyPush",
        "WATCH_INTERVAL": 0.05,
    }
    comm = communicator(owned_job, owned_job.owner)
    await comm.connect()
    await receive_json(comm)
    await report(owned_job, progress=0.5)
    assert (await receive_until(comm, lambda s: s["progress"] == 0.5))["status"] == "running"
    await comm.disconnect()
    PublishOnlyPush.clear()


class FakeSocket:
    def __init__(self, fails=False):
        self.fails = fails
        self.texts = []

    def wants(self, snapshot):
        return True

    async def deliver(self, text, snapshot):
        if self.fails:
            raise ConnectionResetError("gone")
        self.texts.append(text)


async def test_one_failing_socket_does_not_stop_the_others():
    hub = ProgressHub()
    sockets = [FakeSocket(), FakeSocket(fails=True), FakeSocket()]
    hub.watchers["g"] = set(sockets)
    await hub.deliver("g", {"n": 1})
    assert [s.texts for s in sockets if not s.fails] == [['{"n": 1}'], ['{"n": 1}']]


async def test_the_hub_lets_go_of_its_redis_channel_after_the_final_snapshot(settings, owned_job):
    client = use_redis_layer(settings, "redis-pubsub")
    pattern = f"{django_settings.CHANNELS_PREFIX}jobprogress.*"
    try:
        comm = communicator(owned_job, owned_job.owner)
        await comm.connect()
        await receive_json(comm)
        assert len(client.pubsub_channels(pattern)) == 1  # the hub's own channel
        await complete(owned_job, None)  # pushed; its socket leaves on it, from the hub
        await receive_until(comm, lambda s: s["status"] == "completed")
        assert await comm.receive_output(5) == {"type": "websocket.close", "code": 1000}
        async with asyncio.timeout(5):
            while client.pubsub_channels(pattern):
                await asyncio.sleep(0.02)
    finally:
        clear_run_keys(client)


# -- one socket for a page's bars (ws/watch/) -------------------------------------------


def watch_communicator(user=None):
    comm = WebsocketCommunicator(URLRouter(websocket_urlpatterns), "/ws/watch/")
    comm.scope["user"] = user
    return comm


@database_sync_to_async
def another_job(owner, **fields):
    return start(JobRecord.objects.create(task_name="tests.jobs.add", owner=owner, **fields))


async def test_one_socket_follows_many_jobs_each_until_it_ends(push_mode, owned_job):
    second = await another_job(owned_job.owner)
    comm = watch_communicator(owned_job.owner)
    assert (await comm.connect())[0]
    await comm.send_json_to(
        {"watch": [{"id": str(owned_job.pk)}, {"kind": "job", "id": str(second.pk)}]}
    )
    first_snapshots = {(await receive_json(comm))["id"] for _ in range(2)}
    assert first_snapshots == {str(owned_job.pk), str(second.pk)}

    await report(second, progress=0.5)
    update = await receive_until(comm, lambda s: s.get("progress") == 0.5)
    assert update["id"] == str(second.pk)

    await complete(owned_job, 1)
    final = await receive_until(comm, lambda s: s.get("status") == "completed")
    assert final["id"] == str(owned_job.pk)
    await report(second, progress=0.75)  # the socket stays open for the other job
    assert (await receive_until(comm, lambda s: s.get("progress") == 0.75))["id"] == str(second.pk)
    await comm.disconnect()


async def test_entries_the_viewer_may_not_see_are_refused_without_telling_why(
    push_mode, owned_job, make_user
):
    stranger = await database_sync_to_async(make_user)()
    comm = watch_communicator(stranger)
    await comm.connect()
    unknown = "0b3c5f6e-0000-4000-8000-000000000000"
    await comm.send_json_to(
        {"watch": [{"id": str(owned_job.pk)}, {"id": unknown}, {"id": "not-a-uuid"}]}
    )
    answers = [await receive_json(comm) for _ in range(3)]
    assert answers == [
        {"kind": "job", "id": str(owned_job.pk), "forbidden": True},
        {"kind": "job", "id": unknown, "forbidden": True},
        {"kind": "job", "id": "not-a-uuid", "forbidden": True},
    ]
    # With the job's token the same stranger may follow it.
    await comm.send_json_to(
        {"watch": [{"id": str(owned_job.pk), "token": owned_job.access_token()}]}
    )
    assert (await receive_json(comm))["status"] == "running"
    await comm.disconnect()


@pytest.mark.parametrize(
    "message",
    [
        "not json",
        "[1, 2]",
        '{"follow": []}',
        '{"watch": "abc"}',
        '{"watch": [{"kind": "x", "id": "1"}]}',
    ],
)
async def test_a_malformed_message_is_answered_with_an_error(memory_push, owned_job, message):
    comm = watch_communicator(owned_job.owner)
    await comm.connect()
    await comm.send_to(text_data=message)
    assert "error" in await receive_json(comm)
    await comm.send_json_to({"watch": [{"id": str(owned_job.pk)}]})  # still usable
    assert (await receive_json(comm))["id"] == str(owned_job.pk)
    await comm.disconnect()


async def test_unwatch_and_disconnect_leave_the_hub(memory_push, owned_job):
    comm = watch_communicator(owned_job.owner)
    await comm.connect()
    await comm.send_json_to({"watch": [{"id": str(owned_job.pk)}]})
    await receive_json(comm)
    hub = consumers.get_hub()
    assert job_group(owned_job.pk) in hub.watchers
    await comm.send_json_to({"unwatch": [{"id": str(owned_job.pk)}]})
    await comm.send_json_to({"watch": [{"kind": "batch", "id": str(owned_job.pk)}]})
    assert (await receive_json(comm))["forbidden"]  # (a job id is no batch) and in order
    assert job_group(owned_job.pk) not in hub.watchers
    await comm.disconnect()
