"""The task class ``JobProgressBackend`` makes (``JobProgressTask``), what its code sees
(``JobTaskContext``) and the progress task the worker runs for it (``TaskJob``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from django.db import transaction
from django.utils.module_loading import import_string

from django_jobprogress.backends.framework import (
    InvalidTask,
    Task,
    TaskContext,
    TaskResult,
    task_enqueued,
    task_finished,
    task_started,
)
from django_jobprogress.backends.results import q_queue_of, task_result
from django_jobprogress.exceptions import JobProgressConfigurationError
from django_jobprogress.options import TaskOptions
from django_jobprogress.tasks import enqueue_or_find

if TYPE_CHECKING:
    from django_jobprogress.backends.backend import JobProgressBackend
    from django_jobprogress.models import Batch, JobRecord
    from django_jobprogress.progress import Progress

__all__ = ["JOB_OPTIONS", "JobEnqueue", "JobProgressTask", "JobTaskContext", "TaskJob"]

#: The job options a task (``@task(...)``) or a backend (``OPTIONS``) may set.
JOB_OPTIONS = tuple(name for name in TaskOptions.names() if name != "queue")


@dataclass(frozen=True, slots=True, kw_only=True)
class JobProgressTask(Task):  # type: ignore[type-arg]
    """A ``django.tasks`` task that runs as a tracked job.

    On Django >= 6.1 and the backport, ``@task(...)`` passes its other keyword
    arguments here, so a task sets its own job options; ``None`` takes the
    backend's ``OPTIONS``, then the ``JOBPROGRESS`` defaults.
    """

    cancellable: bool | None = None
    cancel_threshold: float | None = None
    throttle: float | None = None
    stall_timeout: float | None = None
    progress_timeout: float | None = None
    max_attempts: int | None = None
    timeout: int | None = None

    def job_options(self) -> dict[str, Any]:
        """The job options this task sets itself."""
        values = {name: getattr(self, name) for name in JOB_OPTIONS}
        return {name: value for name, value in values.items() if value is not None}

    def as_progress_task(self) -> TaskJob:
        """The progress task that runs this one (the worker resolves names to it)."""
        return _progress_tasks.setdefault(self, TaskJob(self))

    # ``registry.ProgressTask``, so the task itself may be a batch callback.
    def get_task_name(self) -> str:
        return self.module_path

    def get_options(self) -> TaskOptions:
        return self.as_progress_task().get_options()

    def perform(self, record: JobRecord, progress: Progress) -> Any:
        return self.as_progress_task().perform(record, progress)

    def using_job(
        self,
        *,
        owner: Any = None,
        key: str | None = None,
        batch: Batch | None = None,
        on_conflict: str = "return",
    ) -> JobEnqueue:
        """Enqueue with job options: ``task.using_job(owner=user, key="k").enqueue(...)``.

        ``owner`` may watch and cancel the job, ``key`` allows one unfinished job per
        key (a second enqueue returns the first one's result, or raises
        ``DuplicateJob`` with ``on_conflict="raise"``), ``batch`` makes it a member.
        """
        return JobEnqueue(self, owner=owner, key=key, batch=batch, on_conflict=on_conflict)


_progress_tasks: dict[JobProgressTask, TaskJob] = {}


@dataclass(frozen=True, slots=True, kw_only=True)
class JobTaskContext(TaskContext):  # type: ignore[type-arg,misc]  # frozen; stubs say not
    """What a ``takes_context=True`` task gets first: ``task_result``, the job's
    ``record``, its ``progress`` handle (the one ``JobProgressMixin`` gives) and
    ``checkpoint()``."""

    record: JobRecord
    progress: Progress

    @property
    def job_id(self) -> Any:
        return self.record.pk

    def checkpoint(self) -> None:
        """Stop here (raise ``JobCancelled``) if a cancel was requested."""
        self.progress.checkpoint()


class JobEnqueue:
    """``task.using_job(...)``: the task with the job options its enqueues take."""

    def __init__(self, task: Task[Any, Any], **job: Any) -> None:
        self.task = task
        self.job = job

    def enqueue(self, *args: Any, **kwargs: Any) -> TaskResult[Any, Any]:
        return backend_of(self.task).enqueue_job(self.task, args, kwargs, **self.job)

    async def aenqueue(self, *args: Any, **kwargs: Any) -> TaskResult[Any, Any]:
        from asgiref.sync import sync_to_async

        return await sync_to_async(self.enqueue, thread_sensitive=True)(*args, **kwargs)


class TaskJob:
    """The progress task (``registry.ProgressTask``) of a ``django.tasks`` task: what
    the worker runs, and what retries, batch callbacks and schedules enqueue."""

    def __init__(self, task: JobProgressTask) -> None:
        self.task = task

    def __repr__(self) -> str:
        return f"<TaskJob {self.task.module_path}>"

    def get_task_name(self) -> str:
        return self.task.module_path

    def get_options(self) -> TaskOptions:
        """The task's own job options over its backend's ``OPTIONS``."""
        backend = backend_of(self.task)
        return TaskOptions(**{**backend.job_options, **self.task.job_options()})

    def perform(self, record: JobRecord, progress: Progress) -> Any:
        """Run the task's function for ``record`` (``task_started`` first)."""
        backend = backend_of(self.task)
        result = task_result(record, self.task, backend.alias)
        transaction.on_commit(lambda: task_started.send(type(backend), task_result=result))
        if self.task.takes_context:
            context = JobTaskContext(task_result=result, record=record, progress=progress)
            return self.task.call(context, *record.args, **record.kwargs)
        return self.task.call(*record.args, **record.kwargs)

    def after_end(self, record: JobRecord) -> None:
        """``task_finished``, once the job's end is committed, wherever it ended
        (``receivers.tell_task``): in its worker, cancelled while pending, or closed
        by the sweep."""
        backend = backend_of(self.task)
        task_finished.send(type(backend), task_result=task_result(record, self.task, backend.alias))

    def enqueue(
        self,
        *args: Any,
        owner: Any = None,
        key: str | None = None,
        queue: str | None = None,
        on_conflict: str = "return",
        batch: Batch | None = None,
        **kwargs: Any,
    ) -> JobRecord:
        """Write a PENDING ``JobRecord`` for the task (``queue`` is django-q2's)."""
        _result, record = enqueue_tracked(
            self.task,
            args,
            kwargs,
            owner=owner,
            key=key,
            batch=batch,
            on_conflict=on_conflict,
            q_queue=queue,
        )
        return record


