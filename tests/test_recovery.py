"""The recovery sweep, in-process on the InMemoryQueue double (whose ``queued`` list
plays the broker: removing ids from it is a broker that lost messages)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from django_jobprogress.adapters.base import QueueAdapter
from django_jobprogress.models import WORKER_LOST, Batch, JobRecord
from django_jobprogress.recovery import redeliver_lost, sweep
from tests import jobs

pytestmark = pytest.mark.django_db(transaction=True)  # hand-offs run on commit

Status = JobRecord.Status
LATER = timedelta(minutes=5)  # past every default limit (stall 60 s, redeliver 60 s)


def running(task, *args, fields=None, **kwargs):
    """A job of ``task`` whose worker claimed it (and then, for the sweep, vanished)."""
    record = task.enqueue(*args, **kwargs)
    if fields:
        JobRecord.objects.filter(pk=record.pk).update(**fields)
    claimed = JobRecord.objects.claim(record.pk, host="lost-host", pid=999)
    assert claimed is not None
    return claimed


def stored(record):
    return JobRecord.objects.get(pk=record.pk)


def test_a_lost_job_with_attempts_left_is_rescued_and_runs_again(memory_queue):
    record = running(jobs.Flaky, succeed_on=2)  # max_attempts = 3
    memory_queue.clear()  # the worker took the message, then died

    report = sweep(timezone.now() + LATER)

    assert (report.rescued, report.failed_lost) == (1, 0)
    rescued = stored(record)
    assert (rescued.status, rescued.attempts, rescued.error) == ("pending", 1, WORKER_LOST)
    assert (rescued.worker_host, rescued.worker_pid, rescued.stale_after) == ("", None, None)
    assert memory_queue.queued == [str(record.pk)]  # handed to the queue again

    memory_queue.run_pending()
    done = stored(record)
    # The lost attempt counted: the run after it is attempt 2, and succeeds.
    assert (done.status, done.attempts, done.result, done.error) == (
        "completed",
        2,
        {"attempt": 2},
        "",
    )


def test_a_lost_job_with_no_attempt_left_fails_worker_lost(memory_queue):
    record = running(jobs.add, 1, 2)  # one attempt
    memory_queue.clear()

    report = sweep(timezone.now() + LATER)

    assert (report.rescued, report.failed_lost) == (0, 1)
    failed = stored(record)
    assert (failed.status, failed.error, failed.attempts) == ("failed", WORKER_LOST, 1)
    assert failed.finished_at is not None
    assert memory_queue.queued == []  # never run beyond its attempts


def test_a_healthy_running_job_is_left_alone(memory_queue):
    record = running(jobs.Flaky, succeed_on=1)
    assert not sweep()
    assert stored(record).status == Status.RUNNING


def test_a_silent_job_fails_with_its_progress_timeout(memory_queue):
    record = running(jobs.add, 1, 2, fields={"progress_timeout": 30, "stall_timeout": 600})
    report = sweep(timezone.now() + timedelta(seconds=31))
    assert report.failed_silent == 1
    assert (stored(record).status, stored(record).error) == ("failed", "no progress after 30 s")


def test_each_lost_job_is_rescued_once_however_many_sweep(memory_queue):
    records = [running(jobs.Flaky, succeed_on=9) for _ in range(3)]
    memory_queue.clear()
    later = timezone.now() + LATER

    assert sweep(later).rescued == 3
    assert not sweep(later)  # a second sweeper finds nothing left to do
    assert sorted(memory_queue.queued) == sorted(str(r.pk) for r in records)


def test_a_redelivery_that_retook_the_job_wins_over_the_sweep(memory_queue):
    record = running(jobs.Flaky, succeed_on=9)
    later = timezone.now() + LATER
    retaken = JobRecord.objects.claim(record.pk, host="new-host", pid=1, now=later)
    assert retaken is not None and retaken.attempts == 2

    # The sweep read the row as stale before the retake: its guarded rescue loses.
    assert stored(record).recover_lost(later) is False
    assert (stored(record).status, stored(record).worker_host) == ("running", "new-host")


def test_a_lost_batch_member_counts_in_its_batch(memory_queue):
    with Batch.open("mails", on_complete=jobs.add) as batch:
        member = jobs.add.enqueue(1, 2, batch=batch)
    JobRecord.objects.claim(member.pk, host="lost-host", pid=999)
    memory_queue.clear()

    assert sweep(timezone.now() + LATER).failed_lost == 1

    batch.refresh_from_db()
    assert (batch.status, batch.failed) == ("failed", 1)
    assert batch.on_complete_enqueued_at is not None  # the callback fires once
    assert JobRecord.objects.filter(task_name="tests.jobs.add", batch=None).count() == 1


# -- pending jobs whose message is missing ------------------------------------------------


def test_a_job_the_queue_refused_is_handed_off_at_the_next_sweep(memory_queue, monkeypatch):
    def refuse(self, record, options):
        raise ConnectionError("broker down")

    monkeypatch.setattr(memory_queue, "enqueue", refuse)
    record = jobs.add.enqueue(1, 2)
    assert (stored(record).status, stored(record).handed_off_at) == ("pending", None)
    assert sweep().handed_off == 0  # the queue is still down: it stays pending
    assert stored(record).handed_off_at is None

    monkeypatch.undo()
    assert sweep().handed_off == 1
    assert memory_queue.queued == [str(record.pk)]
    memory_queue.run_pending()
    assert stored(record).status == Status.COMPLETED


def test_lost_messages_are_handed_off_again_and_run_once(memory_queue):
    records = [jobs.add.enqueue(i, 1) for i in range(5)]
    del memory_queue.queued[:3]  # the broker restarted and lost the three oldest

    # Not before REDELIVER_AFTER: a message may still be on its way.
    assert redeliver_lost(timezone.now()) == 0
    assert redeliver_lost(timezone.now() + LATER) == 3

    assert sorted(memory_queue.queued) == sorted(str(r.pk) for r in records)
    assert memory_queue.run_pending() == 5
    assert [stored(r).result for r in records] == [1, 2, 3, 4, 5]
    assert {stored(r).attempts for r in records} == {1}
    # Handed off again just now: the next sweeps leave them alone.
    assert redeliver_lost(timezone.now() + LATER) == 0


def test_a_long_honest_backlog_is_never_sent_twice(memory_queue):
    for i in range(50):
        jobs.add.enqueue(i, 1)
    for _ in range(3):
        assert redeliver_lost(timezone.now() + LATER) == 0
    assert len(memory_queue.queued) == 50


def test_a_dropped_duplicate_does_not_hide_a_later_crash(memory_queue):
    """The duplicate delivery of a running job is dropped and acknowledged; when the
    real worker then dies, the sweep (not the lost message) brings the job back."""
    record = jobs.Flaky.enqueue(succeed_on=2)
    memory_queue.clear()
    assert JobRecord.objects.claim(record.pk, host="real", pid=1) is not None
    assert JobRecord.objects.claim(record.pk, host="duplicate", pid=2) is None  # dropped

    report = sweep(timezone.now() + LATER)  # the real worker died meanwhile

    assert report.rescued == 1
    memory_queue.run_pending()
    assert (stored(record).status, stored(record).attempts) == ("completed", 2)


class CountlessQueue(QueueAdapter):
    """A queue that cannot say how many messages it holds (``waiting_count`` is None)."""

    sent: list[str] = []

    def enqueue(self, record, options):
        self.sent.append(str(record.pk))
        return ""


def test_a_queue_that_cannot_count_gets_no_guessed_redeliveries(settings):
    settings.JOBPROGRESS = {
        **settings.JOBPROGRESS,
        "QUEUE_ADAPTER": "tests.test_recovery.CountlessQueue",
    }
    CountlessQueue.sent.clear()
    record = jobs.add.enqueue(1, 2)
    assert redeliver_lost(timezone.now() + LATER) == 0
    assert CountlessQueue.sent == [str(record.pk)]
