"""Django's task framework: ``django.tasks`` (Django >= 6.0), else the ``django-tasks``
backport (``pip install django-jobprogress[tasks]``).

The rest of the backend imports the framework from here only. Type checkers read
Django's own (django-stubs); at run time the first of the two that imports wins.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from django.tasks import (
        DEFAULT_TASK_QUEUE_NAME,
        Task,
        TaskContext,
        TaskResult,
        TaskResultStatus,
    )
    from django.tasks.backends.base import BaseTaskBackend
    from django.tasks.base import TaskError
    from django.tasks.exceptions import InvalidTask, TaskResultDoesNotExist
    from django.tasks.signals import task_enqueued, task_finished, task_started

    PROVIDER: str
else:
    try:
        from django.tasks import (
            DEFAULT_TASK_QUEUE_NAME,
            Task,
            TaskContext,
            TaskResult,
            TaskResultStatus,
        )
        from django.tasks.backends.base import BaseTaskBackend
        from django.tasks.base import TaskError
        from django.tasks.exceptions import InvalidTask, TaskResultDoesNotExist
        from django.tasks.signals import task_enqueued, task_finished, task_started

        PROVIDER = "django.tasks"
    except ImportError:
        try:
            import django_tasks  # noqa: F401
        except ImportError as exc:
            raise ImportError(
                "django_jobprogress.backends needs Django's task framework: Django >= 6.0, "
                "or the django-tasks backport (pip install django-jobprogress[tasks])"
            ) from exc
        from django_tasks import DEFAULT_TASK_QUEUE_NAME, TaskContext, TaskResult, TaskResultStatus
        from django_tasks.backends.base import BaseTaskBackend
        from django_tasks.base import Task, TaskError
        from django_tasks.exceptions import InvalidTaskError as InvalidTask
        from django_tasks.exceptions import TaskResultDoesNotExist
        from django_tasks.signals import task_enqueued, task_finished, task_started

        PROVIDER = "django_tasks"

__all__ = [
    "DEFAULT_TASK_QUEUE_NAME",
    "PROVIDER",
    "BaseTaskBackend",
    "InvalidTask",
    "Task",
    "TaskContext",
    "TaskError",
    "TaskResult",
    "TaskResultDoesNotExist",
    "TaskResultStatus",
    "task_enqueued",
    "task_finished",
    "task_started",
]
