"""Starts the runs of recurring schedules; every cluster's sweeper calls ``run_due``.

Why not django-q2's own scheduler table: it runs about every 30 s, its row lock
is a no-op on SQLite (two clusters start a slot twice), ``catch_up`` is global
and on by default (an interval schedule replays every missed slot), and it has
no per-schedule timezone and no overlap check. Here:

* a slot is taken by a compare-and-swap on the schedule's ``next_run_at``
  (``Schedule.take_slot``), in the same transaction as the run's insert, so one
  cluster wins each slot and a slot is never taken without its run;
* each run's key is the schedule's name: while a run is unfinished, the key
  lock makes a later slot find it, and that slot is skipped and logged (the
  guard is the job's real state, not a lock that expires);
* the next slot is the first one after now, so missed slots give one run.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import connections, transaction
from django.utils import timezone

from django_jobprogress import schedules
from django_jobprogress.models import Schedule
from django_jobprogress.models.schedules import SyncReport
from django_jobprogress.registry import resolve_task
from django_jobprogress.tasks import enqueue_or_find

logger = logging.getLogger(__name__)

#: Most schedules one call starts; the rest are still due at the next.
SCHEDULE_LIMIT = 100
#: How long a schedule whose stored definition cannot be read waits to be looked at again.
UNREADABLE_RETRY = timedelta(minutes=5)


@dataclass
class RunReport:
    """Names of the schedules whose slot this call started, skipped or could not start."""

    started: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.started or self.skipped or self.failed)


def sync(*, dry_run: bool = False, using: str = "default") -> SyncReport:
    """Make the schedule table match ``JOBPROGRESS["SCHEDULES"]``.

    Raises ``ScheduleError`` naming a bad entry, and then changes nothing.
    """
    return Schedule.objects.db_manager(using).sync(schedules.load(), dry_run=dry_run)


def next_due_at() -> datetime | None:
    return Schedule.objects.next_due_at()


def run_due(now: datetime | None = None, limit: int = SCHEDULE_LIMIT) -> RunReport:
    """Start one run for each due schedule whose slot no other cluster took first."""
    now = now or timezone.now()
    report = RunReport()
    for schedule in Schedule.objects.due(now, limit):
        try:
            outcome = _run_slot(schedule, now)
        except Exception:
            logger.exception("schedule %r: could not start its run; trying again", schedule.name)
            outcome = "failed"
        if outcome is not None:
            getattr(report, outcome).append(schedule.name)
    return report


def _run_slot(schedule: Schedule, now: datetime) -> str | None:
    """Take ``schedule``'s due slot and enqueue its run; None if another cluster won."""
    slot = schedule.next_run_at
    try:
        spec = schedule.spec
        following = spec.slot_after(now, previous=slot)
    except Exception:
        logger.exception(
            "schedule %r: its stored definition cannot be read; run "
            "manage.py jobprogress_schedules",
            schedule.name,
        )
        schedule.take_slot(slot, now + UNREADABLE_RETRY)
        return "failed"
    try:
        task = resolve_task(spec.task)
    except Exception as exc:
        if schedule.take_slot(slot, following):
            logger.error("schedule %r: slot %s not run: %s", spec.name, slot.isoformat(), exc)
            return "failed"
        return None
    with transaction.atomic(using=schedule._state.db):
        if not schedule.take_slot(slot, following):
            return None
        record, created = enqueue_or_find(
            task,
            spec.args,
            spec.kwargs,
            key=spec.name,
            queue=spec.queue or None,
            max_attempts=spec.max_attempts,
            scheduled_for=slot,
        )
    if not created:
        logger.warning(
            "schedule %r: slot %s skipped, its previous run %s is still %s",
            spec.name,
            slot.isoformat(),
            record.pk,
            record.status,
        )
        return "skipped"
    logger.info("schedule %r: slot %s started job %s", spec.name, slot.isoformat(), record.pk)
    return "started"


def sync_after_migrate(*, using: str = "default", verbosity: int = 1, **kwargs: Any) -> None:
    """``post_migrate`` receiver: sync the schedules into the migrated database."""
    if Schedule._meta.db_table not in connections[using].introspection.table_names():
        return  # migrated back to before the schedule table
    try:
        report = sync(using=using)
    except schedules.ScheduleError as exc:  # check E011 stops migrate first, unless skipped
        logger.error("schedules not synced: %s", exc)
        return
    if verbosity >= 1 and report:
        stdout = kwargs.get("stdout") or sys.stdout
        for verb in ("created", "updated", "removed"):
            for name in getattr(report, verb):
                stdout.write(f"  Schedule {name!r} {verb}.\n")
