"""``TaskOptions``: how a progress task runs, checked when the task is defined.

Part of the foundation: it imports only ``conf`` and ``validation``, so the
queue adapters, the outbox and the state layer may name it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

from django_jobprogress import conf
from django_jobprogress.validation import validate_fraction


def _seconds(name: str, value: Any) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number of seconds, got {value!r}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite, non-negative number of seconds, got {value!r}")


@dataclass(frozen=True)
class TaskOptions:
    """How a progress task runs; every value is checked when the task is defined
    (the decorator call, or the class statement of a ``JobProgressMixin`` subclass)."""

    queue: str | None = None
    cancellable: bool = True
    cancel_threshold: float = 1.0
    throttle: float | None = None
    stall_timeout: float | None = None
    progress_timeout: float | None = None
    max_attempts: int | None = None
    timeout: int | None = None

    def __post_init__(self) -> None:
        if self.queue is not None and not isinstance(self.queue, str):
            raise TypeError(f"queue must be a string, got {self.queue!r}")
        if not isinstance(self.cancellable, bool):
            raise TypeError(f"cancellable must be True or False, got {self.cancellable!r}")
        validate_fraction("cancel_threshold", self.cancel_threshold)
        for name in ("throttle", "stall_timeout", "progress_timeout"):
            _seconds(name, getattr(self, name))
        if self.timeout is not None and (
            isinstance(self.timeout, bool) or not isinstance(self.timeout, int) or self.timeout < 1
        ):
            # django-q2 arms signal.alarm(), which takes whole seconds.
            raise ValueError(
                f"timeout must be a whole number of seconds >= 1, got {self.timeout!r}"
            )
        if self.max_attempts is not None and (
            isinstance(self.max_attempts, bool)
            or not isinstance(self.max_attempts, int)
            or self.max_attempts < 1
        ):
            raise ValueError(f"max_attempts must be an integer >= 1, got {self.max_attempts!r}")

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    def effective_throttle(self) -> float:
        return conf.get("THROTTLE") if self.throttle is None else self.throttle

    def effective_stall_timeout(self) -> float:
        return conf.get("STALL_TIMEOUT") if self.stall_timeout is None else self.stall_timeout
