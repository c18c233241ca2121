"""In-process queue doubles for tests: run jobs now, or keep them until told.

Use them in your own test settings to test your tasks without a cluster::

    JOBPROGRESS = {"QUEUE_ADAPTER": "django_jobprogress.adapters.queue_memory.ImmediateQueue"}
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from django_jobprogress.adapters.base import QueueAdapter

if TYPE_CHECKING:
    from django_jobprogress.models import JobRecord
    from django_jobprogress.options import TaskOptions

logger = logging.getLogger(__name__)


def _run(job_id: str) -> None:
    from django_jobprogress.execution import run_job

    try:
        run_job(job_id)
    except (Exception, SystemExit):
        # The failure is on the record; like a real queue, the caller is not told.
        logger.debug("job %s raised", job_id, exc_info=True)


class ImmediateQueue(QueueAdapter):
    """Runs each job in the calling process as soon as its row is committed."""

    supports_retries = False

    def enqueue(self, record: JobRecord, options: TaskOptions) -> str:
        _run(str(record.pk))
        return ""

    def waiting_count(self, queue: str) -> int:
        return 0  # nothing ever waits


class InMemoryQueue(QueueAdapter):
    """Keeps job ids in a list until ``run_pending()``; for tests of pending jobs.

    Remove ids from ``queued`` to play a broker that lost its messages.
    """

    supports_retries = True
    queued: list[str] = []

    sends_in_bulk = True

    def enqueue(self, record: JobRecord, options: TaskOptions) -> str:
        self.queued.append(str(record.pk))
        return ""

    def enqueue_many(self, records: list[JobRecord], options: TaskOptions) -> None:
        self.queued.extend(str(record.pk) for record in records)

    def waiting_count(self, queue: str) -> int:
        return len(self.queued)

    def default_max_attempts(self) -> int:
        return 1

    @classmethod
    def run_pending(cls, limit: int = 10_000) -> int:
        """Run queued deliveries in order, retries included (a retry is queued again by
        the run itself), until none is left or ``limit`` ran; return how many ran."""
        count = 0
        while cls.queued and count < limit:
            _run(cls.queued.pop(0))
            count += 1
        return count

    @classmethod
    def clear(cls) -> None:
        cls.queued.clear()
