"""Django's task framework (``django.tasks``, or the ``django-tasks`` backport) on
django-q2, with a ``JobRecord`` a task: progress, cancel, batches, the admin.

``TASKS = {"default": {"BACKEND": "django_jobprogress.backends.JobProgressBackend"}}``.
Nothing else in the package imports this: Django loads it from that setting.
"""

from django_jobprogress.backends.backend import JobProgressBackend
from django_jobprogress.backends.results import JobFailed
from django_jobprogress.backends.task import JobProgressTask, JobTaskContext

__all__ = ["JobFailed", "JobProgressBackend", "JobProgressTask", "JobTaskContext"]
