"""``JobMinute``: jobs finished per minute, per task and outcome, with a histogram of
their run times, for the admin dashboard's charts and per-task figures.

A job's end writes nothing for them but its own UPDATE, whose ``finished_at`` the
database's clock stamps (``models.sql.clock_sql``). The recovery sweep counts the
ends since its last count from the jobs table's (status, finished_at) index into
``JobMinute`` (``count_ends``, part of ``compact``), up to a time before which no end
can still commit, and keeps how far it read in ``EndsCounted``: each end is counted
exactly once (while the database's clock does not step back), O(1) per job and never
a scan of the jobs table, and the counts
outlive ``prune_jobs`` (which never deletes a job not counted yet), so the charts
keep their history. The readers add the ends not counted yet, so the charts are
never a sweep behind. ``compact`` also folds minutes older than a day into hour
rows (shard ``HOURLY``), so a week's chart reads about one row per task, bucket and
hour.

Before this, each end added to a ``JobMinute`` row of its own shard (the worker's
pid modulo ``SHARDS``), and then wrote a ``JobEnd`` row; ``compact`` still folds
such shards into shard 0.
"""

from __future__ import annotations

import bisect
import logging
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import OperationalError, connections, models, transaction
from django.utils.translation import gettext_lazy as _

from django_jobprogress.models.jobs import JobRecord
from django_jobprogress.models.sql import count_ended, database_now, upsert_add

logger = logging.getLogger(__name__)

SHARDS = 8
#: Run-time buckets: bucket ``b`` (1..BUCKETS) holds runs of at most ``bucket_limit(b)``
#: seconds (10 ms doubling, so the last one is about 23 hours); 0 holds runs with no
#: start (cancelled while pending).
BUCKETS = 24
FIRST_LIMIT = 0.01
OUTCOMES = ("completed", "failed", "cancelled")


def bucket_limit(bucket: int) -> float:
    """The longest run time bucket ``bucket`` holds (its upper bound)."""
    return FIRST_LIMIT * 2 ** (bucket - 1)


#: The buckets' upper bounds but the last's (which has none).
LIMITS = tuple(bucket_limit(bucket) for bucket in range(1, BUCKETS))


def bucket_of(seconds: float | None) -> int:
    """The run-time bucket of ``seconds``, as the database's counts compute it."""
    if seconds is None:
        return 0
    return bisect.bisect_left(LIMITS, seconds) + 1


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


