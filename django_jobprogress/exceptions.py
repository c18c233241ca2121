"""Exceptions raised to task code and to callers."""

from typing import Any

from django.core.exceptions import ImproperlyConfigured


class JobCancelled(Exception):
    """Raised by ``checkpoint()`` when a cancel was requested; the job ends CANCELLED."""


class JobNotRunning(Exception):
    """Raised by a progress call once the job was closed from outside (stalled, timed out)."""


class DuplicateJob(Exception):
    """An unfinished job with the same task and key exists (``enqueue(on_conflict="raise")``)."""

    def __init__(self, existing: Any) -> None:
        self.existing = existing
        super().__init__(
            f"job {existing.pk} for task {existing.task_name!r} with key {existing.key!r} "
            f"is still {existing.status}"
        )


class NotRetryable(ValueError):
    """``record.retry()`` of a job that is not finished as failed or cancelled."""


class UnstorableError(Exception):
    """Re-raised to the queue in place of an exception whose text no database can store
    (NUL characters, lone surrogates); the text is kept with those replaced."""


class JobProgressConfigurationError(ImproperlyConfigured):
    """The JOBPROGRESS setting or an adapter is misconfigured."""
