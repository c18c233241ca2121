"""The task API: ``JobProgressMixin`` and ``@progress_task``, which makes a function one.

Either way a task is a ``JobProgressMixin`` subclass (``@progress_task`` builds
one around the function), so both forms share ``enqueue()``, ``perform()`` and
``TaskOptions``, and both are a ``registry.ProgressTask``. The worker finds a
task again by its dotted name, so define tasks at module level. Enqueueing
writes a PENDING ``JobRecord`` and, once that row is committed, hands only its
id to the queue adapter; a queue kept in the same database (django-q2's ORM
broker) gets its message in the row's own transaction, so both commit together.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast, overload

from django.db import transaction
from django.utils.module_loading import import_string

from django_jobprogress.adapters import get_queue_adapter
from django_jobprogress.delivery import hand_off, hand_off_many
from django_jobprogress.exceptions import JobProgressConfigurationError
from django_jobprogress.models import Batch, JobRecord
from django_jobprogress.options import TaskOptions
from django_jobprogress.registry import ProgressTask, resolve_task
from django_jobprogress.validation import shown, validate_json, validate_owner, validate_text

if TYPE_CHECKING:
    from django_jobprogress.adapters.base import QueueAdapter
    from django_jobprogress.progress import Progress

__all__ = [
    "Call",
    "JobContext",
    "JobProgressMixin",
    "ProgressTask",
    "TaskOptions",
    "enqueue",
    "enqueue_many",
    "enqueue_or_find",
    "progress_task",
    "resolve_task",
]

ON_CONFLICT_CHOICES = ("return", "raise")
#: Rows per INSERT and messages per broker round trip in ``enqueue_many``.
CHUNK_SIZE = 500


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
        batch: Batch | None = None,
        **kwargs: Any,
    ) -> JobRecord:
        """Start the task in a worker; returns its PENDING ``JobRecord``.

        ``owner`` may watch and cancel it; ``key`` allows one unfinished job per key;
        ``batch`` (from ``Batch.open``) makes it a member of that batch.
        """
        options = dict(owner=owner, key=key, queue=queue, on_conflict=on_conflict, batch=batch)
        return enqueue(cls, args, kwargs, **options)

    @classmethod
    def enqueue_many(
        cls,
        calls: Iterable[Call | tuple[Any, ...] | list[Any]],
        *,
        owner: Any = None,
        queue: str | None = None,
        on_conflict: str = "return",
        batch: Batch | None = None,
        chunk_size: int = CHUNK_SIZE,
    ) -> list[JobRecord]:
        """Start one job per call (``Call(*args, key=..., **kwargs)`` or a tuple of
        positional arguments) in a few statements; returns their PENDING records.

        All or nothing: a bad call raises, naming its position, and nothing is
        written. See ``django_jobprogress.tasks.enqueue_many``.
        """
        options = dict(owner=owner, queue=queue, on_conflict=on_conflict, batch=batch)
        return enqueue_many(cls, calls, chunk_size=chunk_size, **options)

    @classmethod
    def perform(cls, record: JobRecord, progress: Progress) -> Any:
        """Run ``run(*args, **kwargs)`` of ``record`` on a new instance bound to it."""
        # type.__call__, not cls(): calling a function task calls its function.
        instance = type.__call__(cls)
        instance._bind(record, progress)
        return instance.run(*record.args, **record.kwargs)


class _FunctionTaskType(type):
    """The type of a task made by ``@progress_task``: calling it calls the function."""

    __wrapped__: Callable[..., Any]

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        """Call the function directly (no record): ``job`` is the first argument."""
        return cls.__wrapped__(*args, **kwargs)

    def __repr__(cls) -> str:
        return f"<progress task {cls.__module__}.{cls.__qualname__}>"


def _function_task(func: Callable[..., Any], options: TaskOptions) -> type[JobProgressMixin]:
    """A ``JobProgressMixin`` subclass named as ``func`` whose ``run`` calls ``func``
    with the instance (the job context) first."""

    def run(self: JobProgressMixin, *args: Any, **kwargs: Any) -> Any:
        return func(self, *args, **kwargs)

    namespace: dict[str, Any] = {name: getattr(options, name) for name in TaskOptions.names()}
    namespace.update(
        run=run,
        # Kept from when the function form was a wrapper object: ``func`` and ``options``.
        func=staticmethod(func),
        options=options,
        __module__=func.__module__,
        __qualname__=func.__qualname__,
        __doc__=func.__doc__,
        __wrapped__=func,
    )
    task = _FunctionTaskType(func.__name__, (JobProgressMixin,), namespace)
    return cast("type[JobProgressMixin]", task)


@overload
def progress_task(func: Callable[..., Any], **options: Any) -> type[JobProgressMixin]: ...


@overload
def progress_task(
    func: None = None, **options: Any
) -> Callable[[Callable[..., Any]], type[JobProgressMixin]]: ...


def progress_task(func: Callable[..., Any] | None = None, **options: Any) -> Any:
    """Make a function a progress task; its first argument is the job context.

    ``@progress_task`` or ``@progress_task(queue="mail", cancellable=False, ...)``.
    The result is a ``JobProgressMixin`` subclass that still calls the function
    when called.
    """
    unknown = sorted(set(options) - set(TaskOptions.names()))
    if unknown:
        raise TypeError(f"progress_task() got unknown options: {', '.join(unknown)}")
    task_options = TaskOptions(**options)

    def decorate(f: Callable[..., Any]) -> type[JobProgressMixin]:
        return _function_task(f, task_options)

    return decorate(func) if func is not None else decorate


def _owner_or_none(owner: Any) -> Any:
    """A saved user, or None for ``None`` / ``AnonymousUser``; anything else raises."""
    return validate_owner("owner", owner)


class Call:
    """One call of a task in ``enqueue_many()``: its arguments and, optionally, its own
    ``key`` (the same ``key`` ``enqueue()`` takes). ``Call(*args, key=None, **kwargs)``;
    a plain tuple or list of positional arguments is a ``Call`` without key."""

    __slots__ = ("args", "key", "kwargs")

    def __init__(self, *args: Any, key: str | None = None, **kwargs: Any) -> None:
        self.args = args
        self.kwargs = kwargs
        self.key = key

    def __repr__(self) -> str:
        parts = [repr(arg) for arg in self.args]
        parts += [f"{name}={value!r}" for name, value in self.kwargs.items()]
        if self.key is not None:
            parts.append(f"key={self.key!r}")
        return f"Call({', '.join(parts)})"


def enqueue(
    task: ProgressTask,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    *,
    owner: Any = None,
    key: str | None = None,
    queue: str | None = None,
    on_conflict: str = "return",
    batch: Batch | None = None,
) -> JobRecord:
    """Write the PENDING row (counted in ``batch``, if given) and hand it to the queue
    once committed. Every value is checked first: a bad one raises, naming it, and
    nothing is written."""
    options = dict(owner=owner, key=key, queue=queue, on_conflict=on_conflict, batch=batch)
    record, _created = enqueue_or_find(task, args, kwargs, **options)
    return record


def enqueue_or_find(
    task: ProgressTask,
    args: tuple[Any, ...] | list[Any],
    kwargs: dict[str, Any],
    *,
    owner: Any = None,
    key: str | None = None,
    queue: str | None = None,
    on_conflict: str = "return",
    batch: Batch | None = None,
    max_attempts: int | None = None,
    scheduled_for: datetime | None = None,
    on_created: Callable[[JobRecord], None] | None = None,
) -> tuple[JobRecord, bool]:
    """``enqueue``, also telling whether the record is new (False: it is the key's
    unfinished job, returned under ``on_conflict="return"``).

    ``max_attempts`` overrides the task's; ``scheduled_for`` is the schedule slot
    the run is for; ``on_created(record)`` is called once a new record commits,
    before the queue can start it (django.tasks' ``task_enqueued``).
    """
    _check_call(args, kwargs, key)
    fields, options = _shared_fields(task, owner, queue, on_conflict, batch, max_attempts)
    adapter, db = get_queue_adapter(), JobRecord.objects.db
    write = functools.partial(
        JobRecord.objects.create_pending,
        on_conflict=on_conflict,
        **fields,
        args=list(args),
        kwargs=kwargs,
        key=key,
        scheduled_for=scheduled_for,
    )
    if adapter.enqueues_in_transaction(db, fields["queue"]):
        # The queue lives in the same database: the row and its message commit together.
        with transaction.atomic(using=db):
            record, created = write()
            if created:
                if on_created is not None:
                    transaction.on_commit(functools.partial(on_created, record), using=db)
                hand_off(record, options, in_transaction=True)
        return record, created
    record, created = write()
    if created:
        if on_created is not None:  # registered first, so it runs before the hand-off
            transaction.on_commit(functools.partial(on_created, record), using=db)
        # A refused hand-off leaves the row PENDING for the sweep; the caller goes on.
        transaction.on_commit(functools.partial(hand_off, record, options), using=db)
    return record, created


def enqueue_many(
    task: ProgressTask,
    calls: Iterable[Call | tuple[Any, ...] | list[Any]],
    *,
    owner: Any = None,
    queue: str | None = None,
    on_conflict: str = "return",
    batch: Batch | None = None,
    chunk_size: int = CHUNK_SIZE,
) -> list[JobRecord]:
    """Enqueue one job of ``task`` per call, sharing ``owner``, ``queue`` and ``batch``;
    return their records in call order.

    All or nothing: every call is checked before anything is written, and a bad one
    raises naming its position and value. The rows are written ``chunk_size`` to an
    INSERT, in one transaction (the caller's, if any), and handed to the queue once
    it commits, ``chunk_size`` to a broker round trip where the broker allows it. A
    call whose ``key`` is taken by an unfinished job (or by an earlier call) follows
    ``on_conflict``: ``"return"`` gives that job in its place, ``"raise"`` raises
    ``DuplicateJob`` (``ValueError`` for two calls with one key) and writes nothing.
    """
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    wanted = []
    for position, call in enumerate(calls, 1):
        args, kwargs, key = _unpack(position, call)
        try:
            _check_call(args, kwargs, key)
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"call {position}: {exc}") from None
        wanted.append((list(args), kwargs, key))
    fields, options = _shared_fields(task, owner, queue, on_conflict, batch, None)
    if not wanted:
        return []
    adapter, db = get_queue_adapter(), JobRecord.objects.db
    write = functools.partial(
        JobRecord.objects.create_pending_many,
        fields,
        wanted,
        on_conflict=on_conflict,
        chunk_size=chunk_size,
    )
    if adapter.enqueues_in_transaction(db, fields["queue"]):
        with transaction.atomic(using=db):  # the rows and their messages commit together
            records, created = write()
            hand_off_many(created, options, chunk_size, in_transaction=True)
        return records
    records, created = write()
    if created:
        hand_off_all = functools.partial(hand_off_many, created, options, chunk_size)
        transaction.on_commit(hand_off_all, using=db)
    return records


def _unpack(position: int, call: Any) -> tuple[tuple[Any, ...], dict[str, Any], str | None]:
    if isinstance(call, Call):
        return call.args, call.kwargs, call.key
    if isinstance(call, tuple | list):
        return tuple(call), {}, None
    raise TypeError(
        f"call {position} must be a Call(...) or a tuple or list of positional arguments, "
        f"got {shown(call)}"
    )


def _check_call(args: tuple[Any, ...] | list[Any], kwargs: dict[str, Any], key: Any) -> None:
    """Check one call's key and arguments (JSON a database can store)."""
    if key is not None:
        if not isinstance(key, str) or not key or len(key) > 255:
            raise ValueError(
                f"key must be a non-empty string of at most 255 characters, got {shown(key)}"
            )
        validate_text("key", key)
    for position, value in enumerate(args, 1):
        validate_json(f"argument {position}", value)
    for kw, value in kwargs.items():
        validate_text(f"argument name {kw!r}", kw)
        validate_json(f"argument {kw!r}", value)


def _shared_fields(
    task: ProgressTask,
    owner: Any,
    queue: str | None,
    on_conflict: str,
    batch: Batch | None,
    max_attempts: int | None,
) -> tuple[dict[str, Any], TaskOptions]:
    """The checked fields every job of one enqueue shares, and the task's options."""
    name = task.get_task_name()
    try:
        found = import_string(name)
    except ImportError:
        found = None
    # A django.tasks Task made by JobProgressBackend stands for its progress task.
    as_progress_task = getattr(found, "as_progress_task", None)
    if found is not task and (as_progress_task is None or as_progress_task() is not task):
        raise JobProgressConfigurationError(
            f"{name!r} cannot be found again by its dotted name: define progress tasks "
            "at module level"
        )
    if on_conflict not in ON_CONFLICT_CHOICES:
        raise ValueError(f"on_conflict must be 'return' or 'raise', got {on_conflict!r}")
    if queue is not None and not isinstance(queue, str):
        raise TypeError(f"queue must be a string, got {queue!r}")
    if batch is not None and not isinstance(batch, Batch):
        raise TypeError(f"batch must be a Batch (from Batch.open(...)), got {batch!r}")
    owner = _owner_or_none(owner)
    options = task.get_options()
    queue = validate_text("queue", queue or options.queue or "")
    if len(queue) > 100:
        raise ValueError(f"queue must be at most 100 characters, got {shown(queue)}")
    adapter = get_queue_adapter()
    fields = dict(
        task_name=name,
        owner=owner,
        batch=batch,
        queue=queue,
        cancellable=options.cancellable,
        cancel_threshold=options.cancel_threshold,
        stall_timeout=options.effective_stall_timeout(),
        progress_timeout=options.progress_timeout,
        max_attempts=_max_attempts(max_attempts or options.max_attempts, adapter),
    )
    return fields, options


def _max_attempts(wanted: int | None, adapter: QueueAdapter) -> int:
    if not adapter.supports_retries:
        return 1
    return adapter.cap_attempts(wanted or adapter.default_max_attempts())
