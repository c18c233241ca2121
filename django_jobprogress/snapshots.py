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
        "batch": None,
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
