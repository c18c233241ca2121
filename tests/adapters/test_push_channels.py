"""The publishing side of Channels push: the per-process sender loop, against
channels-redis's pub/sub layer on a real Redis."""

import asyncio
import logging
import time

import pytest
from channels.layers import get_channel_layer

from django_jobprogress.adapters.push_channels import _SenderLoop
from tests.workers import require_redis

GROUP = "jobprogress.test-sender"


@pytest.fixture
def layer(settings):
    require_redis()  # skips (or fails in CI) without Redis
    config = {"hosts": [settings.REDIS_URL], "prefix": settings.CHANNELS_PREFIX}
    settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer", "CONFIG": config}
    }
    return get_channel_layer()


@pytest.fixture
async def listener(layer):
    """A channel in GROUP, read from this test's own event loop."""
    channel = await layer.new_channel()
    await layer.group_add(GROUP, channel)
    yield channel
    await layer.group_discard(GROUP, channel)


@pytest.fixture
def sender():
    return _SenderLoop()


def message(n):
    """What the sender is given: a snapshot (it wraps it in the envelope it sends)."""
    return {"n": n}


async def next_snapshot(layer, channel):
    received = await asyncio.wait_for(layer.receive(channel), 5)
    return received["snapshot"]


async def test_a_snapshot_reaches_the_group(layer, listener, sender):
    sender.submit(GROUP, message(1))
    assert await next_snapshot(layer, listener) == {"n": 1}
    assert await asyncio.to_thread(sender.idle.wait, 5)


async def test_a_held_snapshot_is_sent_after_its_delay_when_nothing_else_happens(
    layer, listener, sender
):
    submitted = time.monotonic()
    sender.submit(GROUP, message(1), delay=0.3)
    assert await next_snapshot(layer, listener) == {"n": 1}
    assert time.monotonic() - submitted >= 0.3


async def test_a_newer_snapshot_replaces_a_held_one(layer, listener, sender):
    sender.submit(GROUP, message("started"), delay=0.5)
    sender.submit(GROUP, message("finished"))
    assert await next_snapshot(layer, listener) == {"n": "finished"}
    # Nothing is left to send, so the held snapshot is gone: the next one to
    # arrive is the one sent after this point.
    assert await asyncio.to_thread(sender.idle.wait, 5)
    sender.submit(GROUP, message("later"))
    assert await next_snapshot(layer, listener) == {"n": "later"}


async def test_a_held_snapshot_costs_no_wake_up_while_the_loop_is_active(
    layer, listener, sender, monkeypatch
):
    sender.submit(GROUP, message(1))
    assert await next_snapshot(layer, listener) == {"n": 1}
    wake_ups = []
    real = sender.loop.call_soon_threadsafe
    monkeypatch.setattr(
        sender.loop, "call_soon_threadsafe", lambda *a: wake_ups.append(a) or real(*a)
    )
    # The loop just sent, so it looks again within TICK: a snapshot held for
    # TICK rides on that look instead of waking the loop.
    sender.submit(GROUP, message(2), delay=sender.TICK)
    assert await next_snapshot(layer, listener) == {"n": 2}
    assert wake_ups == []
    # Once it has planned its next look, a snapshot due now still wakes it.
    assert await asyncio.to_thread(sender.idle.wait, 5)
    sender.submit(GROUP, message(3))
    assert await next_snapshot(layer, listener) == {"n": 3}
    assert len(wake_ups) == 1


class HangingLayer:
    """A channel layer whose sends never finish (a Redis that stopped answering)."""

    extensions = []

    def __init__(self, **kwargs):
        pass

    async def group_send(self, group, message):
        await asyncio.Event().wait()


def test_a_hung_layer_never_holds_the_job_and_is_logged(settings, sender, caplog):
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": f"{__name__}.HangingLayer"}}
    settings.JOBPROGRESS = {**settings.JOBPROGRESS, "PUSH_TIMEOUT": 0.2}
    with caplog.at_level(logging.WARNING, logger="django_jobprogress.adapters.push_channels"):
        sender.submit(GROUP, message(1))  # returns at once: the job goes on
        assert not sender.idle.is_set()
        # The send is given up after PUSH_TIMEOUT, and the loop is free again.
        assert sender.idle.wait(5)
    assert f"could not push to {GROUP}: TimeoutError" in caplog.text


# -- lazy snapshots and the batch roll-up, on a layer that records what it is sent ------


class RecordingLayer:
    """A channel layer that keeps every group message; not the in-memory layer, so
    ``ChannelsPush`` takes it for one that crosses processes."""

    extensions = []
    sent = []

    def __init__(self, **kwargs):
        pass

    async def group_send(self, group, message):
        RecordingLayer.sent.append((group, message))


@pytest.fixture
def recording_layer(settings):
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": f"{__name__}.RecordingLayer"}}
    RecordingLayer.sent.clear()
    yield RecordingLayer.sent
    RecordingLayer.sent.clear()


def test_a_lazy_snapshot_is_read_once_when_due_and_the_last_ask_wins(recording_layer, sender):
    reads = []

    def reader(n):
        return lambda: reads.append(n) or {"n": n}

    for n in range(5):
        sender.submit(GROUP, reader(n), delay=0.2)
    assert sender.idle.wait(5)
    assert reads == [4]
    assert recording_layer == [
        (GROUP, {"type": "jobprogress.update", "group": GROUP, "snapshot": {"n": 4}})
    ]
    sender.submit(GROUP, lambda: None)  # a reader may find nothing to send
    assert sender.idle.wait(5)
    assert len(recording_layer) == 1


@pytest.mark.django_db(transaction=True)
def test_member_changes_within_a_throttle_period_cost_one_batch_read(
    recording_layer, settings, memory_queue, monkeypatch
):
    from django_jobprogress.adapters import get_push_adapter
    from django_jobprogress.groups import batch_group
    from django_jobprogress.models import Batch, JobRecord
    from tests import jobs
    from tests.factories import start

    settings.JOBPROGRESS = {**settings.JOBPROGRESS, "THROTTLE": 2.0}
    reads = []
    snapshot = Batch.snapshot
    monkeypatch.setattr(Batch, "snapshot", lambda batch: reads.append(batch.pk) or snapshot(batch))
    with Batch.open("blast") as batch:
        members = [jobs.add.enqueue(n, 1, batch=batch) for n in range(5)]

    def batch_pushes():
        group = batch_group(batch.pk)
        return [m["snapshot"] for g, m in recording_layer if g == group]

    for member in members[:4]:  # four member ends within one throttle period
        start(JobRecord.objects.get(pk=member.pk)).complete(1)
    assert get_push_adapter().flush(10)
    # One read, after the last of them: its state is what was pushed.
    assert len(reads) == 1
    assert [(s["status"], s["succeeded"]) for s in batch_pushes()] == [("running", 4)]

    start(JobRecord.objects.get(pk=members[4].pk)).complete(1)
    assert get_push_adapter().flush(10)
    final = batch_pushes()[-1]
    assert (final["status"], final["succeeded"], final["progress"]) == ("completed", 5, 1.0)
