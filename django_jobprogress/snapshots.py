"""The one JSON shape of a job, shared by the JSON view, the socket and the template."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.utils import timezone


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def eta_seconds(record: Any, now: datetime | None = None) -> float | None:
    """Seconds left, from the job's average rate of progress so far; None if unknown."""
    if record.status != "running" or not record.started_at or not record.progress_at:
        return None
    fraction = record.progress
    if fraction <= 0 or fraction >= 1:
        return None
    elapsed = (record.progress_at - record.started_at).total_seconds()
    if elapsed <= 0:
        return None
    since_report = ((now or timezone.now()) - record.progress_at).total_seconds()
    remaining = elapsed * (1 - fraction) / fraction - since_report
    return round(max(remaining, 0.0), 1)


def job_snapshot(record: Any, now: datetime | None = None) -> dict[str, Any]:
    """A JSON-ready dict of what a viewer of the job may see (never the traceback)."""
    return {
        "id": str(record.pk),
        "name": record.task_name,
        "status": str(record.status),
        "progress": float(record.progress),
        "current": record.current,
        "total": record.total,
        "stage": record.stage,
        "message": record.message,
        "fields": record.fields,
        "result": record.result,
        "error": record.error,
        "eta_seconds": eta_seconds(record, now),
        "cancel_requested": record.cancel_requested_at is not None,
        "cancellable": record.can_be_cancelled and record.cancel_requested_at is None,
        "attempts": record.attempts,
        "created": _iso(record.created_at),
        "started": _iso(record.started_at),
        "finished": _iso(record.finished_at),
        "updated": _iso(_updated(record)),
        "batch": str(record.batch_id) if record.batch_id else None,
    }


def _updated(record: Any) -> datetime | None:
    """When the job last changed in a way a viewer sees; orders snapshots."""
    moments = (
        record.created_at,
        record.started_at,
        record.progress_at,
        record.cancel_requested_at,
        record.finished_at,
    )
    return max((m for m in moments if m is not None), default=None)


def batch_snapshot(
    batch: Any, counts: dict[str, Any], now: datetime | None = None
) -> dict[str, Any]:
    """A batch as its viewers see it; ``counts`` are its live pending/running figures.

    ``progress`` is the mean of the members' progress: finished members count as
    done, running ones with their own progress, so the bar moves during long jobs.
    """
    done = batch.succeeded + batch.failed + batch.cancelled
    if batch.total:
        fraction = min((done + counts["running_progress"]) / batch.total, 1.0)
    else:
        fraction = 1.0 if batch.finished_at else 0.0
    return {
        "id": str(batch.pk),
        "name": batch.name,
        "kind": "batch",
        "status": str(batch.status),
        "progress": float(fraction),
        "total": batch.total,
        "pending": counts["pending"],
        "running": counts["running"],
        "succeeded": batch.succeeded,
        "failed": batch.failed,
        "cancelled": batch.cancelled,
        "sealed": batch.sealed,
        "cancel_requested": batch.cancel_requested_at is not None,
        "cancellable": not batch.is_finished and batch.cancel_requested_at is None,
        "created": _iso(batch.created_at),
        "finished": _iso(batch.finished_at),
        # Batch snapshots mix rows of many jobs: they are ordered by when they were read.
        "updated": _iso(now or timezone.now()),
    }
