"""One daemon thread per worker process that keeps running jobs honest.

While user code is busy (or blocked) between progress calls, the ticker calls
each running job's ``JobRun.tick``: the trailing write of throttled progress,
the heartbeat, and the failure of a job that has reported nothing for its
``progress_timeout``.
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
    from django_jobprogress.jobrun import JobRun

logger = logging.getLogger(__name__)


class Ticker:
    def __init__(self) -> None:
        self._runs: set[JobRun] = set()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._pid: int | None = None

    @contextmanager
    def watching(self, run: JobRun) -> Iterator[None]:
        """Tick ``run`` for as long as the block runs."""
        with self._cond:
            self._runs.add(run)
            self._ensure_thread()
            self._cond.notify()
        try:
            yield
        finally:
            with self._cond:
                self._runs.discard(run)

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
                while not self._runs:
                    if used_db:  # release the connection while idle
                        connections.close_all()
                        used_db = False
                    self._cond.wait()
                runs = list(self._runs)
            time.sleep(min(run.tick_interval() for run in runs))
            now = time.monotonic()
            for run in runs:
                try:
                    run.tick(now)
                except Exception:
                    logger.warning(
                        "progress ticker failed for job %s", run.record.pk, exc_info=True
                    )
                    connections.close_all()
            used_db = True


ticker = Ticker()
