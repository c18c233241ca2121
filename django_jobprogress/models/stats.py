"""``JobMinute``: jobs finished per minute, per task and outcome, with a histogram of
their run times, for the admin dashboard's charts and per-task figures.

Each job's end writes one ``JobEnd`` row in the same transaction as the end itself
(``count_end``; on PostgreSQL in the end's own statement): an append-only row, so no
worker ever waits on another's lock and the only index it touches is its key. The
recovery sweep folds those rows into ``JobMinute`` (``fold_ends``, part of
``compact``): O(1) per job, never a scan of the jobs table, and the counts outlive
``prune_jobs``, so the charts keep their history. The readers add the ends not yet
folded, so the charts are never a sweep behind. ``compact`` also folds minutes
older than a day into hour rows (shard ``HOURLY``), so a week's chart reads about
one row per task, bucket and hour.

Before ``JobEnd``, each end added to a ``JobMinute`` row of its own shard (the
worker's pid modulo ``SHARDS``); ``compact`` still folds such rows into shard 0.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

from django.db import connections, models, transaction
from django.utils.translation import gettext_lazy as _

from django_jobprogress.models.sql import fold_into, insert_row, upsert_add

SHARDS = 8
#: Run-time buckets: bucket ``b`` (1..BUCKETS) holds runs of at most ``bucket_limit(b)``
#: seconds (10 ms doubling, so the last one is about 23 hours); 0 holds runs with no
#: start (cancelled while pending).
BUCKETS = 24
FIRST_LIMIT = 0.01
OUTCOMES = ("completed", "failed", "cancelled")


def bucket_of(seconds: float | None) -> int:
    if seconds is None:
        return 0
    if seconds <= FIRST_LIMIT:
        return 1
    return min(BUCKETS, 1 + math.ceil(math.log2(seconds / FIRST_LIMIT)))


def bucket_limit(bucket: int) -> float:
    """The longest run time bucket ``bucket`` holds (its upper bound)."""
    return FIRST_LIMIT * 2 ** (bucket - 1)


class JobMinute(models.Model):
    """Jobs of one task that finished in one minute, in one run-time bucket."""

    minute = models.DateTimeField(_("minute"))
    task_name = models.CharField(_("task"), max_length=255)
    bucket = models.PositiveSmallIntegerField(_("run-time bucket"))
    shard = models.PositiveSmallIntegerField(_("shard"))
    completed = models.PositiveIntegerField(_("completed"), default=0)
    failed = models.PositiveIntegerField(_("failed"), default=0)
    cancelled = models.PositiveIntegerField(_("cancelled"), default=0)
    seconds = models.FloatField(_("total run time (s)"), default=0.0)

    class Meta:
        verbose_name = _("jobs finished per minute")
        verbose_name_plural = _("jobs finished per minute")
        constraints = [
            models.UniqueConstraint(
                fields=["minute", "task_name", "bucket", "shard"], name="jobprogress_minute_key"
            )
        ]
        # What ``compact`` looks for, without walking the hour rows it keeps forever.
        indexes = [
            models.Index(
                fields=["minute"],
                condition=models.Q(shard__lt=SHARDS),  # not the hour rows
                name="jobprogress_minute_unfolded",
            ),
            models.Index(
                fields=["minute"],
                condition=models.Q(shard__gt=0, shard__lt=SHARDS),
                name="jobprogress_minute_sharded",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.task_name} at {self.minute:%Y-%m-%d %H:%M}"


class JobEnd(models.Model):
    """One job's end, not yet folded into its ``JobMinute`` row (see the module)."""

    id = models.BigAutoField(primary_key=True)
    minute = models.DateTimeField(_("minute"))
    task_name = models.CharField(_("task"), max_length=255)
    bucket = models.PositiveSmallIntegerField(_("run-time bucket"))
    outcome = models.CharField(_("outcome"), max_length=16)
    seconds = models.FloatField(_("run time (s)"), default=0.0)

    class Meta:
        verbose_name = _("job end not yet counted")
        verbose_name_plural = _("job ends not yet counted")

    def __str__(self) -> str:
        return f"{self.task_name} {self.outcome} at {self.minute:%Y-%m-%d %H:%M}"


def end_row(
    task_name: str, outcome: str, finished: datetime, started: datetime | None
) -> dict[str, Any]:
    """The ``JobEnd`` row that counts one job's end."""
    run_time = None if started is None else max((finished - started).total_seconds(), 0.0)
    return {
        "minute": finished.replace(second=0, microsecond=0),
        "task_name": task_name,
        "bucket": bucket_of(run_time),
        "outcome": outcome,
        "seconds": run_time or 0.0,
    }


