"""The port every queue adapter implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from django.apps import apps
from django.core.checks import CheckMessage, Error

if TYPE_CHECKING:
    from django_jobprogress.models import JobRecord
    from django_jobprogress.options import TaskOptions


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

    def enqueues_in_transaction(self, using: str, queue: str) -> bool:
        """Whether jobs of ``queue`` are queued in the database ``using`` itself (a
        queue table): then ``enqueue`` runs inside the transaction that writes the
        job's row, and the row and its message commit (or roll back) together. Else
        the hand-off follows the commit."""
        return False

    #: Whether ``enqueue_many`` sends its jobs in one round trip, all or none. When
    #: False, ``enqueue_many`` callers hand jobs off one by one with ``enqueue``.
    sends_in_bulk: bool = False

    def enqueue_many(self, records: list[JobRecord], options: TaskOptions) -> None:
        """Send jobs of one task and one queue together (all or none), when
        ``sends_in_bulk``; this default sends them one by one."""
        for record in records:
            self.enqueue(record, options)

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
    """The transport's port, both halves: ``publish`` on the job's side (it broadcasts a
    snapshot to the sockets watching a group, without blocking the job), and
    ``open_watch`` on the sockets' side (what each server process's hub listens to).

    A failed broadcast is logged and dropped: the database stays the truth and
    sockets catch up from it.
    """

    @property
    def crosses_processes(self) -> bool:
        """Whether published snapshots reach watchers in other processes. When False,
        sockets watch the database instead (the embedded default). A subclass may
        override it with a class attribute."""
        return False

    @property
    def enabled(self) -> bool:
        """Whether publishing is worth a snapshot now (False skips the work)."""
        return True

    @abstractmethod
    def publish(self, group: str, snapshot: dict[str, Any], delay: float = 0.0) -> None:
        """Queue ``snapshot`` for the sockets of ``group``; must return at once.

        With ``delay``, the snapshot waits up to that long, and one published for the
        group meanwhile replaces it, sent no later than the one it replaced was due:
        a short job's "started" is never sent, and a group published to more often
        than every ``delay`` is sent to at most once per ``delay``, the last snapshot
        always.
        """

    def publish_lazy(
        self,
        group: str,
        produce: Callable[[], dict[str, Any] | None],
        delay: float = 0.0,
    ) -> None:
        """Like ``publish``, with the snapshot made by ``produce()`` (None sends nothing).

        For a snapshot that costs a query and is asked for more often than it is worth
        reading (a batch's, on every member change). An adapter that queues snapshots
        calls ``produce`` only when it sends, on a thread of its own, so the calls made
        within one ``delay`` share one read (``ChannelsPush`` does). This default reads
        at once, in the caller's thread, and publishes what it read.
        """
        snapshot = produce()
        if snapshot is not None:
            self.publish(group, snapshot, delay=delay)

    async def open_watch(self) -> PushWatch | None:
        """The watch half: a new ``PushWatch`` that hears what is published to the
        groups it subscribes, from any process; None if this adapter cannot be heard
        (the default).

        Each server process's hub opens one when the adapter is ``enabled`` and
        ``crosses_processes``. Without a watch (None, an error, or no answer within
        ``PUSH_TIMEOUT``) the hub re-reads each watched job from the database every
        ``WATCH_INTERVAL`` instead.
        """
        return None

    def flush(self, timeout: float = 1.0) -> bool:
        """Wait until queued broadcasts are sent; True if nothing is left."""
        return True

    def check(self) -> list[CheckMessage]:
        return []


class PushWatch(ABC):
    """A subscription to what a ``PushAdapter`` publishes, from ``open_watch()``.

    The hub of a server process keeps one, subscribed once to each group its
    sockets watch. All methods are called on the event loop that opened the watch;
    ``receive`` waits while ``subscribe`` and ``unsubscribe`` are called, and the
    hub bounds those by ``PUSH_TIMEOUT``.
    """

    @abstractmethod
    async def subscribe(self, group: str) -> None:
        """Hear what is published to ``group`` from now on."""

    @abstractmethod
    async def unsubscribe(self, group: str) -> None:
        """Stop hearing ``group``."""

    @abstractmethod
    async def receive(self) -> tuple[str, dict[str, Any]]:
        """Wait for the next ``(group, snapshot)`` published to a subscribed group.

        May raise: the hub calls it again at once after a single failure, and after
        a short back-off (logged) when failures follow each other.
        """

    async def close(self) -> None:  # noqa: B027  (an optional hook)
        """Let go of the watch; called once nothing is subscribed. A ``receive``
        still waiting is cancelled (just before, or once its delivery is done)."""


def require_installed(app: str, check_id: str) -> list[CheckMessage]:
    """The check an adapter makes for the Django app it runs on."""
    if apps.is_installed(app):
        return []
    return [
        Error(
            f"{app!r} must be in INSTALLED_APPS to use django_jobprogress.",
            hint=f"Add {app!r} to INSTALLED_APPS before 'django_jobprogress'.",
            id=check_id,
        )
    ]
