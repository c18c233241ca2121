"""Reading the per-minute counts (``JobMinute``) for the dashboard: jobs finished per
bin of a range, and each task's runs with its run-time histogram.

Both read only the range's rows, through the unique index that starts with the
minute, and add them up in the database, bins included: a 7-day chart returns one
row per bin (168), not one per minute (10,080). Each adds the ends the sweep has
not counted yet (jobs that ended after ``EndsCounted.before``, the last seconds'
worth, on the jobs' (status, finished_at) index), so what it shows is current.
"""

from __future__ import annotations

import calendar
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import NotSupportedError, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import (
    Count,
    DateTimeField,
    FloatField,
    Func,
    IntegerField,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
)
from django.db.models.functions import Coalesce, Greatest
from django.db.models.sql.compiler import SQLCompiler

from django_jobprogress.models import EndsCounted, JobMinute, JobRecord
from django_jobprogress.models.sql import bucket_sql, run_seconds_sql
from django_jobprogress.models.stats import LIMITS, OUTCOMES, earliest

Params = tuple[Any, ...]


class _Sql(Func):
    """A ``Func`` whose SQL ``sql()`` writes (``as_<vendor>`` methods still come first)."""

    def as_sql(
        self,
        compiler: SQLCompiler,
        connection: BaseDatabaseWrapper,
        function: str | None = None,
        template: str | None = None,
        arg_joiner: str | None = None,
        **extra: Any,
    ) -> tuple[str, Params]:
        return self.sql(compiler, connection)

    def sql(self, compiler: SQLCompiler, connection: BaseDatabaseWrapper) -> tuple[str, Params]:
        raise NotImplementedError


class _Bin(_Sql):
    """Which ``minutes``-wide bin, counted from ``start``, a datetime column falls in.
    Each backend has its own cheapest SQL; the database then adds up each bin."""

    def __init__(self, column: str, start: datetime, minutes: int) -> None:
        super().__init__(column)
        self.start = start
        self.seconds = int(minutes) * 60

    def sql(self, compiler: SQLCompiler, connection: BaseDatabaseWrapper) -> tuple[str, Params]:
        raise NotSupportedError(
            f"the dashboard's bins need PostgreSQL or SQLite, not {connection.vendor}"
        )


class BinStart(_Bin):
    """PostgreSQL: the bin's start, by ``date_bin`` (14+) or epoch arithmetic."""

    output_field = DateTimeField()

    def as_postgresql(
        self, compiler: SQLCompiler, connection: BaseDatabaseWrapper, **extra: Any
    ) -> tuple[str, Params]:
        column, params = compiler.compile(self.source_expressions[0])
        start = connection.ops.adapt_datetimefield_value(self.start)
        if connection.pg_version >= 140000:  # type: ignore[attr-defined]
            sql = f"date_bin('{self.seconds} seconds'::interval, {column}, %s::timestamptz)"
            return sql, (*params, start)
        # date_part (float8), not EXTRACT (numeric): several times cheaper per row.
        offset = f"floor(date_part('epoch', {column} - %s::timestamptz) / {self.seconds})"
        sql = f"(%s::timestamptz + {offset} * '{self.seconds} seconds'::interval)"
        return sql, (start, *params, start)


class BinNumber(_Bin):
    """SQLite: the bin's number, in integer arithmetic on the stored text (one
    ``strftime`` per row, no date formatting)."""

    output_field = IntegerField()

    def as_sqlite(
        self, compiler: SQLCompiler, connection: BaseDatabaseWrapper, **extra: Any
    ) -> tuple[str, Params]:
        column, params = compiler.compile(self.source_expressions[0])
        epoch = calendar.timegm(self.start.utctimetuple())  # strftime reads the text as UTC
        sql = f"((CAST(strftime('%%s', {column}) AS INTEGER) - %s) / {self.seconds})"
        return sql, (*params, epoch)


class RunSeconds(_Sql):
    """A job's run time in seconds (``models.sql.run_seconds_sql``)."""

    output_field = FloatField()

    def __init__(self) -> None:
        super().__init__("finished_at", "started_at")

    def sql(self, compiler: SQLCompiler, connection: BaseDatabaseWrapper) -> tuple[str, Params]:
        finished, started = (compiler.compile(e)[0] for e in self.source_expressions)
        return run_seconds_sql(connection, finished, started), ()


class RunBucket(_Sql):
    """A job's run-time bucket (``models.stats.bucket_of``, computed by the database)."""

    output_field = IntegerField()

    def __init__(self) -> None:
        super().__init__(RunSeconds())

    def sql(self, compiler: SQLCompiler, connection: BaseDatabaseWrapper) -> tuple[str, Params]:
        seconds, params = compiler.compile(self.source_expressions[0])
        return bucket_sql(seconds, LIMITS), tuple(params) * (len(LIMITS) + 1)


