"""Pruning finished jobs: by status, on the (status, finished_at) index, in chunks.

A job goes when it finished before the cutoff, unless its batch has not
finished (a batch needs its members until its callbacks are enqueued). A
finished batch goes with its last member. Each chunk is its own short
transaction, so a prune never holds locks for long, and a huge table never
becomes one huge delete. SQLite has one writer at a time: there a prune rests
between chunks (``SQLITE_REST`` times as long as the chunk took), so workers'
writes get the database most of the time while it runs.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import connection, transaction
from django.db.models import Q, QuerySet

from django_jobprogress.models import Batch, JobRecord
from django_jobprogress.models.stats import count_ends_through

FINISHED = (JobRecord.Status.COMPLETED, JobRecord.Status.FAILED, JobRecord.Status.CANCELLED)
#: On SQLite, the rest after each chunk, as a multiple of the time the chunk took.
SQLITE_REST = 3.0


@dataclass
class PruneReport:
    jobs: dict[str, int] = field(default_factory=dict)
    batches: int = 0
    chunks: int = 0
    longest_chunk_s: float = 0.0
    stopped_early: bool = False


def prunable_jobs(status: str, before: datetime, task: str | None = None) -> QuerySet[JobRecord]:
    """Jobs of ``status`` finished before ``before`` whose batch (if any) has finished."""
    rows = JobRecord.objects.filter(status=status, finished_at__lt=before).filter(
        Q(batch__isnull=True) | Q(batch__finished_at__isnull=False)
    )
    return rows.filter(task_name=task) if task else rows


def prunable_batches(before: datetime) -> QuerySet[Batch]:
    """Finished batches, finished before ``before``, with no member left."""
    return Batch.objects.filter(finished_at__lt=before, jobs__isnull=True)


def prune(
    before: datetime,
    statuses: Iterable[str] = FINISHED,
    *,
    task: str | None = None,
    chunk_size: int = 1000,
    dry_run: bool = False,
    time_limit: float | None = None,
) -> PruneReport:
    """Delete (or, with ``dry_run``, count) what may go; return what was done.

    A job not in the dashboard's counts yet stays: the ends are counted first (a
    few passes of the sweep's count, on PostgreSQL the first may only leave its
    mark), and ``before`` goes no later than the count reached. A dry run counts
    nothing and shows what a run would delete once the ends are counted."""
    report = PruneReport()
    if not dry_run:
        before = min(before, count_ends_through(before, passes=3))
    started = time.monotonic()
    for status in statuses:
        rows = prunable_jobs(status, before, task)
        if dry_run:
            report.jobs[status] = rows.count()
            continue
        report.jobs[status] = 0
        while True:
            if time_limit is not None and time.monotonic() - started >= time_limit:
                report.stopped_early = True
                return report
            pks = list(rows.order_by("finished_at").values_list("pk", flat=True)[:chunk_size])
            if not pks:
                break
            report.jobs[status] += _delete_chunk(report, JobRecord, pks)
    batches = prunable_batches(before)
    if task is None:  # a task's prune leaves the batches of other tasks' members alone
        if dry_run:
            report.batches = batches.count()
        else:
            while pks := list(batches.values_list("pk", flat=True)[:chunk_size]):
                report.batches += _delete_chunk(report, Batch, pks)
    return report


def _delete_chunk(report: PruneReport, model: type[JobRecord] | type[Batch], pks: list[Any]) -> int:
    chunk_started = time.monotonic()
    with transaction.atomic():
        deleted, _ = model._default_manager.filter(pk__in=pks).delete()
    took = time.monotonic() - chunk_started
    report.chunks += 1
    report.longest_chunk_s = max(report.longest_chunk_s, took)
    if connection.vendor == "sqlite":
        time.sleep(took * SQLITE_REST)  # the one write lock is the workers' meanwhile
    return deleted