class EndsCounted(models.Model):
    """How far the counts have read the jobs table: every job that ended before
    ``before`` is counted in ``JobMinute``, and none after it (one row; no row, or
    ``before`` unset, means nothing is counted yet)."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    before = models.DateTimeField(_("counted before"), null=True)
    #: PostgreSQL: a moment (the database's clock) and the id of a transaction that
    #: began writing after it. Once no transaction older than that id is running, every
    #: end stamped before the moment has committed (or rolled back): it can be counted.
    mark_at = models.DateTimeField(null=True)
    mark_xid = models.BigIntegerField(null=True)

    class Meta:
        verbose_name = _("job ends counted")
        verbose_name_plural = _("job ends counted")

    def __str__(self) -> str:
        return f"job ends counted before {self.before}"


#: The longest span of end times one statement of ``count_ends`` reads.
COUNT_SPAN = timedelta(minutes=10)
#: Elsewhere than PostgreSQL and SQLite: how long an end may take to commit.
COMMIT_GRACE = timedelta(minutes=5)


def count_ends(using: str = "default", spans: int = 20) -> int:
    """Count the jobs that ended since the last count into ``JobMinute`` (shard 0):
    at most ``spans`` spans of ``COUNT_SPAN`` of end times, one statement each, in
    one transaction with the move of ``EndsCounted.before``; return how many spans
    were read. Sweepers counting at once take turns (the others read nothing).

    It reads the jobs table's (status, finished_at) index up to a time before which
    no end can still commit (``_countable_before``), so each end is counted exactly
    once, and an end costs nothing but its own UPDATE. On PostgreSQL it waits at
    most 200 ms for a lock (a migration's, a TRUNCATE's) and otherwise leaves the
    count to the next pass, so that it never deadlocks with them.
    """
    try:
        return _count_ends(using, spans)
    except OperationalError as exc:
        if getattr(exc.__cause__, "sqlstate", None) != LOCK_NOT_AVAILABLE:
            raise
        logger.info("counting the job ends waited on a lock: left to the next pass")
        return 0


#: PostgreSQL's error for ``lock_timeout``: the count yields to whoever holds a lock
#: it needs (a migration, a TRUNCATE) instead of risking a deadlock with it.
LOCK_NOT_AVAILABLE = "55P03"


def _count_ends(using: str, spans: int) -> int:
    connection = connections[using]
    counted = EndsCounted.objects.using(using)
    own_transaction = not connection.in_atomic_block  # else SET LOCAL would outlive it
    with transaction.atomic(using=using):
        if connection.vendor == "postgresql":
            if own_transaction:
                with connection.cursor() as cursor:
                    cursor.execute("SET LOCAL lock_timeout = '200ms'")
            # The time, and whether this transaction has an id yet, before it has one.
            fresh, moment = _has_no_id_yet(using), database_now(using)
            counted.bulk_create([EndsCounted()], ignore_conflicts=True)
            state = counted.select_for_update(skip_locked=True).filter(pk=1).first()
        else:
            counted.bulk_create([EndsCounted()], ignore_conflicts=True)  # the write lock
            fresh, moment = True, database_now(using)  # the time under it
            state = counted.filter(pk=1).first()
        if state is None:
            return 0  # another sweeper is counting
        until, mark = _countable_before(using, state, moment, fresh)
        start = state.before
        if start is None and until is not None:  # the first count: from the first end
            start = _first_end(using, until) or until
        read = 0
        while start is not None and until is not None and start < until and read < spans:
            first = _first_end(using, until, start)
            if first is None:
                start = until
                break
            end = min(until, first + COUNT_SPAN)
            count_ended(JobRecord, JobMinute, using, start, end, OUTCOMES, LIMITS)
            start, read = end, read + 1
        counted.filter(pk=1).update(before=start, mark_at=mark[0], mark_xid=mark[1])
    return read


def _has_no_id_yet(using: str) -> bool:
    connection = connections[using]
    if connection.vendor != "postgresql":
        return True
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_current_xact_id_if_assigned() IS NULL")
        return bool(cursor.fetchone()[0])


def _countable_before(
    using: str, state: EndsCounted, moment: datetime, fresh: bool
) -> tuple[datetime | None, tuple[datetime | None, int | None]]:
    """A time before which every end stamped has committed or rolled back, and the
    mark to keep for the next count.

    SQLite: now. Each end is stamped under the write lock this count holds, so every
    end stamped before now has committed. PostgreSQL: the last count's mark, once
    no transaction older than the mark's id is running (``clock_sql`` stamps an end
    only after its transaction has an id, so an end stamped before the mark's time
    has a lower id); a new mark is then this count's start with this count's id,
    unless this count runs in a transaction that had an id before its start (then
    the id is not later than the start: no mark).
    """
    vendor = connections[using].vendor
    if vendor == "sqlite":
        return moment, (None, None)
    if vendor != "postgresql":
        return moment - COMMIT_GRACE, (None, None)
    with connections[using].cursor() as cursor:
        cursor.execute(
            "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint, "
            "pg_current_xact_id()::text::bigint"
        )
        oldest_running, own = cursor.fetchone()
    new_mark = (moment, own) if fresh else (None, None)
    if state.mark_xid is not None and state.mark_xid <= oldest_running:
        return state.mark_at, new_mark
    if state.mark_xid is None:
        return state.before, new_mark
    return state.before, (state.mark_at, state.mark_xid)  # not yet: wait for it


def _first_end(using: str, until: datetime, start: datetime | None = None) -> datetime | None:
    """The earliest end in [start, until): one probe of the index per outcome."""
    rows = JobRecord.objects.using(using).filter(finished_at__lt=until)
    if start is not None:
        rows = rows.filter(finished_at__gte=start)
    firsts: list[datetime] = []
    for outcome in OUTCOMES:
        first = rows.filter(status=outcome).order_by("finished_at").values_list("finished_at")
        found = first.first()
        if found is not None and found[0] is not None:
            firsts.append(found[0])
    return min(firsts, default=None)


def count_ends_through(moment: datetime, using: str = "default", passes: int = 5) -> datetime:
    """Count passes (at most ``passes``) until the ends before ``moment`` are counted
    (on PostgreSQL a pass counts up to the last one's mark); how far the counts go
    then (``EARLIEST`` if nothing is counted yet)."""
    counted = None
    for _pass in range(passes):
        count_ends(using)
        counted = counted_before(using)
        if counted is not None and counted >= moment:
            break
    return counted or earliest()


def earliest() -> datetime:
    """A time before any job's end: where counts start when nothing is counted yet."""
    return datetime(1, 1, 2, tzinfo=UTC if settings.USE_TZ else None)


def counted_before(using: str = "default") -> datetime | None:
    """``EndsCounted.before``: ends before it are in ``JobMinute``, later ones are
    not (None: nothing counted yet)."""
    return EndsCounted.objects.using(using).filter(pk=1).values_list("before", flat=True).first()


#: The shard of hour rows: minutes older than ``COMPACT_AFTER`` are folded into one
#: row per (hour, task, bucket), so a week's chart reads about 60 times fewer rows.
HOURLY = SHARDS
COMPACT_AFTER = timedelta(hours=26)
#: A minute's shards are folded into shard 0 once the minute is this old (a worker
#: whose clock is late may still add to it: its row is folded at the next pass).
FOLD_SHARDS_AFTER = timedelta(minutes=5)


def compact(now: datetime, using: str = "default", hours: int = 6, minutes: int = 120) -> int:
    """Count the job ends not yet counted into their minutes (``count_ends``), then the
    shards of the oldest not yet folded minutes (at most ``minutes``)
    that ended ``FOLD_SHARDS_AFTER`` before ``now`` into shard 0, then the minute
    rows of the oldest hours (at most ``hours``) that ended ``COMPACT_AFTER``
    before ``now`` into hour rows; return how many minutes and hours were folded.

    Each minute or hour is one transaction: its sums are added to the rows it is
    folded into and its rows deleted together, so a count is never lost nor counted
    twice, and any number of sweepers may do this at once (the deletes decide, under
    the rows' locks; a sweeper that finds its rows already folded adds nothing).
    """
    count_ends(using)
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
