"""The task API: ``JobProgressMixin`` (class form) and ``@progress_task`` (function form).

Both forms are found again in the worker by their dotted name, so define them
at module level. Enqueueing writes a PENDING ``JobRecord`` and, once that row
is committed, hands only its id to the queue adapter.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

from django.db import transaction
from django.utils.module_loading import import_string

from django_jobprogress import conf
from django_jobprogress.adapters import get_queue_adapter
from django_jobprogress.delivery import hand_off
from django_jobprogress.exceptions import JobProgressConfigurationError
from django_jobprogress.models import Batch, JobRecord
from django_jobprogress.progress import Progress
from django_jobprogress.validation import (
    check_fraction,
    check_json,
    check_owner,
    check_text,
    shown,
)

ON_CONFLICT_CHOICES = ("return", "raise")


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
        check_fraction("cancel_threshold", self.cancel_threshold)
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


class JobContext:
    """What running task code sees: its record, its progress handle, ``checkpoint()``."""

    record: JobRecord
    progress: Progress

    def _bind(self, record: JobRecord, progress: Progress) -> None:
        self.record = record
        self.progress = progress

    @property
    def job_id(self) -> Any:
        return self.record.pk

    def checkpoint(self) -> None:
        """Stop here (raise ``JobCancelled``) if a cancel was requested."""
        self.progress.checkpoint()


class JobProgressMixin(JobContext):
    """Base for class-form tasks: implement ``run(self, *args, **kwargs)``.

    Class attributes set the task's options (see ``TaskOptions``). The worker
    instantiates the class with no arguments for each run.
    """

    queue: str | None = None
    cancellable: bool = True
    cancel_threshold: float = 1.0
    throttle: float | None = None
    stall_timeout: float | None = None
    progress_timeout: float | None = None
    max_attempts: int | None = None
    timeout: int | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.get_options()  # a bad option fails at the class statement, naming the value

    def run(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must implement run()")

    @classmethod
    def get_task_name(cls) -> str:
        return f"{cls.__module__}.{cls.__qualname__}"

    @classmethod
    def get_options(cls) -> TaskOptions:
        return TaskOptions(**{name: getattr(cls, name) for name in TaskOptions.names()})

    @classmethod
    def enqueue(
        cls,
        *args: Any,
        owner: Any = None,
        key: str | None = None,
        queue: str | None = None,
        on_conflict: str = "return",
        batch: Any = None,
        **kwargs: Any,
    ) -> JobRecord:
        """Start the task in a worker; returns its PENDING ``JobRecord``.

        ``owner`` may watch and cancel it; ``key`` allows one unfinished job per key;
        ``batch`` (from ``Batch.open``) makes it a member of that batch.
        """
        options = dict(owner=owner, key=key, queue=queue, on_conflict=on_conflict, batch=batch)
        return enqueue(cls, args, kwargs, **options)

    @classmethod
    def perform(cls, record: JobRecord, progress: Progress) -> Any:
        instance = cls()
        instance._bind(record, progress)
        return instance.run(*record.args, **record.kwargs)


class ProgressTask:
    """A function made into a progress task by ``@progress_task``."""

    def __init__(self, func: Callable[..., Any], options: TaskOptions) -> None:
        self.func = func
        self.options = options
        functools.update_wrapper(self, func)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Call the function directly (no record): ``job`` is the first argument."""
        return self.func(*args, **kwargs)

    def get_task_name(self) -> str:
        return f"{self.func.__module__}.{self.func.__qualname__}"

    def get_options(self) -> TaskOptions:
        return self.options

    def enqueue(
        self,
        *args: Any,
        owner: Any = None,
        key: str | None = None,
        queue: str | None = None,
        on_conflict: str = "return",
        batch: Any = None,
        **kwargs: Any,
    ) -> JobRecord:
        """Start the task in a worker; returns its PENDING ``JobRecord``.

        ``owner`` may watch and cancel it; ``key`` allows one unfinished job per key;
        ``batch`` (from ``Batch.open``) makes it a member of that batch.
        """
        options = dict(owner=owner, key=key, queue=queue, on_conflict=on_conflict, batch=batch)
        return enqueue(self, args, kwargs, **options)

    def perform(self, record: JobRecord, progress: Progress) -> Any:
        context = JobContext()
        context._bind(record, progress)
        return self.func(context, *record.args, **record.kwargs)


