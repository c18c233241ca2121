"""End to end: a real django-q2 ``qcluster`` runs the jobs, and the rows tell the truth.

Each broker (ORM, Redis) gets one cluster subprocess for the whole module. It
uses the live test database (``JOBPROGRESS_TEST_DB_NAME``); the tests are
transactional so the worker sees committed rows, and the tables are flushed
between tests while the cluster keeps running. Nothing here sleeps blindly:
every wait polls the database until a condition holds or a deadline passes.
"""

import os
import socket

import pytest

from django_jobprogress import progress_task
from django_jobprogress.models import WORKER_LOST, JobRecord
from tests import jobs
from tests.conftest import clear_run_keys
from tests.workers import (
    DJANGO_Q2,
    Cluster,
    qcluster_env,
    reaped,
    require_postgres,
    require_redis,
    row,
)

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

Status = JobRecord.Status


@progress_task(stall_timeout=1)
def kill_own_worker_fast_stall(job):
    """``tests.jobs.kill_own_worker`` with a 1 s stall timeout (found by the worker here)."""
    jobs.kill_own_worker.func(job)


@pytest.fixture(scope="session", autouse=True)
def _require_postgres():
    """Runs before the test database is set up, so a missing server skips cleanly."""
    require_postgres()


@pytest.fixture(scope="module", params=["orm", "redis"])
def broker(request):
    if request.param == "redis":
        require_redis()
    return request.param


@pytest.fixture(scope="module")
def cluster(broker, django_db_setup, tmp_path_factory):
    env = qcluster_env()
    if broker == "redis":
        env["JOBPROGRESS_TEST_BROKER"] = "redis"
        clear_run_keys(require_redis())
    log_path = tmp_path_factory.mktemp("qcluster") / f"qcluster-{broker}.log"
    with Cluster(broker, env, log_path) as running:
        yield running


@pytest.fixture(autouse=True)
def enqueue_to_cluster(broker, cluster, settings, monkeypatch):
    """This process enqueues through django-q2 onto the cluster's broker."""
    from django_q.conf import Conf

    settings.JOBPROGRESS = {**settings.JOBPROGRESS, "QUEUE_ADAPTER": DJANGO_Q2}
    if broker == "redis":
        monkeypatch.setattr(Conf, "ORM", None)
        monkeypatch.setattr(Conf, "REDIS", settings.REDIS_URL)
        clear_run_keys(require_redis())
    else:
        monkeypatch.setattr(Conf, "ORM", "default")
    cluster.assert_alive()
    return cluster


def queue_result(record):
    """django-q2's own record of the delivery of ``record`` (None until it is saved)."""
    from django_q.models import Task

    from django_jobprogress.adapters.queue_django_q2 import delivery_name

    return Task.objects.filter(name=delivery_name(record)).first()


# -- the tests --------------------------------------------------------------------


def test_progress_is_visible_while_running_and_the_result_when_done(cluster):
    record = jobs.slow_steps.enqueue(40, 0.05)
    assert record.status == Status.PENDING
    seen = []

    def running_part_way():
        state = row(record)
        seen.append(state)
        return state["status"] == Status.RUNNING and 0 < state["progress"] < 1

    cluster.wait_for(running_part_way, what="progress between 0 and 1", state=lambda: seen[-1])
    record = cluster.wait_for_status(record, Status.COMPLETED, Status.FAILED)
    seen.append(row(record))

    assert record.status == Status.COMPLETED, record.error
    assert record.result == {"steps": 40}
    assert record.progress == 1.0
    assert (record.current, record.total) == (40, 40)
    assert record.stage == "working"
    assert record.attempts == 1
    assert record.started_at <= record.finished_at
    # It ran in a worker of the cluster on this host, not in the test process.
    assert record.worker_host == socket.gethostname()
    assert record.worker_pid not in (None, os.getpid(), cluster.process.pid)
    assert os.getpgid(record.worker_pid) == cluster.process.pid
    # Observers only ever saw progress move forward.
    observed = [state["progress"] for state in seen]
    assert observed == sorted(observed)


