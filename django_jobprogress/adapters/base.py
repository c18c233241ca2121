"""The port every queue adapter implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

from django.core.checks import CheckMessage

if TYPE_CHECKING:
    from django_jobprogress.models import JobRecord
    from django_jobprogress.tasks import TaskOptions


class QueueAdapter(ABC):
    """Hands a PENDING job to a worker, which will call ``execution.run_job(job_id)``.

    Only the job's id crosses the queue; its arguments live on the row as JSON.
    """

    #: Whether the queue re-delivers a job whose attempt raised (``max_attempts > 1``).
    supports_retries: bool = False

    @abstractmethod
    def enqueue(self, record: JobRecord, options: TaskOptions) -> str:
        """Send the job to the queue; return the queue's own id for it (or "")."""

    def default_max_attempts(self) -> int:
        """Attempts a task gets when it does not set ``max_attempts`` itself."""
        return 1

    def ready(self) -> None:  # noqa: B027  (an optional hook)
        """Wire signal receivers; called once from ``AppConfig.ready()``."""

    def check(self) -> list[CheckMessage]:
        """System-check messages about the queue's own configuration."""
        return []
