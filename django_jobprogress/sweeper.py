"""Runs the recovery sweep (``recovery.sweep``) and starts the runs of recurring
schedules (``scheduler.run_due``) in every django-q2 cluster, by itself.

Each worker process starts one daemon thread. The threads of the workers on a
host elect one sweeper through an OS file lock named after the project's
database and cluster, so the sweep costs one round of queries per interval, and
when the sweeping worker dies (killed, recycled, timed out) the kernel drops its
lock and a waiting worker takes over. Other hosts sweep too; the transitions
are guarded, so that is safe.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, TypeVar

from django.conf import settings
from django.db import connections
from django.utils import timezone

from django_jobprogress import conf
from django_jobprogress.models.stats import compact
from django_jobprogress.recovery import sweep
from django_jobprogress.scheduler import next_due_at, run_due

T = TypeVar("T")
#: Longest wait between two looks at the schedules when nothing else wakes the thread.
IDLE_LOOK = 60.0
#: Shortest wait: a slot due "now" that another cluster is taking is not polled in a spin.
MIN_WAIT = 0.05

logger = logging.getLogger(__name__)

try:
    import fcntl

    HAS_FLOCK = True
except ImportError:  # pragma: no cover  (Windows: every worker sweeps)
    HAS_FLOCK = False


def lock_path() -> Path:
    """The lock file shared by the workers of this project's cluster on this host."""
    db = settings.DATABASES.get("default", {})
    q_cluster = getattr(settings, "Q_CLUSTER", {})
    name = q_cluster.get("name", "") if isinstance(q_cluster, dict) else ""
    key = f"{db.get('HOST', '')}:{db.get('PORT', '')}:{db.get('NAME', '')}:{name}"
    digest = hashlib.sha1(key.encode(), usedforsecurity=False).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"django-jobprogress-sweep-{digest}.lock"


class Sweeper:
    """The sweeping thread of one process (started again after a fork)."""

    def __init__(self) -> None:
        self._thread: threading.Thread | None = None
        self._pid: int | None = None
        self._stop = threading.Event()
        #: Set while this process is its cluster's sweeper.
        self.elected = threading.Event()

    def start(self) -> bool:
        """Start this process's thread unless sweeping is off and there are no
        schedules; idempotent."""
        interval = conf.get("SWEEP_INTERVAL")
        if not interval and not conf.get("SCHEDULES"):
            return False
        if self._pid == os.getpid() and self._thread is not None and self._thread.is_alive():
            return True
        self._pid = os.getpid()
        self._stop = threading.Event()
        self.elected = threading.Event()
        self._thread = threading.Thread(
            target=self._run,
            args=(float(interval) if interval else None, self._stop, self.elected),
            name="jobprogress-sweeper",
        )
        self._thread.daemon = True
        self._thread.start()
        return True

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None and self._pid == os.getpid():
            self._thread.join(timeout)

    def _run(self, interval: float | None, stop: threading.Event, elected: threading.Event) -> None:
        with open(lock_path(), "a") as lock:
            if not _wait_until_elected(lock, stop):
                return
            elected.set()
            next_sweep = time.monotonic()
            while not stop.is_set():
                if interval and time.monotonic() >= next_sweep:
                    next_sweep = time.monotonic() + interval
                    _logged(sweep, "recovery sweep")
                due_in = _logged(_run_schedules, "schedules")
                _logged(lambda: compact(timezone.now()), "folding old per-minute counts")
                connections.close_all()  # this thread's own connections only
                stop.wait(_wait(interval, next_sweep, due_in))
        elected.clear()


def _run_schedules() -> float:
    """Start the due schedules' runs; return the seconds until the next is due."""
    run_due()
    due_at = next_due_at()
    if due_at is None:
        return IDLE_LOOK
    return (due_at - timezone.now()).total_seconds()


def _logged(step: Callable[[], T], what: str) -> T | None:
    try:
        return step()
    except Exception:
        logger.warning("%s failed; trying again later", what, exc_info=True)
        return None


def _wait(interval: float | None, next_sweep: float, due_in: float | None) -> float:
    """Until the next sweep or the next schedule slot, whichever comes first; a
    schedule added meanwhile by a sync is seen after ``interval`` at most."""
    look = interval or IDLE_LOOK
    if interval:
        look = min(look, next_sweep - time.monotonic())
    if due_in is not None:
        look = min(look, due_in)
    return max(look, MIN_WAIT)


def _wait_until_elected(lock: IO[str], stop: threading.Event) -> bool:
    """Block until this process holds the sweep lock (True) or is told to stop."""
    if not HAS_FLOCK:
        return True
    while not stop.is_set():
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            stop.wait(0.5)  # the holder's death frees the lock; look again soon
    return False


sweeper = Sweeper()
