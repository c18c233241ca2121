"""Visible, controllable background jobs for Django."""

from typing import TYPE_CHECKING, Any

from django_jobprogress.exceptions import JobCancelled, JobNotRunning

if TYPE_CHECKING:  # type checkers see the real names; at run time they load lazily
    from django_jobprogress.tasks import Call, JobProgressMixin, progress_task

__all__ = ["Call", "JobCancelled", "JobNotRunning", "JobProgressMixin", "progress_task"]
__version__ = "0.1.0"

_LAZY = {"Call", "JobProgressMixin", "progress_task"}


def __getattr__(name: str) -> Any:
    # The task API needs the models, so it loads on first use, after app loading.
    if name in _LAZY:
        from django.apps import apps
        from django.core.exceptions import AppRegistryNotReady

        if not apps.apps_ready:
            raise AppRegistryNotReady(
                f"django_jobprogress.{name} was used before Django's app registry is ready: "
                "import it from a module loaded after django.setup() (tasks.py, views.py), "
                "not from settings or an app's __init__."
            )
        from django_jobprogress import tasks

        return getattr(tasks, name)
    raise AttributeError(f"module 'django_jobprogress' has no attribute {name!r}")