def count_end(
    using: str, task_name: str, outcome: str, finished: datetime, started: datetime | None
) -> None:
    """Count one job's end; call it inside the transaction of that end."""
    insert_row(JobEnd, connections[using], end_row(task_name, outcome, finished, started))


def fold_ends(using: str = "default", chunk: int = 5000, chunks: int = 20) -> int:
    """Fold the oldest ``JobEnd`` rows into ``JobMinute`` (shard 0), ``chunk`` per
    transaction and at most ``chunks`` transactions; return how many were folded.

    Each chunk's sums are added and its rows deleted in one transaction, so an end is
    never lost nor counted twice; sweepers folding at once take disjoint rows.
    """
    folded = 0
    for _chunk in range(chunks):
        with transaction.atomic(using=using):
            taken = fold_into(JobEnd, JobMinute, using, chunk, OUTCOMES)
        folded += taken
        if taken < chunk:
            break
    return folded


#: The shard of hour rows: minutes older than ``COMPACT_AFTER`` are folded into one
#: row per (hour, task, bucket), so a week's chart reads about 60 times fewer rows.
HOURLY = SHARDS
COMPACT_AFTER = timedelta(hours=26)
#: A minute's shards are folded into shard 0 once the minute is this old (a worker
#: whose clock is late may still add to it: its row is folded at the next pass).
FOLD_SHARDS_AFTER = timedelta(minutes=5)


def compact(now: datetime, using: str = "default", hours: int = 6, minutes: int = 120) -> int:
    """Fold the job ends not yet counted into their minutes (``fold_ends``), then the
    shards of the oldest not yet folded minutes (at most ``minutes``)
    that ended ``FOLD_SHARDS_AFTER`` before ``now`` into shard 0, then the minute
    rows of the oldest hours (at most ``hours``) that ended ``COMPACT_AFTER``
    before ``now`` into hour rows; return how many minutes and hours were folded.

    Each minute or hour is one transaction: its sums are added to the rows it is
    folded into and its rows deleted together, so a count is never lost nor counted
    twice, and any number of sweepers may do this at once (the deletes decide, under
    the rows' locks; a sweeper that finds its rows already folded adds nothing).
    """
    fold_ends(using)
    table = JobMinute.objects.using(using)
    folded = _fold_each(
        table.filter(shard__gt=0, shard__lt=HOURLY),
        now - FOLD_SHARDS_AFTER,
        timedelta(minutes=1),
        0,
        minutes,
        using,
    )
    return folded + _fold_each(
        table.filter(shard__lt=HOURLY),
        now - COMPACT_AFTER,
        timedelta(hours=1),
        HOURLY,
        hours,
        using,
    )


def _fold_each(
    rows: models.QuerySet[JobMinute],
    before: datetime,
    span: timedelta,
    into: int,
    limit: int,
    using: str,
) -> int:
    """Fold ``rows`` of the oldest spans (minutes or hours) that ended before
    ``before`` into shard ``into``, one span per transaction, at most ``limit``."""
    cutoff = _floor(before, span)
    folded = 0
    while folded < limit:
        oldest = rows.filter(minute__lt=cutoff).order_by("minute").values_list("minute").first()
        if oldest is None:
            break
        start = _floor(oldest[0], span)
        _fold(rows.filter(minute__gte=start, minute__lt=start + span), start, into, using)
        folded += 1
    return folded


def _floor(moment: datetime, span: timedelta) -> datetime:
    if span >= timedelta(hours=1):
        return moment.replace(minute=0, second=0, microsecond=0)
    return moment.replace(second=0, microsecond=0)


def _fold(rows: models.QuerySet[JobMinute], start: datetime, into: int, using: str) -> None:
    with transaction.atomic(using=using):
        # Lock and read the span's rows, then delete exactly those: a job's end that
        # commits into this span meanwhile (a worker whose clock is late) stays.
        taken = list(
            rows.select_for_update().values_list("pk", "task_name", "bucket", *OUTCOMES, "seconds")
        )
        sums: dict[tuple[str, int], list[float]] = {}
        for _pk, task_name, bucket, *values in taken:
            total = sums.setdefault((task_name, bucket), [0.0] * (len(OUTCOMES) + 1))
            for index, value in enumerate(values):
                total[index] += value
        deleted, _ = JobMinute.objects.using(using).filter(pk__in=[r[0] for r in taken]).delete()
        if deleted != len(taken):  # another sweeper folded it first: its sums stand
            transaction.set_rollback(True, using=using)
            return
        connection = connections[using]
        for (task_name, bucket), total in sums.items():
            key = {"minute": start, "task_name": task_name, "bucket": bucket, "shard": into}
            added = {name: int(total[i]) for i, name in enumerate(OUTCOMES)}
            upsert_add(JobMinute, connection, key, {**added, "seconds": total[-1]})
