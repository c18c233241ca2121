"""The per-minute counts behind the dashboard: the sweep counts each job's end from the
jobs table into its minute, task, outcome and run-time bucket, exactly once; the
dashboard's readers add the ends not counted yet; pruning keeps the counts."""

from datetime import timedelta

import pytest
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from django_jobprogress.models import JobMinute, JobRecord, stats
from django_jobprogress.models.stats import (
    COUNT_SPAN,
    HOURLY,
    SHARDS,
    bucket_limit,
    bucket_of,
    compact,
    count_ends,
    counted_before,
)
from django_jobprogress.pruning import prune
from django_jobprogress.rollups import finished_per_bin, runs_per_task
from tests.factories import count_every_end, start

# Transactional: on PostgreSQL a count reads up to a mark left by a count in an
# earlier transaction, as the sweep's passes do.
pytestmark = pytest.mark.django_db(transaction=True)


def counts(task="tests.jobs.add"):
    """The task's counts, once every end so far is counted."""
    count_every_end()
    return JobMinute.objects.filter(task_name=task).aggregate(
        completed=Sum("completed"), failed=Sum("failed"), cancelled=Sum("cancelled")
    )


def ended(outcome, task="tests.jobs.add", seconds=None):
    record = start(JobRecord.objects.create(task_name=task))
    if seconds is not None:
        started = timezone.now() - timedelta(seconds=seconds)
        JobRecord.objects.filter(pk=record.pk).update(started_at=started)
        record.refresh_from_db()
    assert record.complete() if outcome == "completed" else record.fail("boom")
    return record


def test_an_end_is_counted_into_its_minute_by_the_sweep_and_only_once():
    ended("completed")
    ended("completed")
    record = ended("failed")
    assert not JobMinute.objects.exists()  # the end wrote nothing but its own row

    count_every_end()
    row = JobMinute.objects.get()
    assert (row.shard, row.completed, row.failed, row.cancelled) == (0, 2, 1, 0)
    assert row.minute == record.finished_at.replace(second=0, microsecond=0)
    count_every_end()
    count_ends()
    assert JobMinute.objects.get() == row
    assert (row.completed, row.failed) == (2, 1)


def test_the_end_is_stamped_by_the_database_and_the_record_holds_that_stamp():
    before = timezone.now()
    record = ended("completed")
    stored = JobRecord.objects.get(pk=record.pk)
    assert record.finished_at == stored.finished_at
    assert (
        before - timedelta(seconds=5) < stored.finished_at < timezone.now() + timedelta(seconds=5)
    )


def test_the_count_adds_to_the_counts_already_in_its_minute():
    record = ended("completed", seconds=0.5)
    count_every_end()
    ended("completed", seconds=0.5)
    ended("failed", seconds=0.5)
    count_every_end()
    row = JobMinute.objects.get()
    assert (row.completed, row.failed) == (2, 1)
    assert row.minute == record.finished_at.replace(second=0, microsecond=0)
    assert 1.5 <= row.seconds < 1.6


def test_a_count_reads_bounded_spans_and_leaves_the_rest_for_the_next_pass():
    now = timezone.now()
    for minutes_ago in (50, 35, 20, 5):
        record = ended("completed")
        moved = now - timedelta(minutes=minutes_ago)
        JobRecord.objects.filter(pk=record.pk).update(finished_at=moved)
    first = now - timedelta(minutes=50)

    read = [count_ends(spans=1) for _pass in range(3)]  # PostgreSQL's first only marks
    assert sum(read) in (2, 3)
    folded = JobMinute.objects.aggregate(n=Sum("completed"))["n"]
    assert folded == sum(read)  # one span of COUNT_SPAN each, each from the next end
    assert (
        counted_before()
        == [first, now - timedelta(minutes=35), now - timedelta(minutes=20)][sum(read) - 1]
        + COUNT_SPAN
    )
    assert counts()["completed"] == 4


def test_the_dashboard_readers_count_ends_not_yet_counted():
    now = timezone.now()
    start_at = (now - timedelta(minutes=30)).replace(second=0, microsecond=0)
    ended("completed", seconds=0.5)
    ended("failed", seconds=30)
    count_every_end()
    ended("completed", seconds=0.5)  # not counted yet

    def shown():
        bins = finished_per_bin(start_at, 60, 1)
        tasks = runs_per_task(start_at, start_at + timedelta(hours=1))
        return [b for b in bins if any(b)], [
            (t.name, t.completed, t.failed, t.histogram, round(t.seconds, 3)) for t in tasks
        ]

    before = shown()
    [task] = runs_per_task(start_at, start_at + timedelta(hours=1))
    assert (task.completed, task.failed, sum(task.histogram.values())) == (2, 1, 3)
    assert task.histogram[bucket_of(0.5)] == 2
    assert task.histogram[bucket_of(30)] == 1
    assert sum(sum(b) for b in finished_per_bin(start_at, 60, 1)) == 3
    count_every_end()
    assert JobMinute.objects.aggregate(n=Sum("completed"))["n"] == 2
    assert shown() == before  # counting changes nothing the dashboard shows


def test_each_end_is_counted_once_by_outcome():
    done, broken, running = (JobRecord.objects.create(task_name="tests.jobs.add") for _ in "abc")
    for record in (done, broken, running):
        start(record)
    assert done.complete(5) and broken.fail("boom")
    assert not done.complete(6)  # an end that lost changes nothing
    pending = JobRecord.objects.create(task_name="tests.jobs.add")
    assert pending.request_cancel()

    assert counts() == {"completed": 1, "failed": 1, "cancelled": 1}
    minute = JobMinute.objects.filter(completed=1).get()
    done.refresh_from_db()
    assert minute.minute == done.finished_at.replace(second=0, microsecond=0)
    # The cancelled-while-pending job never started: no run time, bucket 0.
    assert JobMinute.objects.get(cancelled=1).bucket == 0


