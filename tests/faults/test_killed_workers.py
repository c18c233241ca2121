"""Workers killed with SIGKILL mid-job, on a real cluster: the cluster's own sweep
closes or rescues each job, with nothing for anyone to call."""

import os
import signal
import time

import pytest

from django_jobprogress.models import WORKER_LOST, Batch, JobRecord
from tests.faults.conftest import running_with_worker, wait_until
from tests.faults.jobs import Holder, RetriedHolder, batch_done, quick, runs

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


def kill_worker_of(cluster, record):
    """SIGKILL the worker running ``record``; return when it died (monotonic)."""
    row = running_with_worker(cluster, record)
    os.kill(row.worker_pid, signal.SIGKILL)
    return time.monotonic()


def settled(record):
    """The job is finished, or PENDING/RUNNING again in another attempt."""
    row = JobRecord.objects.get(pk=record.pk)
    return row.is_finished or row.attempts > 1


def test_sigkill_single_attempt_job_fails_worker_lost_and_never_runs_again(clusters, log, report):
    cluster = clusters()
    record = Holder.enqueue(log)  # one attempt

    killed_at = kill_worker_of(cluster, record)
    wait_until([cluster], lambda: settled(record), "the sweep to close the job")
    recovery = time.monotonic() - killed_at

    # Another job runs after it: the cluster replaced its worker and is healthy.
    after = quick.enqueue(log)
    cluster.wait_for_status(after, "completed")
    stored = report([record, after], log, recovery_s=recovery, expected=["failed", "completed"])
    lost = stored[str(record.pk)]
    assert (lost.error, lost.attempts, runs(log)[str(record.pk)]) == (WORKER_LOST, 1, 1)


def test_sigkill_multi_attempt_job_is_rescued_and_completes(clusters, log, report):
    cluster = clusters()
    record = RetriedHolder.enqueue(log, finish_on=2)  # three attempts

    killed_at = kill_worker_of(cluster, record)
    wait_until([cluster], lambda: settled(record), "the sweep to rescue the job")
    recovery = time.monotonic() - killed_at
    done = cluster.wait_for_status(record, "completed")

    report([record], log, recovery_s=recovery, expected=["completed"])
    assert (done.attempts, done.result, runs(log)[str(record.pk)]) == (2, 2, 2)
    assert done.error == ""  # the lost attempt's "worker lost" no longer describes it


def test_sigkill_batch_member_the_batch_completes_and_its_callback_runs_once(clusters, log, report):
    cluster = clusters()
    with Batch.open("blast", on_complete=batch_done, callback_kwargs={"log": log}) as batch:
        held = RetriedHolder.enqueue(log, finish_on=2, batch=batch)
        others = [quick.enqueue(log, batch=batch) for _ in range(5)]

    killed_at = kill_worker_of(cluster, held)
    wait_until([cluster], lambda: settled(held), "the sweep to rescue the member")
    recovery = time.monotonic() - killed_at
    wait_until(
        [cluster],
        lambda: runs(log, "callback"),
        "the batch's callback to run",
        state=lambda: Batch.objects.filter(pk=batch.pk).values().first(),
    )

    report([held, *others], log, recovery_s=recovery, expected=["completed"] * 6)
    batch.refresh_from_db()
    assert (batch.status, batch.succeeded, batch.failed) == ("completed", 6, 0)
    callbacks = JobRecord.objects.filter(task_name="tests.faults.jobs.batch_done")
    assert callbacks.count() == 1
    cluster.wait_for_status(callbacks.get(), "completed")
    assert sum(runs(log, "callback").values()) == 1


def test_retry_shorter_than_the_run_then_the_worker_killed(clusters, log, report):
    """django-q2 re-presents the message after 1 s; the duplicate is dropped and
    acknowledged, so the message is gone when the real worker then dies."""
    from django_q.models import OrmQ

    cluster = clusters(retry=1, timeout=60, workers=4)  # free workers take the duplicates
    single = Holder.enqueue(log)
    retried = RetriedHolder.enqueue(log, finish_on=2)
    for record in (single, retried):
        running_with_worker(cluster, record)
    wait_until(
        [cluster],
        lambda: not OrmQ.objects.exists(),
        "the duplicate deliveries to be dropped and acknowledged",
    )
    assert {r.status for r in JobRecord.objects.all()} == {"running"}, (
        list(JobRecord.objects.values("status", "attempts", "error", "result")),
        runs(log),
        cluster.log_tail(80),
    )

    killed_at = time.monotonic()
    for record in (single, retried):
        os.kill(JobRecord.objects.get(pk=record.pk).worker_pid, signal.SIGKILL)
    wait_until(
        [cluster],
        lambda: settled(single) and settled(retried),
        "the sweep to close or rescue both jobs",
    )
    recovery = time.monotonic() - killed_at
    cluster.wait_for_status(retried, "completed")

    stored = report([single, retried], log, recovery_s=recovery, expected=["failed", "completed"])
    assert stored[str(single.pk)].error == WORKER_LOST
    assert stored[str(retried.pk)].attempts == 2
