"""The recovery sweep: what keeps every row true when a worker, a broker or a
message is lost. Every django-q2 cluster runs it by itself (see ``sweeper``).

One sweep, all guarded transitions (so any number of clusters may sweep at once
and each job is closed or rescued once):

* a RUNNING job whose heartbeat is older than its stall timeout is rescued
  (PENDING again, handed off, the lost attempt counted) while it has attempts
  left, else FAILED "worker lost";
* a RUNNING job silent past its ``progress_timeout`` is FAILED;
* a PENDING job the queue never received, or whose message the queue lost, is
  handed off again (the claim drops any duplicate this makes).

A lost message is told from one still waiting by counting: the queue is FIFO
and a PENDING job's ``handed_off_at`` is when its message joined the queue, so
if the broker holds ``waiting`` messages for a queue, at most the ``waiting``
newest hand-offs can still be in it. Older PENDING hand-offs beyond those, sent
more than ``REDELIVER_AFTER`` seconds ago, are lost. A long honest backlog has
as many messages as PENDING jobs, so nothing of it is sent twice.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Count, Min
from django.utils import timezone

from django_jobprogress import conf
from django_jobprogress.adapters import get_queue_adapter
from django_jobprogress.delivery import hand_off
from django_jobprogress.models import Batch, JobRecord
from django_jobprogress.registry import resolve_task

logger = logging.getLogger(__name__)

#: Most jobs of each kind one sweep acts on; the next sweep takes the rest.
SWEEP_LIMIT = 500


@dataclass
class SweepReport:
    rescued: int = 0
    failed_lost: int = 0
    failed_silent: int = 0
    handed_off: int = 0
    callbacks: int = 0

    def __bool__(self) -> bool:
        done = (self.rescued, self.failed_lost, self.failed_silent, self.handed_off)
        return any((*done, self.callbacks))


def sweep(now: datetime | None = None, limit: int = SWEEP_LIMIT) -> SweepReport:
    """Run one recovery sweep; return what it did."""
    now = now or timezone.now()
    report = SweepReport()
    rescued, report.failed_lost = JobRecord.objects.recover_stalled(now, limit)
    for record in rescued:
        hand_off_again(record)
    report.rescued = len(rescued)
    report.failed_silent = JobRecord.objects.fail_silent(now, limit)
    report.handed_off = redeliver_lost(now, limit)
    # A batch whose end committed without its callbacks (the process died between).
    lost_before = now - timedelta(seconds=conf.get("REDELIVER_AFTER"))
    report.callbacks = Batch.objects.enqueue_lost_callbacks(lost_before, limit)
    if report:
        logger.info("recovery sweep: %s", report)
    return report


def hand_off_again(record: JobRecord) -> bool:
    """Hand a PENDING job to the queue again, with its task's options."""
    try:
        options = resolve_task(record.task_name).get_options()
    except Exception as exc:
        record.fail(f"{type(exc).__name__}: {exc}")
        return False
    return hand_off(record, options)


def redeliver_lost(now: datetime | None = None, limit: int = SWEEP_LIMIT) -> int:
    """Hand off again the PENDING jobs whose message never reached, or left, the queue;
    return how many were handed off."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=conf.get("REDELIVER_AFTER"))
    pending = JobRecord.objects.filter(status=JobRecord.Status.PENDING).order_by()
    sent = 0
    for record in pending.filter(handed_off_at__isnull=True).order_by("created_at")[:limit]:
        if record.take_hand_off(None):
            sent += hand_off_again(record)
    adapter = get_queue_adapter()
    per_queue = pending.values("queue").annotate(
        oldest=Min("handed_off_at"), handed_off=Count("handed_off_at")
    )
    for row in per_queue:
        if row["oldest"] is None or row["oldest"] >= cutoff:
            continue  # nothing there has waited long enough to be called lost
        waiting = adapter.waiting_count(row["queue"])
        if waiting is None:
            continue  # the queue cannot tell: never flood it with guesses
        missing = min(row["handed_off"] - waiting, limit)
        if missing <= 0:
            continue
        lost = pending.filter(queue=row["queue"], handed_off_at__lt=cutoff).order_by(
            "handed_off_at"
        )[:missing]
        for record in lost:
            if record.take_hand_off(record.handed_off_at):
                sent += hand_off_again(record)
    return sent
