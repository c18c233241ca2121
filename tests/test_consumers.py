"""The WebSocket consumer through Channels' communicator, on a real Redis layer
(both channels-redis layers) and on the embedded default (in-memory layer)."""

import asyncio
import json

import pytest
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.conf import settings as django_settings
from django.db import connections

from django_jobprogress.consumers import _hubs
from django_jobprogress.groups import job_group
from django_jobprogress.models import JobRecord
from django_jobprogress.routing import websocket_urlpatterns
from tests.conftest import clear_run_keys
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


@pytest.fixture(params=sorted(LAYERS))
def redis_layer(request, settings):
    client = require_redis()
    clear_run_keys(client)
    config = {"hosts": [settings.REDIS_URL], "prefix": settings.CHANNELS_PREFIX}
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": LAYERS[request.param], "CONFIG": config}}
    yield client
    clear_run_keys(client)


@pytest.fixture
def embedded_layer(settings):
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    settings.JOBPROGRESS = {**settings.JOBPROGRESS, "WATCH_INTERVAL": 0.05}


@pytest.fixture
def owned_job(make_user):
    owner = make_user(username="owner")
    record = JobRecord.objects.create(task_name="tests.jobs.add", owner=owner)
    assert record.claim(host="h", pid=1)
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


async def test_stranger_is_closed_with_4403_and_sees_nothing(redis_layer, owned_job, make_user):
    stranger = await database_sync_to_async(make_user)()
    await assert_stranger_is_refused(owned_job, stranger)
    await assert_stranger_is_refused(owned_job, None)
    comm = communicator(owned_job, None, token="forged")
    await comm.connect()
    assert await comm.receive_output(5) == {"type": "websocket.close", "code": 4403}


async def test_owner_gets_snapshot_then_updates_then_close(redis_layer, owned_job):
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


async def test_token_holder_is_accepted(redis_layer, owned_job):
    comm = communicator(owned_job, None, token=owned_job.access_token())
    await comm.connect()
    assert (await receive_json(comm))["id"] == str(owned_job.pk)
    await comm.disconnect()


async def test_client_after_the_end_gets_the_final_snapshot_at_once(redis_layer, owned_job):
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


async def test_batch_socket_follows_its_members(redis_layer, make_user, memory_queue):
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
        record = JobRecord.objects.get(pk=member.pk)
        record.claim(host="h", pid=1)
        record.complete(3)

    await finish_member()
    final = await receive_until(comm, lambda s: s["status"] == "completed")
    assert (final["succeeded"], final["progress"]) == (1, 1.0)
    assert await comm.receive_output(5) == {"type": "websocket.close", "code": 1000}
