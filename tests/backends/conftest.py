"""The backend's tests: ``TASKS`` names ``JobProgressBackend`` for the whole run, as the
sample tasks (``tests/backends/tasks_jobs.py``) are declared for it at import.

Without Django's task framework (Django < 6.0 and no ``django-tasks`` backport) the
test modules skip; ``framework`` below tells which one runs.
"""

import importlib.util

from django.test.utils import override_settings

from tests.backends.worker_settings import TASKS


def _framework():
    for name in ("django.tasks", "django_tasks"):
        try:
            if importlib.util.find_spec(name) is not None:
                return name
        except ImportError:
            continue
    return None


FRAMEWORK = _framework()

if FRAMEWORK is not None:
    # Not undone: only django.tasks reads TASKS, and only these tests use it.
    override_settings(TASKS=TASKS).enable()
