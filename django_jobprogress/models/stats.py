"""``JobMinute``: jobs finished per minute, per task and outcome, with a histogram of
their run times, for the admin dashboard's charts and per-task figures.

Each job's end adds one to one row, in the same transaction as the end itself
(``count_end``): one ``INSERT ... ON CONFLICT DO UPDATE`` (PostgreSQL, SQLite
3.24+), O(1) per job and never a scan of the jobs table. The rows outlive
``prune_jobs``, so the charts keep their history. A row is keyed by (minute,
task, run-time bucket, shard); the shard is the worker's process id modulo
``SHARDS``, so workers finishing jobs of one task in the same minute do not
queue on one row lock.
"""

from __future__ import annotations

import math
import os
from datetime import datetime

from django.db import connections, models
from django.utils.translation import gettext_lazy as _

from django_jobprogress.models.sql import upsert_add

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

    def __str__(self) -> str:
        return f"{self.task_name} at {self.minute:%Y-%m-%d %H:%M}"


def count_end(
    using: str, task_name: str, outcome: str, finished: datetime, started: datetime | None
) -> None:
    """Count one job's end; call it inside the transaction of that end."""
    run_time = None if started is None else max((finished - started).total_seconds(), 0.0)
    key = {
        "minute": finished.replace(second=0, microsecond=0),
        "task_name": task_name,
        "bucket": bucket_of(run_time),
        "shard": os.getpid() % SHARDS,
    }
    added: dict[str, float] = {name: int(name == outcome) for name in OUTCOMES}
    added["seconds"] = run_time or 0.0
    upsert_add(JobMinute, connections[using], key, added)