def test_run_time_lands_in_its_bucket_and_sums():
    record = start(JobRecord.objects.create(task_name="tests.jobs.add"))
    JobRecord.objects.filter(pk=record.pk).update(started_at=timezone.now() - timedelta(seconds=3))
    record.refresh_from_db()
    record.complete()
    count_every_end()
    row = JobMinute.objects.get()
    assert bucket_limit(row.bucket - 1) < 3 <= bucket_limit(row.bucket)
    assert 3 <= row.seconds < 4


@pytest.mark.parametrize(
    ("seconds", "bucket"),
    [(None, 0), (0.0, 1), (0.01, 1), (0.011, 2), (0.02, 2), (1.0, 8), (10**9, 24)],
)
def test_buckets(seconds, bucket):
    assert bucket_of(seconds) == bucket


def test_an_end_rolled_back_is_not_counted():
    record = start(JobRecord.objects.create(task_name="tests.jobs.add"))
    with pytest.raises(RuntimeError), transaction.atomic():
        record.complete()
        raise RuntimeError("the caller's transaction fails")
    assert JobRecord.objects.get().status == JobRecord.Status.RUNNING
    assert counts() == {"completed": None, "failed": None, "cancelled": None}


def test_prune_leaves_the_jobs_not_counted_yet(monkeypatch):
    record = ended("completed")
    # A count that cannot move yet (on PostgreSQL: a transaction older than its mark).
    monkeypatch.setattr(stats, "count_ends", lambda using="default": 0)
    report = prune(timezone.now() + timedelta(seconds=1))
    assert report.jobs["completed"] == 0
    assert JobRecord.objects.filter(pk=record.pk).exists()

    monkeypatch.undo()
    count_every_end()
    assert prune(timezone.now() + timedelta(seconds=1)).jobs["completed"] == 1
    assert counts()["completed"] == 1


def test_counts_outlive_prune_jobs():
    record = start(JobRecord.objects.create(task_name="tests.jobs.add"))
    record.complete()
    count_every_end()
    prune(timezone.now() + timedelta(seconds=1))
    assert not JobRecord.objects.exists()
    assert counts()["completed"] == 1


def minute_row(minute, shard=0, bucket=3, **counts):
    return JobMinute.objects.create(
        minute=minute, task_name="tests.jobs.add", bucket=bucket, shard=shard, **counts
    )


def test_minutes_older_than_a_day_are_folded_into_hour_rows_without_losing_a_count():
    now = timezone.now().replace(minute=30, second=0, microsecond=0)
    old_hour = (now - timedelta(days=2)).replace(minute=0)
    for minute in range(0, 60, 10):
        for shard in (0, 5):
            minute_row(old_hour + timedelta(minutes=minute), shard, completed=2, seconds=1.5)
    minute_row(old_hour + timedelta(minutes=5), bucket=9, failed=1, seconds=30.0)
    recent = minute_row(now - timedelta(hours=2), completed=7)
    before = counts()

    assert compact(now) == 6 + 1  # six minutes' shards, then their hour
    assert compact(now) == 0  # nothing left to fold

    assert counts() == before  # every count kept
    hourly = JobMinute.objects.filter(shard=HOURLY).order_by("bucket")
    assert [(r.minute, r.bucket, r.completed, r.failed, r.seconds) for r in hourly] == [
        (old_hour, 3, 24, 0, 18.0),
        (old_hour, 9, 0, 1, 30.0),
    ]
    assert set(JobMinute.objects.exclude(shard=HOURLY)) == {recent}


def test_a_late_minute_row_is_folded_into_its_hour_row_later():
    now = timezone.now()
    old_hour = (now - timedelta(days=3)).replace(minute=0, second=0, microsecond=0)
    minute_row(old_hour, completed=1)
    compact(now)
    minute_row(old_hour + timedelta(minutes=1), completed=1)  # a worker whose clock lagged
    compact(now)
    assert list(JobMinute.objects.values_list("shard", "completed")) == [(HOURLY, 2)]


def test_the_shards_of_a_minute_are_folded_into_shard_0_once_it_is_5_minutes_old():
    now = timezone.now().replace(second=30, microsecond=0)
    settled = (now - timedelta(minutes=10)).replace(second=0)
    fresh = (now - timedelta(minutes=2)).replace(second=0)
    for shard in range(SHARDS):
        minute_row(settled, shard, completed=shard, failed=1, seconds=0.5)
        minute_row(settled, shard, bucket=4, cancelled=1)
    fresh_rows = {minute_row(fresh, shard, completed=1) for shard in (0, 3)}
    before = counts()

    assert compact(now) == 1
    assert compact(now) == 0

    assert counts() == before
    folded = JobMinute.objects.filter(minute=settled).order_by("bucket")
    assert [(r.shard, r.bucket, r.completed, r.failed, r.cancelled, r.seconds) for r in folded] == [
        (0, 3, sum(range(SHARDS)), SHARDS, 0, 0.5 * SHARDS),
        (0, 4, 0, 0, SHARDS, 0.0),
    ]
    assert set(JobMinute.objects.filter(minute=fresh)) == fresh_rows