def test_an_exception_fails_the_job_and_reaches_django_q2(cluster):
    record = jobs.Explode.enqueue("disk full")
    record = cluster.wait_for_status(record, Status.COMPLETED, Status.FAILED)

    assert record.status == Status.FAILED
    assert record.error == "ValueError: disk full"
    assert "Traceback (most recent call last)" in record.traceback
    assert "raise ValueError(message)" in record.traceback
    assert record.progress == 0.25
    assert record.finished_at is not None
    assert record.result is None
    # Re-raised to django-q2, which records a failed task of its own.
    failure = cluster.wait_for(
        lambda: queue_result(record), what="django-q2 to save the task's outcome"
    )
    assert failure.success is False
    assert "disk full" in str(failure.result)


def test_a_running_job_stops_at_a_checkpoint_when_cancelled(cluster):
    record = jobs.slow_steps.enqueue(200, 0.05)
    cluster.wait_for(
        lambda: JobRecord.objects.filter(
            pk=record.pk, status=Status.RUNNING, current__gte=1
        ).exists(),
        what="the job to start counting steps",
        state=lambda: row(record),
    )

    assert JobRecord.objects.get(pk=record.pk).request_cancel() is True
    record = cluster.wait_for_status(record, Status.CANCELLED, Status.COMPLETED, Status.FAILED)

    assert record.status == Status.CANCELLED
    assert 1 <= record.current < 200
    assert record.total == 200
    assert record.progress < 1.0
    assert record.cancel_requested_at is not None
    assert record.finished_at >= record.cancel_requested_at
    assert record.result is None
    assert record.error == ""


def test_a_job_cancelled_while_queued_is_dropped_by_the_worker(cluster):
    # Keep both workers (Q_CLUSTER["workers"] == 2) busy so the next job waits in the queue.
    blockers = [jobs.slow_steps.enqueue(200, 0.05) for _ in range(2)]
    for blocker in blockers:
        cluster.wait_for_status(blocker, Status.RUNNING)

    queued = jobs.add.enqueue(2, 3)
    assert queued.request_cancel() is True
    queued.refresh_from_db()
    assert queued.status == Status.CANCELLED

    # Free one worker. It takes deliveries in order: the cancelled job's, then a
    # later job's, so once the later job is done the first delivery was handled.
    first, second = blockers
    assert first.request_cancel() is True
    cluster.wait_for_status(first, Status.CANCELLED)
    later = cluster.wait_for_status(jobs.add.enqueue(1, 1), Status.COMPLETED, Status.FAILED)
    assert later.status == Status.COMPLETED
    assert second.request_cancel() is True
    cluster.wait_for_status(second, Status.CANCELLED)

    queued.refresh_from_db()
    assert queued.status == Status.CANCELLED
    assert queued.started_at is None
    assert queued.attempts == 0
    assert queued.worker_pid is None
    assert queued.result is None


def test_a_killed_worker_is_closed_by_the_clusters_own_sweep(cluster):
    lost = jobs.kill_own_worker.enqueue()  # default stall timeout (60 s)
    cluster.wait_for(
        lambda: JobRecord.objects.filter(pk=lost.pk, message="about to die").exists(),
        what="the job to report before dying",
        state=lambda: row(lost),
    )
    lost.refresh_from_db()
    # The guard reaps the SIGKILLed worker (and spawns another); nothing reports for it.
    cluster.wait_for(lambda: reaped(lost.worker_pid), what=f"worker {lost.worker_pid} to be gone")

    # The same death with a 1 s stall timeout: the cluster's sweep (every 0.5 s in the
    # test settings) finds it and, with no attempt left, fails it "worker lost". Nobody
    # here calls anything.
    stalled = kill_own_worker_fast_stall.enqueue()
    assert stalled.task_name == "tests.test_worker_process.kill_own_worker_fast_stall"
    assert stalled.stall_timeout == 1
    stalled = cluster.wait_for_status(stalled, Status.FAILED, timeout=20)
    assert stalled.error == WORKER_LOST
    assert stalled.progress == 0.4  # what it reported before dying is kept
    assert (stalled.attempts, stalled.finished_at is not None) == (1, True)
    # The first job's heartbeat is still within its 60 s: the sweep leaves it alone.
    lost.refresh_from_db()
    assert (lost.status, lost.progress, lost.finished_at) == (Status.RUNNING, 0.4, None)

    # Two workers died and the cluster still runs jobs: the guard respawned them.
    after = cluster.wait_for_status(jobs.add.enqueue(2, 3), Status.COMPLETED, Status.FAILED)
    assert (after.status, after.result) == (Status.COMPLETED, 5)
