"""One daemon thread per worker process that keeps running jobs honest.

While user code is busy (or blocked) between progress calls, the ticker makes
the trailing write of throttled progress, refreshes the heartbeat, and fails a
job that has reported nothing for its ``progress_timeout``.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from django.db import connections

if TYPE_CHECKING:
    from django_jobprogress.progress import Progress

logger = logging.getLogger(__name__)


class Ticker:
    def __init__(self) -> None:
        self._handles: set[Progress] = set()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._pid: int | None = None

    @contextmanager
    def watching(self, handle: Progress) -> Iterator[None]:
        """Tick ``handle`` for as long as the block runs."""
        with self._cond:
            self._handles.add(handle)
            self._ensure_thread()
            self._cond.notify()
        try:
            yield
        finally:
            with self._cond:
                self._handles.discard(handle)

    def _ensure_thread(self) -> None:
        # A forked worker inherits the object but not the thread: start its own.
        if self._thread is None or self._pid != os.getpid() or not self._thread.is_alive():
            self._pid = os.getpid()
            self._thread = threading.Thread(
                target=self._run, name="jobprogress-ticker", daemon=True
            )
            self._thread.start()

    def _run(self) -> None:
        used_db = False
        while True:
            with self._cond:
                while not self._handles:
                    if used_db:  # release the connection while idle
                        connections.close_all()
                        used_db = False
                    self._cond.wait()
                handles = list(self._handles)
            time.sleep(min(handle.tick_interval() for handle in handles))
            now = time.monotonic()
            for handle in handles:
                try:
                    handle.tick(now)
                except Exception:
                    logger.warning(
                        "progress ticker failed for job %s", handle.record.pk, exc_info=True
                    )
                    connections.close_all()
            used_db = True


ticker = Ticker()
