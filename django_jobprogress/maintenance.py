"""Progress tasks the app ships for its own upkeep, to run as recurring schedules.

``JOBPROGRESS["SCHEDULES"] = {"prune-jobs": {"task":
"django_jobprogress.maintenance.prune_finished", "cron": "0 4 * * *"}}`` prunes
every night as ``manage.py prune_jobs`` would, and each night's run is a job
with its counts as its result.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.utils import timezone

from django_jobprogress import conf
from django_jobprogress.durations import parse_duration
from django_jobprogress.pruning import FINISHED, prune
from django_jobprogress.tasks import JobContext, progress_task


@progress_task(cancellable=False)
def prune_finished(
    job: JobContext,
    older_than: str | float | None = None,
    statuses: list[str] | None = None,
    chunk_size: int = 1000,
) -> dict[str, Any]:
    """Delete finished jobs older than ``older_than`` (default ``PRUNE_AFTER``), as
    ``manage.py prune_jobs`` does; return what it deleted."""
    seconds = conf.get("PRUNE_AFTER") if older_than is None else parse_duration(older_than)
    chosen = list(statuses or FINISHED)
    unknown = sorted(set(chosen) - set(FINISHED))
    if unknown:
        raise ValueError(f"statuses must be finished ones ({', '.join(FINISHED)}), got {unknown}")
    job.progress.stage("pruning")
    report = prune(timezone.now() - timedelta(seconds=seconds), chosen, chunk_size=chunk_size)
    return {"jobs": report.jobs, "batches": report.batches, "chunks": report.chunks}
