"""The progress handle a running task writes to (``self.progress`` / ``job.progress``).

Calls change in-memory state; writes are coalesced to at most one per
``throttle`` seconds, except a change of stage or total and every terminal
transition, which are written at once. What the run wrapper and the ticker do
with a running job (its outcome, the trailing write, heartbeats, the progress
timeout) is ``jobrun.JobRun``'s, not the handle's.
"""

from __future__ import annotations

import math
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

from django_jobprogress.exceptions import JobCancelled, JobNotRunning
from django_jobprogress.models import JobRecord
from django_jobprogress.validation import (
    MAX_BIGINT,
    describe_error,
    storable_text,
    validate_count,
    validate_fraction,
    validate_json,
    validate_text,
)

__all__ = ["Progress"]

_monotonic = time.monotonic


class Progress:
    """Reports a running job's progress, stage, message, fields and outcome."""

    def __init__(self, record: JobRecord, *, throttle: float) -> None:
        self.record = record
        self._throttle = throttle
        self._lock = threading.Lock()
        self._fraction = record.progress
        self._current = record.current
        self._total = record.total
        self._counting = record.total is not None
        self._stage = record.stage
        self._message = record.message
        self._fields = dict(record.fields)
        self._dirty = False
        self._last_write = -math.inf
        self._last_report = _monotonic()
        self._last_check = -math.inf
        self._closed: str | None = None
        self.cancel_requested = record.cancel_requested_at is not None
        self.writes = 0
        # Errors are raised only in the thread running the task, never in the ticker.
        self._owner_thread = threading.current_thread()

    # -- reading -------------------------------------------------------------

    @property
    def fraction(self) -> float:
        """Progress in [0, 1]; derived from current/total once counting is used."""
        if self._counting and self._total is not None:
            if self._total == 0:
                return 1.0
            return min(max(self._current / self._total, 0.0), 1.0)
        return self._fraction

    @property
    def current(self) -> int:
        """Units done so far (``increment()`` or ``set(current=...)``); with ``total``
        it makes ``fraction``, so a task can count items instead of computing one."""
        return self._current

    @property
    def total(self) -> int | None:
        """Units the job will do, or None while unknown. Setting it switches the bar
        to counting (``current`` of ``total``) and is written at once, since it
        changes what every viewer's bar means."""
        return self._total

    @total.setter
    def total(self, value: int) -> None:
        self._raise_if_closed()
        self._total = validate_count("total", value)
        self._counting = True
        self._changed(force=True)

    @property
    def closed(self) -> bool:
        """Whether the job has ended (finished, failed or cancelled) through this
        handle: every later call raises, so a task cannot report past its end."""
        return self._closed is not None

    # -- reporting -------------------------------------------------------------

    def update(self, fraction: float) -> None:
        """Set progress to ``fraction`` (0.5 is half done)."""
        value = validate_fraction("fraction", fraction)
        self._raise_if_closed()
        self._fraction = value
        self._counting = False
        self._changed()

    def steps(self, completed: int, total: int, base: float = 0.0, max: float = 1.0) -> None:
        """``completed`` of ``total`` steps done, as laravel-job-progress's
        ``updateWithSteps``: progress is ``base + max * completed / total``.

        ``max`` is the share of the bar the steps take, clamped to ``1 - base``,
        so a phase can follow ``update(base)``; ``total == 0`` lands on ``base``.
        """
        completed = validate_count("completed", completed)
        total = validate_count("total", total)
        base = validate_fraction("base", base)
        share = min(validate_fraction("max", max), 1.0 - base)
        if completed > total:
            raise ValueError(f"completed ({completed!r}) must not exceed total ({total!r})")
        self._raise_if_closed()
        total_changed = total != self._total
        done = completed / total if total else 0.0
        self._fraction = min(base + share * done, 1.0)
        self._current, self._total, self._counting = completed, total, False
        self._changed(force=total_changed)

    def increment(self, n: int = 1) -> None:
        """Count ``n`` more items done (of ``total``)."""
        if type(n) is not int or n < 0:
            n = validate_count("n", n)
        if self._closed is not None:
            self._raise_if_closed()
        current = self._current + n
        if current > MAX_BIGINT:
            raise ValueError(
                f"increment({n!r}) would make current {current}, more than the database "
                f"stores ({MAX_BIGINT})"
            )
        self._current = current
        self._counting = True
        self._dirty = True
        now = _monotonic()
        self._last_report = now
        if now - self._last_write >= self._throttle:
            self._flush()

    def decrement(self, n: int = 1) -> None:
        """Count ``n`` items as not done after all."""
        n = validate_count("n", n)
        if n > self._current:
            raise ValueError(
                f"decrement({n!r}) would make current negative (it is {self._current})"
            )
        self._raise_if_closed()
        self._current -= n
        self._counting = True
        self._changed()

    def stage(self, label: str) -> None:
        """Name the phase the job is in; written at once."""
        label = validate_text("stage", label)[:255]
        self._raise_if_closed()
        changed = label != self._stage
        self._stage = label
        self._changed(force=changed)

    def message(self, text: str) -> None:
        """A human-readable line about what the job is doing now."""
        self._message = validate_text("message", text)
        self._raise_if_closed()
        self._changed()

    def set(self, **fields: Any) -> None:
        """Free-form JSON status fields, merged into ``record.fields``."""
        for name, value in fields.items():
            validate_text(f"field name {name!r}", name)
            validate_json(f"field {name!r}", value)
        self._raise_if_closed()
        self._fields.update(fields)
        self._changed()

    def finish(self) -> None:
        """Mark all work done (progress 1.0, current = total) without ending the job."""
        self._raise_if_closed()
        if self._total is not None:
            self._current = self._total
        self._fraction = 1.0
        self._changed(force=True)

    def complete(self, result: Any = None) -> None:
        """End the job COMPLETED with ``result`` (JSON) now."""
        validate_json("result", result)
        self._end("completed", lambda values: self.record.complete(result, **values))

    def fail(self, error: BaseException | str) -> None:
        """End the job FAILED with ``error`` now."""
        tb = ""
        if isinstance(error, BaseException) and error.__traceback__ is not None:
            tb = "".join(traceback.format_exception(error))
        text, tb = describe_error(error), storable_text(tb)
        self._end("failed", lambda values: self.record.fail(text, tb, **values))

    def checkpoint(self) -> None:
        """Raise ``JobCancelled`` if a cancel was requested and the job may still be
        cancelled (below its threshold). Reads the database at most once per throttle."""
        self._raise_if_closed()
        now = _monotonic()
        if now - self._last_check >= self._throttle:
            self._last_check = now
            self._refresh_control()
            self._raise_if_closed()
        if self.cancel_requested:
            record = self.record
            if record.cancellable and self.fraction < record.cancel_threshold:
                raise JobCancelled(f"job {record.pk} was cancelled")
            self.cancel_requested = False
            record.decline_cancel()

    # -- writing: ``jobrun.JobRun`` drives these for the run wrapper and the ticker --

    def _changed(self, force: bool = False) -> None:
        self._dirty = True
        now = _monotonic()
        self._last_report = now
        if force or now - self._last_write >= self._throttle:
            self._flush()

    def _values(self) -> dict[str, Any]:
        return {
            "progress": self.fraction,
            "current": self._current,
            "total": self._total,
            "stage": self._stage,
            "message": self._message,
            "fields": dict(self._fields),
        }

    def _flush(self) -> None:
        """Write pending changes now; a write refreshes the heartbeat too."""
        with self._lock:
            if not self._dirty or self._closed is not None:
                return
            self._dirty = False
            self._last_write = _monotonic()
            self.writes += 1
            won = self.record.save_progress(self._values())
        if not won:
            self._refresh_control()
            if threading.current_thread() is not self._owner_thread:
                return
            self._raise_if_closed()

    def _refresh_control(self) -> None:
        row = (
            JobRecord._base_manager.filter(pk=self.record.pk)
            .values("status", "error", "cancel_requested_at")
            .first()
        )
        if row is None:
            self._closed = f"job {self.record.pk} no longer exists"
        elif row["status"] != JobRecord.Status.RUNNING:
            reason = f": {row['error']}" if row["error"] else ""
            self._closed = f"job {self.record.pk} is {row['status']}{reason}"
        else:
            self.cancel_requested = row["cancel_requested_at"] is not None

    def _raise_if_closed(self) -> None:
        if self._closed is not None:
            raise JobNotRunning(self._closed)

    def _mark_closed(self, reason: str) -> None:
        """The job was ended outside the handle: every later call raises ``reason``."""
        self._closed = reason

    def _end(self, outcome: str, transition: Callable[[dict[str, Any]], bool]) -> bool:
        """Run a terminal transition with the final values; later calls raise."""
        self._raise_if_closed()
        with self._lock:
            self._dirty = False
            self.writes += 1
            won = transition(self._values())
            self._closed = f"job {self.record.pk} is {outcome}"
        return won