def progress_task(func: Callable[..., Any] | None = None, **options: Any) -> Any:
    """Make a function a progress task; its first argument is the job context.

    ``@progress_task`` or ``@progress_task(queue="mail", cancellable=False, ...)``.
    """
    unknown = sorted(set(options) - set(TaskOptions.names()))
    if unknown:
        raise TypeError(f"progress_task() got unknown options: {', '.join(unknown)}")
    task_options = TaskOptions(**options)

    def decorate(f: Callable[..., Any]) -> ProgressTask:
        return ProgressTask(f, task_options)

    return decorate(func) if func is not None else decorate


def resolve_task(name: str) -> Any:
    """The task object (class or ``ProgressTask``) registered under ``name``."""
    try:
        task = import_string(name)
    except ImportError as exc:
        raise JobProgressConfigurationError(f"task {name!r} cannot be imported: {exc}") from exc
    if not hasattr(task, "perform") or not hasattr(task, "get_options"):
        raise JobProgressConfigurationError(f"{name!r} is not a progress task")
    return task


def _owner_or_none(owner: Any) -> Any:
    """A saved user, or None for ``None`` / ``AnonymousUser``; anything else raises."""
    return check_owner("owner", owner)


def enqueue(
    task: Any,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    *,
    owner: Any = None,
    key: str | None = None,
    queue: str | None = None,
    on_conflict: str = "return",
    batch: Any = None,
) -> JobRecord:
    """Write the PENDING row (counted in ``batch``, if given) and hand it to the queue
    once committed. Every value is checked first: a bad one raises, naming it, and
    nothing is written."""
    name = task.get_task_name()
    try:
        found = import_string(name)
    except ImportError:
        found = None
    if found is not task:
        raise JobProgressConfigurationError(
            f"{name!r} cannot be found again by its dotted name: define progress tasks "
            "at module level"
        )
    if on_conflict not in ON_CONFLICT_CHOICES:
        raise ValueError(f"on_conflict must be 'return' or 'raise', got {on_conflict!r}")
    if key is not None:
        if not isinstance(key, str) or not key or len(key) > 255:
            raise ValueError(
                f"key must be a non-empty string of at most 255 characters, got {shown(key)}"
            )
        check_text("key", key)
    if queue is not None and not isinstance(queue, str):
        raise TypeError(f"queue must be a string, got {queue!r}")
    if batch is not None and not isinstance(batch, Batch):
        raise TypeError(f"batch must be a Batch (from Batch.open(...)), got {batch!r}")
    for position, value in enumerate(args, 1):
        check_json(f"argument {position}", value)
    for kw, value in kwargs.items():
        check_text(f"argument name {kw!r}", kw)
        check_json(f"argument {kw!r}", value)
    owner = _owner_or_none(owner)
    options = task.get_options()
    queue = check_text("queue", queue or options.queue or "")
    if len(queue) > 100:
        raise ValueError(f"queue must be at most 100 characters, got {shown(queue)}")

    adapter = get_queue_adapter()
    record, created = JobRecord.objects.create_pending(
        on_conflict=on_conflict,
        task_name=name,
        args=list(args),
        kwargs=kwargs,
        owner=owner,
        key=key,
        batch=batch,
        queue=queue,
        cancellable=options.cancellable,
        cancel_threshold=options.cancel_threshold,
        stall_timeout=options.effective_stall_timeout(),
        progress_timeout=options.progress_timeout,
        max_attempts=_max_attempts(options, adapter),
    )
    if created:
        # A refused hand-off leaves the row PENDING for the sweep; the caller goes on.
        transaction.on_commit(functools.partial(hand_off, record, options))
    return record


def _max_attempts(options: TaskOptions, adapter: Any) -> int:
    if not adapter.supports_retries:
        return 1
    return adapter.cap_attempts(options.max_attempts or adapter.default_max_attempts())
