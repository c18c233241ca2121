"""One run of a job in this worker: the user's handle and the controls around it.

``execution.run_job`` builds a ``JobRun`` for each attempt and gives its
``progress`` handle to the task. What the handle's user must not reach lives
here: ending the run with the outcome of the task's code (``close_*``) and
what the ticker does while that code is busy or blocked (``tick``: the trailing
write of throttled progress, the heartbeat, the progress timeout).
"""

from __future__ import annotations

import time
import traceback
from typing import TYPE_CHECKING, Any

from django_jobprogress.progress import Progress
from django_jobprogress.validation import describe_error, validate_json

if TYPE_CHECKING:
    from django_jobprogress.models import JobRecord

#: ``worker_ids`` entry of an attempt whose worker is not known (it was lost).
UNKNOWN_WORKER = "unknown"


def attempt_workers(recorded: list[str], attempts: int, latest: str = "") -> list[str]:
    """One worker id per attempt: those ``recorded`` at the attempts' ends, then
    ``latest`` (the worker holding or last holding the job) for the last attempt,
    and ``UNKNOWN_WORKER`` for attempts lost with their worker."""
    ids = [str(worker) for worker in recorded[:attempts]]
    if latest and len(ids) < attempts:
        ids += [UNKNOWN_WORKER] * (attempts - 1 - len(ids))
        ids.append(latest)
    return ids + [UNKNOWN_WORKER] * (attempts - len(ids))


def class_path(exc: BaseException) -> str:
    """The dotted path of ``exc``'s class, as django.tasks' ``TaskError`` names it."""
    kind = type(exc)
    return f"{kind.__module__}.{kind.__qualname__}"[:255]


class JobRun:
    """A RUNNING job's ``progress`` handle, closed by the run wrapper, ticked by the ticker.

    ``throttle`` bounds the handle's writes; ``heartbeat_interval`` is how long the
    row may go without a write before the ticker refreshes its heartbeat. ``worker``
    ("host:pid") is written to the row's ``worker_ids`` with the attempt's end.
    """

    def __init__(
        self,
        record: JobRecord,
        *,
        throttle: float,
        heartbeat_interval: float,
        worker: str = "",
    ) -> None:
        self.record = record
        self.progress = Progress(record, throttle=throttle)
        self._ended: dict[str, Any] = (
            {"worker_ids": attempt_workers(record.worker_ids, record.attempts, worker)}
            if worker
            else {}
        )
        self._throttle = throttle
        self._heartbeat_interval = heartbeat_interval
        self._progress_timeout = record.progress_timeout
        self._last_beat = time.monotonic()

    # -- the run wrapper: the outcome of the task's code ----------------------------

    def close_completed(self, result: Any) -> bool:
        """End the job COMPLETED with ``result``, unless the task already ended it.

        A result no database can store fails the attempt instead, and is raised as
        the ``TypeError`` that names it.
        """
        progress = self.progress
        if progress.closed:
            return False
        try:
            validate_json("return value", result)
        except (TypeError, ValueError) as exc:
            # Not storable is a wrong type of result, whatever the check found.
            error = exc if isinstance(exc, TypeError) else TypeError(str(exc))
            self.close_failed(error)
            raise error from None
        return progress._end(
            "completed", lambda values: self.record.complete(result, **values, **self._ended)
        )

    def close_failed(self, exc: BaseException) -> bool:
        """Fail this attempt with ``exc``: the job is retried while it has attempts left."""
        if self.progress.closed:
            return False
        text = describe_error(exc)
        ended = {**self._ended, "exception_class_path": class_path(exc)}
        tb = "".join(traceback.format_exception(exc))
        return self.progress._end(
            "failed", lambda values: self.record.fail_attempt(text, tb, **values, **ended)
        )

    def close_cancelled(self, exc: BaseException | None = None) -> bool:
        """End the job CANCELLED (its code stopped at a checkpoint, raising ``exc``)."""
        if self.progress.closed:
            return False
        ended: dict[str, Any] = dict(self._ended)
        if exc is not None:
            ended["exception_class_path"] = class_path(exc)
        return self.progress._end(
            "cancelled", lambda values: self.record.mark_cancelled(**values, **ended)
        )

    # -- the ticker: while the task's code runs ------------------------------------

    def tick_interval(self) -> float:
        """How often ``tick`` must run: within 0.02 s and 1 s."""
        candidates = [self._heartbeat_interval]
        if self._throttle > 0:
            candidates.append(self._throttle)
        if self._progress_timeout:
            candidates.append(self._progress_timeout / 4)
        return min(max(min(candidates), 0.02), 1.0)

    def tick(self, now: float) -> None:
        """Fail a job silent for its progress timeout, else make the trailing write,
        else refresh the heartbeat when no write did for ``heartbeat_interval``."""
        progress = self.progress
        if progress.closed:
            return
        timeout = self._progress_timeout
        if timeout and now - progress._last_report >= timeout:
            if self.record.fail_silent():
                progress._mark_closed(
                    f"job {self.record.pk} is failed: no progress after {timeout:g} s"
                )
            return
        if progress._dirty and now - progress._last_write >= self._throttle:
            progress._flush()
        elif now - max(self._last_beat, progress._last_write) >= self._heartbeat_interval:
            self._last_beat = now
            if not self.record.beat():
                progress._refresh_control()
