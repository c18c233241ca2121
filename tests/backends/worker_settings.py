"""``tests.settings`` with ``TASKS`` naming ``JobProgressBackend``: the settings of the
qcluster these tests start, and (through ``conftest.py``) of this test process."""

from tests.settings import *  # noqa: F403

BACKEND = "django_jobprogress.backends.JobProgressBackend"

TASKS = {
    "default": {"BACKEND": BACKEND, "QUEUES": ["default", "mail"]},
    # A second backend whose OPTIONS set the job options of its tasks.
    "careful": {
        "BACKEND": BACKEND,
        "OPTIONS": {"max_attempts": 2, "stall_timeout": 45, "cancellable": False},
    },
}
