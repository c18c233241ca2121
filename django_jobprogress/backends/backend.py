"""``JobProgressBackend``: django.tasks' backend API on django-q2, one JobRecord a task."""

from __future__ import annotations

from typing import Any

from django.utils.module_loading import import_string

from django_jobprogress.backends.framework import (
    BaseTaskBackend,
    InvalidTask,
    Task,
    TaskResult,
    TaskResultDoesNotExist,
)
from django_jobprogress.backends.results import read_record, task_result
from django_jobprogress.backends.task import JOB_OPTIONS, JobProgressTask, enqueue_tracked
from django_jobprogress.exceptions import JobProgressConfigurationError
from django_jobprogress.models import Batch
from django_jobprogress.options import TaskOptions

__all__ = ["JobProgressBackend"]


class JobProgressBackend(BaseTaskBackend):
    """Runs ``django.tasks`` tasks on django-q2, each as a tracked ``JobRecord``.

    ``TASKS = {"default": {"BACKEND": "django_jobprogress.backends.JobProgressBackend",
    "QUEUES": ["default", "mail"], "OPTIONS": {"max_attempts": 3}}}``: ``QUEUES``
    are django-q2 clusters (``"default"`` is django-q2's default one), ``OPTIONS``
    the job options of its tasks that set none themselves.
    """

    task_class = JobProgressTask

    #: ``run_after`` cannot be honoured: django-q2 hands a task to a worker at once.
    supports_defer = False
    #: The worker runs a function in its own thread; progress writes are synchronous.
    supports_async_task = False
    #: Any process reads a result back from its JobRecord.
    supports_get_result = True
    #: django-q2 runs a queue first in, first out.
    supports_priority = False

    def __init__(self, alias: str, params: dict[str, Any]) -> None:
        super().__init__(alias, params)
        options = dict(self.options)
        unknown = sorted(set(options) - set(JOB_OPTIONS))
        if unknown:
            raise JobProgressConfigurationError(
                f"TASKS[{alias!r}]['OPTIONS'] has unknown keys: {', '.join(map(repr, unknown))} "
                f"(known: {', '.join(JOB_OPTIONS)})"
            )
        try:
            TaskOptions(**options)
        except (TypeError, ValueError) as exc:
            raise JobProgressConfigurationError(f"TASKS[{alias!r}]['OPTIONS']: {exc}") from exc
        self.job_options: dict[str, Any] = options

    def validate_task(self, task: Task[Any, Any]) -> None:
        """The framework's checks, then the job options (a bad one names itself)."""
        super().validate_task(task)
        if not isinstance(task, JobProgressTask):
            raise InvalidTask(
                f"{task.module_path!r} was made for another backend: declare it with "
                f"@task(backend={self.alias!r}) to run it on JobProgressBackend"
            )
        try:
            TaskOptions(**{**self.job_options, **task.job_options()})
        except (TypeError, ValueError) as exc:
            raise InvalidTask(f"task {task.module_path!r}: {exc}") from exc

    def enqueue(self, task: Task[Any, Any], args: Any, kwargs: Any) -> TaskResult[Any, Any]:
        """Write the task's PENDING ``JobRecord`` and hand it to django-q2 once it
        commits; a READY result whose ``id`` is the record's. A non-JSON argument
        raises, naming it, and nothing is written."""
        return self.enqueue_job(task, args, kwargs)

    def enqueue_job(
        self,
        task: Task[Any, Any],
        args: Any,
        kwargs: Any,
        *,
        owner: Any = None,
        key: str | None = None,
        batch: Batch | None = None,
        on_conflict: str = "return",
    ) -> TaskResult[Any, Any]:
        """``enqueue`` with the job options ``task.using_job(...)`` gives."""
        result, _record = enqueue_tracked(
            task, args, kwargs, owner=owner, key=key, batch=batch, on_conflict=on_conflict
        )
        return result

    def get_result(self, result_id: str) -> TaskResult[Any, Any]:
        """The result of the job ``result_id``, read from its record; raises
        ``TaskResultDoesNotExist`` for an unknown or malformed id, or the id of a job
        that is not a django.tasks task's."""
        record = read_record(result_id)
        try:
            task = import_string(record.task_name)
        except ImportError:
            task = None
        if not isinstance(task, Task):
            raise TaskResultDoesNotExist(
                f"job {result_id} runs {record.task_name!r}, which is not a django.tasks task"
            )
        return task_result(record, task, self.alias)
