"""Live progress across processes: a real qcluster worker reports, a socket in this
process receives.

* Redis layer (both channels-redis layers): every step is pushed from the worker.
  This process watches the database only once an hour (``WATCH_INTERVAL``), so
  what arrives within seconds was pushed, not polled.
* Embedded default (in-memory layer in both processes): the worker's layer cannot
  reach this process, so the socket's hub watches the row; each update still
  arrives within about a second.
* Redis down (nothing listening, or a server that never answers): the jobs
  complete with true rows and are not slowed by the failed pushes, and a socket
  here falls back to watching the database.

The worker picks its channel layer from ``JOBPROGRESS_TEST_CHANNEL_LAYER`` and
``JOBPROGRESS_TEST_CHANNEL_REDIS_URL`` (see ``tests/settings.py``). Only one
cluster runs at a time (they would share the ORM queue): ``cluster`` is one
module-scoped fixture, parametrised per test, so pytest groups the tests by
cluster. Nothing sleeps blindly: rows are polled every 50 ms against a
deadline, sockets are read with receive timeouts, and the worker's gated job
only moves on when the test opens the next gate.
"""

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.conf import settings as django_settings
from django.db import connections

from django_jobprogress import conf
from django_jobprogress.adapters.push_channels import layer_crosses_processes
from django_jobprogress.models import JobRecord
from django_jobprogress.routing import websocket_urlpatterns
from tests import push_jobs
from tests.conftest import clear_run_keys
from tests.workers import DJANGO_Q2, ROOT, Cluster, qcluster_env, require_postgres, require_redis

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

FINISHED = ("completed", "failed", "cancelled")

# (channel layer, Redis) of each cluster: a live Redis, a closed port ("refused"),
# or a port that accepts connections and never answers ("unresponsive": a hung Redis).
LIVE_REDIS = ["redis-pubsub/live", "redis-core/live"]
EMBEDDED = ["memory/none"]
DEAD_REDIS = [
    f"{layer}/{dead}"
    for dead in ("refused", "unresponsive")
    for layer in ("redis-pubsub", "redis-core")
]
LAYERS = {
    "redis-pubsub": "channels_redis.pubsub.RedisPubSubChannelLayer",
    "redis-core": "channels_redis.core.RedisChannelLayer",
}
# Both processes read PUSH_TIMEOUT from tests/settings.py (the default unless set there).
PUSH_TIMEOUT = django_settings.JOBPROGRESS.get("PUSH_TIMEOUT", conf.DEFAULTS["PUSH_TIMEOUT"])
# The embedded default must deliver each update within about a second.
EMBEDDED_LATENCY_BOUND = 1.0


@pytest.fixture(scope="session", autouse=True)
def _require_postgres():
    """Runs before the test database is set up, so a missing server skips cleanly."""
    require_postgres()


# -- dead Redis servers --------------------------------------------------------------


def closed_port_url():
    """A Redis URL on a loopback port where nothing listens (checked: refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with socket.socket() as client:
        client.settimeout(3)
        try:
            client.connect(("127.0.0.1", port))
        except ConnectionRefusedError:
            return f"redis://127.0.0.1:{port}/0"
    pytest.fail(f"port {port} was expected to be closed, but something listens there")


@contextlib.contextmanager
def unresponsive_redis():
    """A listening socket that never accepts: connects succeed, no reply ever comes."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(128)
    try:
        yield f"redis://127.0.0.1:{server.getsockname()[1]}/0"
    finally:
        server.close()


# -- the cluster -----------------------------------------------------------------


