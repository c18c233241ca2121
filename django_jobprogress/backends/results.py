"""A ``JobRecord`` read as django.tasks' ``TaskResult``: statuses, errors, workers."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from django_jobprogress.backends.framework import (
    DEFAULT_TASK_QUEUE_NAME,
    TaskError,
    TaskResult,
    TaskResultDoesNotExist,
    TaskResultStatus,
)
from django_jobprogress.exceptions import JobCancelled
from django_jobprogress.execution import worker_id
from django_jobprogress.jobrun import attempt_workers, class_path
from django_jobprogress.models import JobRecord

if TYPE_CHECKING:
    from django_jobprogress.backends.framework import Task

__all__ = ["JobFailed", "q_queue_of", "queue_name_of", "read_record", "task_result"]

Status = JobRecord.Status

#: A job's status as django.tasks tells it: a retry waiting is READY again, a cancelled
#: job is FAILED (its error names the cancel).
STATUSES = {
    Status.PENDING: TaskResultStatus.READY,
    Status.RUNNING: TaskResultStatus.RUNNING,
    Status.COMPLETED: TaskResultStatus.SUCCESSFUL,
    Status.FAILED: TaskResultStatus.FAILED,
    Status.CANCELLED: TaskResultStatus.FAILED,
}


class JobFailed(Exception):
    """Named by a ``TaskError`` when a job failed without an exception of its own: its
    worker was lost, it made no progress within its ``progress_timeout``, or its end
    could not be stored. The error text is the traceback's last line."""


def q_queue_of(queue_name: str) -> str:
    """The django-q2 queue (cluster) of a django.tasks queue: ``"default"`` is
    django-q2's default cluster, any other name the cluster of that name."""
    return "" if queue_name == DEFAULT_TASK_QUEUE_NAME else queue_name


def queue_name_of(q_queue: str) -> str:
    return q_queue or DEFAULT_TASK_QUEUE_NAME


def read_record(result_id: Any) -> JobRecord:
    """The record of ``result_id``; ``TaskResultDoesNotExist`` for a malformed or
    unknown id."""
    try:
        pk = uuid.UUID(str(result_id))
    except ValueError:
        raise TaskResultDoesNotExist(f"{result_id!r} is not a job id") from None
    record = JobRecord.objects.filter(pk=pk).first()
    if record is None:
        raise TaskResultDoesNotExist(f"no job has the id {result_id!r}")
    return record


def task_result(record: JobRecord, task: Task[Any, Any], backend: str) -> TaskResult[Any, Any]:
    """``record`` as a ``TaskResult`` of ``task`` on the backend ``backend``."""
    status = STATUSES[record.status]  # type: ignore[index]
    result: TaskResult[Any, Any] = TaskResult(
        task=task,
        id=str(record.pk),
        status=status,
        enqueued_at=record.created_at,
        started_at=record.started_at,
        finished_at=record.finished_at,
        last_attempted_at=record.started_at,
        args=list(record.args),
        kwargs=dict(record.kwargs),
        backend=backend,
        errors=task_errors(record),
        worker_ids=attempt_workers(record.worker_ids, record.attempts, worker_id(record)),
    )
    if status == TaskResultStatus.SUCCESSFUL:
        object.__setattr__(result, "_return_value", record.result)
    return result


def task_errors(record: JobRecord) -> list[TaskError]:
    """The error of the job's latest failed attempt (or its cancel), as a ``TaskError``.

    The record keeps one error: a job that failed, was retried and then
    succeeded has none left, as its ``error`` field is cleared too.
    """
    cancelled = record.status == Status.CANCELLED
    if record.status == Status.COMPLETED or not (
        record.error or record.exception_class_path or cancelled
    ):
        return []
    path = record.exception_class_path
    if path and record.traceback:
        return [TaskError(exception_class_path=path, traceback=record.traceback)]
    if cancelled:
        path = path or class_path(JobCancelled())
        text = record.error or f"job {record.pk} was cancelled"
    else:
        path = path or class_path(JobFailed())
        text = record.error
    return [TaskError(exception_class_path=path, traceback=f"{path}: {text}\n")]
