"""``registry``: what a progress task is, and finding one again by its dotted path."""

import subprocess
import sys

import pytest

from django_jobprogress.exceptions import JobProgressConfigurationError
from django_jobprogress.registry import ProgressTask, resolve_task
from tests import jobs


@pytest.mark.parametrize("task", [jobs.ZipExport, jobs.send_newsletter], ids=["class", "function"])
def test_both_task_forms_are_progress_tasks_found_again_by_their_name(task):
    assert isinstance(task, ProgressTask)
    assert resolve_task(task.get_task_name()) is task


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("tests.jobs.gates", "'tests.jobs.gates' is not a progress task"),
        ("tests.jobs._nested", "'tests.jobs._nested' is not a progress task"),
        ("tests.jobs.UNSTORABLE_RESULTS", "'tests.jobs.UNSTORABLE_RESULTS' is not a progress task"),
        ("tests.jobs.missing", "task 'tests.jobs.missing' cannot be imported"),
        ("no_such_module.Task", "task 'no_such_module.Task' cannot be imported"),
        ("nodots", "task 'nodots' cannot be imported"),
    ],
)
def test_resolve_task_refuses_what_is_not_a_task_naming_it(path, message):
    with pytest.raises(JobProgressConfigurationError, match=f"^{message}"):
        resolve_task(path)


def test_an_object_with_the_four_methods_is_a_progress_task():
    class Custom:
        def get_task_name(self):
            return "x.Custom"

        def get_options(self):
            raise NotImplementedError

        def perform(self, record, progress):
            raise NotImplementedError

        def enqueue(self, *args, **kwargs):
            raise NotImplementedError

    assert isinstance(Custom(), ProgressTask)
    assert not isinstance(object(), ProgressTask)


def test_the_registry_and_the_task_options_import_nothing_above_the_foundation():
    code = (
        "import sys\n"
        "import django_jobprogress.registry, django_jobprogress.options\n"
        "above = ('tasks', 'progress', 'jobrun', 'models', 'adapters', 'execution')\n"
        "loaded = [m for m in above if 'django_jobprogress.' + m in sys.modules]\n"
        "assert not loaded, loaded\n"
        "assert not [m for m in sys.modules if m.split('.')[0] in ('django_q', 'channels')]\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