class PushCluster(Cluster):
    def __init__(self, layer, redis, redis_url, env, log_path):
        self.layer = layer
        self.redis = redis
        self.redis_url = redis_url
        super().__init__(f"orm, {layer} layer, {redis} Redis", env, log_path)

    def channel_layers(self):
        """The CHANNEL_LAYERS the worker runs with (this process uses the same)."""
        if self.layer == "memory":
            return {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
        config = {"hosts": [self.redis_url], "prefix": django_settings.CHANNELS_PREFIX}
        return {"default": {"BACKEND": LAYERS[self.layer], "CONFIG": config}}


def check_worker_layer(env, layer):
    """Fail clearly if tests/settings.py does not honour JOBPROGRESS_TEST_CHANNEL_LAYER."""
    wanted = LAYERS.get(layer, "channels.layers.InMemoryChannelLayer")
    code = "from tests import settings; print(settings.CHANNEL_LAYERS['default']['BACKEND'])"
    found = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert found == wanted, (
        f"the worker would use {found}, not {wanted}: tests/settings.py must pick "
        "CHANNEL_LAYERS from JOBPROGRESS_TEST_CHANNEL_LAYER"
    )


@pytest.fixture(scope="module")
def cluster(request, django_db_setup, tmp_path_factory):
    """A qcluster (ORM broker) whose channel layer is ``request.param``."""
    layer, redis = request.param.split("/")
    with contextlib.ExitStack() as stack:
        if redis == "live":
            require_redis()
            redis_url = django_settings.REDIS_URL
        elif redis == "refused":
            redis_url = closed_port_url()
        elif redis == "unresponsive":
            redis_url = stack.enter_context(unresponsive_redis())
        else:
            redis_url = ""
        env = qcluster_env(
            JOBPROGRESS_TEST_CHANNEL_LAYER=layer,
            JOBPROGRESS_TEST_CHANNEL_REDIS_URL=redis_url or django_settings.REDIS_URL,
        )
        check_worker_layer(env, layer)
        name = request.param.replace("/", "-")
        log_path = tmp_path_factory.mktemp("qcluster") / f"qcluster-{name}.log"
        yield stack.enter_context(PushCluster(layer, redis, redis_url, env, log_path))


@pytest.fixture(autouse=True)
def this_process(cluster, settings, monkeypatch):
    """This process enqueues onto the cluster's ORM queue and uses the worker's layer.

    With a live Redis, it watches the database only once an hour: updates that
    arrive were pushed. Otherwise it keeps the default watch interval.
    """
    from django_q.conf import Conf

    monkeypatch.setattr(Conf, "ORM", "default")
    jobprogress = {**settings.JOBPROGRESS, "QUEUE_ADAPTER": DJANGO_Q2}
    jobprogress.pop("WATCH_INTERVAL", None)
    if cluster.redis == "live":
        jobprogress["WATCH_INTERVAL"] = 3600
    settings.JOBPROGRESS = jobprogress
    settings.CHANNEL_LAYERS = cluster.channel_layers()
    client = require_redis() if cluster.redis == "live" else None
    if client is not None:
        clear_run_keys(client)
    cluster.assert_alive()
    yield cluster
    if client is not None:
        clear_run_keys(client)


@pytest.fixture(autouse=True)
async def close_executor_connections():
    """Channels' communicator keeps the executor thread's connection open on purpose;
    close it so the test database can be dropped."""
    yield
    await sync_to_async(connections.close_all)()


# -- helpers ---------------------------------------------------------------------


def row(pk):
    return (
        JobRecord.objects.filter(pk=pk)
        .values("status", "progress", "current", "total", "error", "worker_pid")
        .first()
    )


async def wait_until(cluster, condition, *, what, timeout=30.0):
    """Poll ``condition`` (run in a thread, may use the ORM) every 50 ms."""
    check = database_sync_to_async(condition)
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        cluster.assert_alive()
        if time.monotonic() >= deadline:
            pytest.fail(
                f"timed out after {timeout:g} s waiting for {what}\n{cluster.log_section()}"
            )
        await asyncio.sleep(0.05)


async def wait_finished(cluster, pk, timeout=30.0):
    await wait_until(
        cluster,
        lambda: JobRecord.objects.filter(pk=pk, status__in=FINISHED).exists(),
        what=f"job {pk} to finish",
        timeout=timeout,
    )
    return await database_sync_to_async(JobRecord.objects.get)(pk=pk)


async def enqueue(task, *args, **kwargs):
    return await database_sync_to_async(task.enqueue)(*args, **kwargs)


def communicator(record, user):
    comm = WebsocketCommunicator(URLRouter(websocket_urlpatterns), f"/ws/jobs/{record.pk}/")
    comm.scope["user"] = user
    return comm


@contextlib.asynccontextmanager
async def socket_on_gated_job(cluster, owner, gate_dir, steps):
    """``owner``'s connected socket on a new ``gated_steps`` job.

    On the way out every gate opens and the job is awaited, so a failed test
    leaves no worker busy for the next one.
    """
    record = await enqueue(push_jobs.gated_steps, str(gate_dir), steps, owner=owner)
    comm = communicator(record, owner)
    connected, _ = await comm.connect()
    assert connected
    try:
        yield record, comm
    finally:
        open_all_gates(gate_dir, steps)
        await wait_finished(cluster, record.pk)


async def next_snapshot(comm, cluster, timeout, what="the next snapshot"):
    """The next snapshot on ``comm`` and when it arrived (time.time())."""
    try:
        output = await comm.receive_output(timeout)
    except TimeoutError:
        pytest.fail(f"no message within {timeout:g} s waiting for {what}\n{cluster.log_section()}")
    arrived = time.time()
    assert output["type"] == "websocket.send", f"{what}: got {output}"
    return json.loads(output["text"]), arrived


def written_at(snapshot):
    """When the worker wrote the state in ``snapshot`` (its ``updated`` time)."""
    return datetime.fromisoformat(snapshot["updated"]).timestamp()


async def step_through(comm, cluster, gate_dir, steps, timeout):
    """Open gates 1..steps one by one; after each, wait for its snapshot on ``comm``.

    The job reports step ``i`` only once gate ``i`` is open, so each intermediate
    snapshot must reach the socket before the job can go on. Returns the
    snapshots of steps 1..steps-1 with their arrival times, and the final one.
    """
    intermediate = []
    for step in range(1, steps + 1):
        (Path(gate_dir) / str(step)).touch()
        while True:
            snapshot, arrived = await next_snapshot(comm, cluster, timeout, f"step {step}")
            assert snapshot["current"] <= step, snapshot  # the job cannot pass a closed gate
            if snapshot["current"] == step or snapshot["status"] in FINISHED:
                break
        if step < steps:
            assert snapshot["status"] == "running", snapshot
            intermediate.append((snapshot, arrived))
    # The last step's snapshot may be coalesced into the final one by the sender.
    while snapshot["status"] not in FINISHED:
        snapshot, _ = await next_snapshot(comm, cluster, timeout, "the final snapshot")
    return intermediate, snapshot


async def assert_every_step_then_close(comm, cluster, gate_dir, steps):
    """Each step, then the final snapshot, then a normal close reach the socket.

    Returns the intermediate snapshots with their arrival times.
    """
    intermediate, final = await step_through(comm, cluster, gate_dir, steps, timeout=10)
    assert_intermediate_steps(intermediate, steps)
    assert_final(final, steps)
    assert await comm.receive_output(5) == {"type": "websocket.close", "code": 1000}
    return intermediate


def assert_intermediate_steps(intermediate, steps):
    assert [s["current"] for s, _ in intermediate] == list(range(1, steps))
    for snapshot, _ in intermediate:
        assert snapshot["total"] == steps
        assert snapshot["progress"] == pytest.approx(snapshot["current"] / steps)
        assert snapshot["stage"] == "stepping"


def assert_final(final, steps):
    assert final["status"] == "completed", final
    assert final["result"] == {"steps": steps}
    assert final["progress"] == 1.0
    assert (final["current"], final["total"]) == (steps, steps)


async def assert_ran_in_the_cluster(record, cluster):
    worker_pid = (await database_sync_to_async(row)(record.pk))["worker_pid"]
    assert worker_pid not in (None, os.getpid(), cluster.process.pid)
    assert os.getpgid(worker_pid) == cluster.process.pid


def open_all_gates(gate_dir, steps):
    """Let a gated job run to its end (after a failed test), so it leaves no worker busy."""
    for step in range(1, steps + 1):
        (Path(gate_dir) / str(step)).touch()


# -- 1. Redis layer: pushed from the worker process -------------------------------------


@pytest.mark.parametrize("cluster", LIVE_REDIS, indirect=True)
async def test_redis_layer_pushes_every_step_from_the_worker(cluster, make_user, tmp_path):
    assert layer_crosses_processes()
    assert conf.get("WATCH_INTERVAL") == 3600  # no database watching can deliver in time
    owner = await database_sync_to_async(make_user)(username="owner")
    steps = 5
    async with socket_on_gated_job(cluster, owner, tmp_path, steps) as (record, comm):
        # Sent once the hub has subscribed; from here on every update is pushed.
        first, _ = await next_snapshot(comm, cluster, 10, "the snapshot on connect")
        assert (first["id"], first["current"]) == (str(record.pk), 0)
        assert first["status"] in ("pending", "running")

        await assert_every_step_then_close(comm, cluster, tmp_path, steps)
    await assert_ran_in_the_cluster(record, cluster)


# -- 2. embedded default: the hub watches the database -------------------------------------


@pytest.mark.parametrize("cluster", EMBEDDED, indirect=True)
async def test_embedded_default_delivers_every_step_within_a_second(cluster, make_user, tmp_path):
    assert not layer_crosses_processes()
    assert conf.get("WATCH_INTERVAL") == conf.DEFAULTS["WATCH_INTERVAL"]
    owner = await database_sync_to_async(make_user)(username="owner")
    steps = 5
    async with socket_on_gated_job(cluster, owner, tmp_path, steps) as (record, comm):
        first, _ = await next_snapshot(comm, cluster, 10, "the snapshot on connect")
        assert (first["id"], first["current"]) == (str(record.pk), 0)

        intermediate = await assert_every_step_then_close(comm, cluster, tmp_path, steps)
    await assert_ran_in_the_cluster(record, cluster)
    # Each step reached the socket within about a second of the worker writing it.
    latencies = [arrived - written_at(snapshot) for snapshot, arrived in intermediate]
    assert max(latencies) < EMBEDDED_LATENCY_BOUND, latencies


# -- 3. Redis down ----------------------------------------------------------------


@pytest.mark.parametrize("cluster", DEAD_REDIS, indirect=True)
async def test_jobs_complete_with_true_rows_and_no_slowdown_while_redis_is_down(cluster, make_user):
    owner = await database_sync_to_async(make_user)(username="owner")
    writes, count = 30, 3
    records = [await enqueue(push_jobs.chatty, writes, owner=owner) for _ in range(count)]

    finished = [await wait_finished(cluster, record.pk, timeout=60) for record in records]

    for record in finished:
        assert record.status == JobRecord.Status.COMPLETED, record.error
        assert record.result == {"writes": writes}
        assert record.progress == 1.0
        assert (record.current, record.total) == (writes, writes)
        assert record.stage == "chatting"
        assert record.error == ""
        assert record.started_at <= record.finished_at
        assert record.worker_pid not in (None, os.getpid())
    # Pushes are not waited for on the job's path: if each of the ``writes`` persisted
    # writes waited for its failed push, a job would take about writes * PUSH_TIMEOUT
    # against the unresponsive server; it takes a small fraction of that.
    durations = [(r.finished_at - r.started_at).total_seconds() for r in finished]
    assert max(durations) < writes * PUSH_TIMEOUT / 3, durations
    # The worker really tried to push to the dead layer (and logged that it could not).
    await wait_until(
        cluster,
        lambda: "could not push" in cluster.log_path.read_text(errors="replace"),
        what="the worker to log its failed pushes",
        timeout=10 + PUSH_TIMEOUT,
    )


@pytest.mark.parametrize("cluster", DEAD_REDIS, indirect=True)
async def test_a_socket_falls_back_to_watching_the_database_while_redis_is_down(
    cluster, make_user, tmp_path
):
    assert layer_crosses_processes()  # configured for Redis, which is down
    owner = await database_sync_to_async(make_user)(username="owner")
    steps = 3
    async with socket_on_gated_job(cluster, owner, tmp_path, steps) as (record, comm):
        first, _ = await next_snapshot(comm, cluster, 5, "the snapshot on connect")
        assert first["id"] == str(record.pk)

        await assert_every_step_then_close(comm, cluster, tmp_path, steps)