def backend_of(task: Task[Any, Any]) -> JobProgressBackend:
    """The ``JobProgressBackend`` ``task`` runs on (told by its ``job_options``, as
    ``backend`` imports this module)."""
    backend = task.get_backend()
    if not isinstance(getattr(backend, "job_options", None), dict):
        raise JobProgressConfigurationError(
            f"task {task.module_path!r} runs on backend {task.backend!r}, "
            f"which is not a JobProgressBackend"
        )
    return cast("JobProgressBackend", backend)


def found_again(task: Task[Any, Any]) -> JobProgressTask:
    """The module-level task ``task`` is (or is a ``using()`` copy of): the one the
    worker finds by its dotted path."""
    try:
        found = import_string(task.module_path)
    except ImportError:
        found = None
    if not isinstance(found, JobProgressTask) or found.func is not task.func:
        raise InvalidTask(
            f"{task.module_path!r} is not a task of JobProgressBackend, so the worker "
            f"cannot find it again: declare it at module level with @task"
        )
    if found.backend != task.backend:
        # The worker runs the declared task, with its backend's options.
        raise InvalidTask(
            f"{task.module_path!r} is declared for backend {found.backend!r}: "
            f"declare one task per backend instead of using(backend={task.backend!r})"
        )
    return found


def enqueue_tracked(
    task: Task[Any, Any],
    args: Any,
    kwargs: Any,
    *,
    owner: Any = None,
    key: str | None = None,
    batch: Batch | None = None,
    on_conflict: str = "return",
    q_queue: str | None = None,
) -> tuple[TaskResult[Any, Any], JobRecord]:
    """Check ``task`` and its arguments, write the PENDING record (or find the key's
    unfinished one) and send ``task_enqueued`` once it commits."""
    backend = backend_of(task)
    backend.validate_task(task)
    job = found_again(task).as_progress_task()

    def send_enqueued(record: JobRecord) -> None:
        # Once the row commits and before the hand-off: receivers hear of the job
        # before a worker can start it.
        task_enqueued.send(type(backend), task_result=task_result(record, task, backend.alias))

    record, _created = enqueue_or_find(
        job,
        tuple(args),
        dict(kwargs),
        owner=owner,
        key=key,
        queue=q_queue_of(task.queue_name) if q_queue is None else q_queue,
        on_conflict=on_conflict,
        batch=batch,
        on_created=send_enqueued,
    )
    return task_result(record, task, backend.alias), record