def _not_counted(start: datetime, end: datetime) -> QuerySet[JobRecord]:
    """The jobs that ended in [start, end) and are not in the counts yet: one range
    of the (status, finished_at) index, from the later of ``start`` and
    ``EndsCounted.before``."""
    before = Subquery(EndsCounted.objects.filter(pk=1).values("before"))
    since = Greatest(
        Value(start, output_field=DateTimeField()),
        Coalesce(before, Value(earliest(), output_field=DateTimeField())),
    )
    return JobRecord.objects.filter(
        status__in=OUTCOMES, finished_at__gte=since, finished_at__lt=end
    )


def _outcome_sums() -> dict[str, Sum]:
    return {outcome: Sum(outcome) for outcome in OUTCOMES}


def _outcome_counts() -> dict[str, Count]:
    return {outcome: Count("pk", filter=Q(status=outcome)) for outcome in OUTCOMES}


def finished_per_bin(start: datetime, bins: int, minutes: int) -> list[list[int]]:
    """``bins`` lists of (completed, failed, cancelled): the jobs finished in each
    ``minutes``-wide bin from ``start``. One GROUP BY bin of the counts, one of the
    ends not yet counted."""
    width = timedelta(minutes=minutes)
    end = start + width * bins
    counted: QuerySet[Any] = JobMinute.objects.filter(minute__gte=start, minute__lt=end)
    sqlite = connections[counted.db].vendor == "sqlite"
    values = [[0] * len(OUTCOMES) for _bin in range(bins)]
    for rows, column, totals in (
        (counted, "minute", _outcome_sums()),
        (_not_counted(start, end), "finished_at", _outcome_counts()),
    ):
        per_bin: Iterable[Mapping[str, Any]] = (
            rows.annotate(bin=(BinNumber if sqlite else BinStart)(column, start, minutes))
            .values("bin")
            .annotate(**totals)
            .order_by()
        )
        for row in per_bin:
            index = row["bin"] if sqlite else round((row["bin"] - start) / width)
            if 0 <= index < bins:
                values[index] = [a + row[b] for a, b in zip(values[index], OUTCOMES, strict=True)]
    return values


@dataclass
class TaskRuns:
    """One task's runs over a range: outcomes, total run time, and how many runs
    took each run-time bucket (``models.stats.bucket_limit``; runs that never
    started, bucket 0, are left out)."""

    name: str
    completed: int = 0
    failed: int = 0
    cancelled: int = 0
    seconds: float = 0.0
    histogram: dict[int, int] = field(default_factory=dict)

    @property
    def runs(self) -> int:
        return self.completed + self.failed + self.cancelled

    @property
    def started(self) -> int:
        return sum(self.histogram.values())


def runs_per_task(start: datetime, end: datetime) -> list[TaskRuns]:
    """Each task that finished jobs in [start, end), busiest first. One GROUP BY
    (task, bucket) of the counts, one of the ends not yet counted."""
    tasks: dict[str, TaskRuns] = {}
    counted = (
        JobMinute.objects.filter(minute__gte=start, minute__lt=end)
        .values("task_name", "bucket")
        .annotate(**_outcome_sums(), seconds=Sum("seconds"))
    )
    not_counted = (
        _not_counted(start, end)
        .annotate(bucket=RunBucket())
        .values("task_name", "bucket")
        .annotate(**_outcome_counts(), seconds=Sum(RunSeconds()))
    )
    for rows in (counted, not_counted):
        per_bucket: Iterable[Mapping[str, Any]] = rows.order_by()
        for row in per_bucket:
            task = tasks.setdefault(row["task_name"], TaskRuns(row["task_name"]))
            task.completed += row["completed"]
            task.failed += row["failed"]
            task.cancelled += row["cancelled"]
            task.seconds += row["seconds"] or 0.0
            runs = sum(row[outcome] for outcome in OUTCOMES)
            if row["bucket"] and runs:
                task.histogram[row["bucket"]] = task.histogram.get(row["bucket"], 0) + runs
    return sorted(tasks.values(), key=lambda task: (-task.runs, task.name))


def percentile_bucket(histogram: Mapping[int, int], fraction: float) -> int | None:
    """The bucket holding the ``fraction`` quantile of the runs (nearest rank)."""
    runs = sum(histogram.values())
    if not runs:
        return None
    rank, seen = max(1, math.ceil(round(fraction * runs, 9))), 0  # 0.7 * 10 is 7.000...1
    for bucket in sorted(histogram):
        seen += histogram[bucket]
        if seen >= rank:
            return bucket
    return max(histogram)
