"""``JobProgressBackend`` through a real qcluster (ORM broker): ``enqueue()`` here, the
task runs in a worker process, ``get_result()`` here reads what it did.

The cluster uses ``tests.backends.worker_settings`` (``TASKS`` names the backend)
and the live test database; the tests are transactional so the worker sees
committed rows. Nothing sleeps blindly: rows are polled against deadlines, gated
tasks move on only when the test opens their gate, sockets are read with timeouts.
"""

import json
import os
from pathlib import Path

import pytest
from channels.db import database_sync_to_async
from django.db import transaction

framework = pytest.importorskip(
    "django_jobprogress.backends.framework",
    reason="needs Django's task framework: Django >= 6.0 or the django-tasks backport",
    exc_type=ImportError,
)

from django_jobprogress.models import JobRecord  # noqa: E402
from tests.backends import tasks_jobs  # noqa: E402
from tests.test_live_push import communicator, next_snapshot  # noqa: E402
from tests.workers import DJANGO_Q2, Cluster, qcluster_env, require_postgres, row  # noqa: E402

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

Status = JobRecord.Status
TaskResultStatus = framework.TaskResultStatus
FINISHED = (Status.COMPLETED, Status.FAILED, Status.CANCELLED)


@pytest.fixture(scope="session", autouse=True)
def _require_postgres():
    require_postgres()


@pytest.fixture(scope="module")
def cluster(django_db_setup, tmp_path_factory):
    env = qcluster_env("tests.backends.worker_settings")
    log_path = tmp_path_factory.mktemp("qcluster") / "qcluster-tasks.log"
    with Cluster("django.tasks", env, log_path) as running:
        yield running


@pytest.fixture(autouse=True)
def enqueue_to_cluster(cluster, settings, monkeypatch):
    from django_q.conf import Conf

    settings.JOBPROGRESS = {**settings.JOBPROGRESS, "QUEUE_ADAPTER": DJANGO_Q2}
    monkeypatch.setattr(Conf, "ORM", "default")
    cluster.assert_alive()
    return cluster


def finished(cluster, result, timeout=30.0):
    """``result`` once its job has finished, read back with ``get_result``."""
    cluster.wait_for(
        lambda: JobRecord.objects.filter(pk=result.id, status__in=FINISHED).exists(),
        what=f"job {result.id} to finish",
        state=lambda: row(JobRecord(pk=result.id)),
        timeout=timeout,
    )
    return result.task.get_result(result.id)


def assert_ran_in_the_worker(result, cluster):
    [worker] = result.worker_ids
    pid = int(worker.rsplit(":", 1)[1])
    assert pid not in (os.getpid(), cluster.process.pid)


def test_success_round_trip_with_the_three_signals(cluster, tmp_path):
    log = tmp_path / "signals"
    result = tasks_jobs.signalled.enqueue(str(log))
    assert result.status == TaskResultStatus.READY
    done = finished(cluster, result)
    assert done.status == TaskResultStatus.SUCCESSFUL
    assert done.return_value == "ok"
    assert done.errors == []
    assert_ran_in_the_worker(done, cluster)
    # Sent in this process (enqueued) and in the worker (started, finished).
    cluster.wait_for(
        lambda: len(log.read_text().splitlines()) == 3,
        what="the three signals",
        state=lambda: log.read_text(),
    )
    assert log.read_text().splitlines() == [
        f"enqueued READY {result.id}",
        f"started RUNNING {result.id}",
        f"finished SUCCESSFUL {result.id}",
    ]


def test_failure_round_trip_names_the_class_with_its_traceback(cluster):
    result = tasks_jobs.explode.enqueue("disk full")
    done = finished(cluster, result)
    assert done.status == TaskResultStatus.FAILED
    [error] = done.errors
    assert error.exception_class_path == "tests.backends.tasks_jobs.ExportError"
    assert error.exception_class is tasks_jobs.ExportError
    assert "raise ExportError(text)" in error.traceback
    assert error.traceback.rstrip().endswith("ExportError: disk full")
    assert_ran_in_the_worker(done, cluster)


def test_cancel_round_trip(cluster, tmp_path):
    result = tasks_jobs.until_cancelled.enqueue(str(tmp_path))
    cluster.wait_for(lambda: (tmp_path / "started").exists(), what="the task to start")
    running = tasks_jobs.until_cancelled.get_result(result.id)
    assert running.status == TaskResultStatus.RUNNING
    assert JobRecord.objects.get(pk=result.id).request_cancel() is True
    done = finished(cluster, result)
    assert done.status == TaskResultStatus.FAILED
    [error] = done.errors
    assert error.exception_class_path == "django_jobprogress.exceptions.JobCancelled"
    record = JobRecord.objects.get(pk=result.id)
    assert record.status == Status.CANCELLED
    assert (record.stage, record.progress) == ("waiting", 0.1)


def test_a_task_enqueued_in_a_rolled_back_transaction_never_runs(cluster, tmp_path):
    from django_q.brokers import get_broker

    with pytest.raises(RuntimeError), transaction.atomic():
        lost = tasks_jobs.signalled.enqueue(str(tmp_path / "lost"))
        raise RuntimeError("roll back")
    with pytest.raises(framework.TaskResultDoesNotExist):
        tasks_jobs.signalled.get_result(lost.id)
    # Nothing reached the broker; a task enqueued after it runs, and alone.
    assert get_broker().queue_size() == 0
    after = finished(cluster, tasks_jobs.add.enqueue(1, 2))
    assert after.return_value == 3
    assert list(JobRecord.objects.values_list("task_name", flat=True)) == [
        "tests.backends.tasks_jobs.add"
    ]
    assert not (tmp_path / "lost").exists()


async def test_context_progress_reaches_a_socket(cluster, tmp_path, make_user):
    owner = await database_sync_to_async(make_user)()
    steps = 3
    enqueue = tasks_jobs.gated_steps.using_job(owner=owner).enqueue
    result = await database_sync_to_async(enqueue)(str(tmp_path), steps)
    comm = communicator(JobRecord(pk=result.id), owner)
    connected, _ = await comm.connect()
    assert connected
    try:
        first, _ = await next_snapshot(comm, cluster, 10, "the snapshot on connect")
        assert first["id"] == result.id
        seen = []
        for step in range(1, steps + 1):
            (Path(tmp_path) / str(step)).touch()
            while True:
                snapshot, _ = await next_snapshot(comm, cluster, 10, f"step {step}")
                if snapshot["current"] == step or snapshot["status"] in FINISHED:
                    break
            seen.append(snapshot)
        while seen[-1]["status"] not in FINISHED:
            seen.append((await next_snapshot(comm, cluster, 10, "the final snapshot"))[0])
    finally:
        for step in range(1, steps + 1):
            (Path(tmp_path) / str(step)).touch()
        await comm.disconnect()
    # Each step but the last (which may be coalesced into the end) arrived while running.
    running = seen[: steps - 1]
    assert [(s["status"], s["current"]) for s in running] == [
        ("running", step) for step in range(1, steps)
    ]
    assert all(s["stage"] == "stepping" and s["total"] == steps for s in running)
    final = seen[-1]
    assert final["status"] == "completed", json.dumps(final)
    assert final["result"] == {"steps": steps}
    got = await database_sync_to_async(tasks_jobs.gated_steps.get_result)(result.id)
    assert got.status == TaskResultStatus.SUCCESSFUL
    assert got.return_value == {"steps": steps}
