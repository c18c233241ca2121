"""The port every queue adapter implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

from django.core.checks import CheckMessage

if TYPE_CHECKING:
    from django_jobprogress.models import JobRecord
    from django_jobprogress.tasks import TaskOptions


class QueueAdapter(ABC):
    """Hands a PENDING job to a worker, which will call ``execution.run_job(job_id)``.

    Only the job's id crosses the queue; its arguments live on the row as JSON.
    """

    #: Whether jobs may have more than one attempt (``max_attempts > 1``): each retry is
    #: a new hand-off of the same record, made by the run wrapper or the sweep.
    supports_retries: bool = False

    @abstractmethod
    def enqueue(self, record: JobRecord, options: TaskOptions) -> str:
        """Send the job to the queue; return the queue's own id for it (or "")."""

    def default_max_attempts(self) -> int:
        """Attempts a task gets when it does not set ``max_attempts`` itself."""
        return 1

    def cap_attempts(self, wanted: int) -> int:
        """The attempts the queue will really make when a task asks for ``wanted``."""
        return wanted

    def waiting_count(self, queue: str) -> int | None:
        """How many messages the queue holds for ``queue`` (taken, unacknowledged ones
        included), or None if it cannot tell. The sweep uses it to tell a lost message
        from one still waiting: see ``recovery.redeliver_lost``."""
        return None

    def current_delivery_id(self) -> str:
        """The queue's id of the delivery being run in this thread, if it tells."""
        return ""

    def ready(self) -> None:  # noqa: B027  (an optional hook)
        """Wire signal receivers; called once from ``AppConfig.ready()``."""

    def check(self) -> list[CheckMessage]:
        """System-check messages about the queue's own configuration."""
        return []


class PushAdapter(ABC):
    """Broadcasts a snapshot to the sockets watching a group, without blocking the job.

    A failed broadcast is logged and dropped: the database stays the truth and
    sockets catch up from it.
    """

    #: Whether published snapshots reach sockets served by other processes. When
    #: False, sockets watch the database instead (the embedded default).
    crosses_processes: bool = False

    @property
    def enabled(self) -> bool:
        """Whether publishing is worth a snapshot now (False skips the work)."""
        return True

    @abstractmethod
    def publish(self, group: str, snapshot: dict[str, Any], delay: float = 0.0) -> None:
        """Queue ``snapshot`` for the sockets of ``group``; must return at once.

        With ``delay``, the snapshot waits that long and is dropped if a newer one
        for the group arrives meanwhile (a short job's "started" is not worth a send).
        """

    def flush(self, timeout: float = 1.0) -> bool:
        """Wait until queued broadcasts are sent; True if nothing is left."""
        return True

    def check(self) -> list[CheckMessage]:
        return []
