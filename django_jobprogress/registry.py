"""What a progress task is (``ProgressTask``) and how the worker finds one again by name.

A task is found by the dotted path it was enqueued under, so this module needs
nothing from the task API, the reporting layer or the state layer at run time:
the runner, batches, the recovery sweep and the queue adapters depend on the
``ProgressTask`` protocol, never on ``tasks``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from django.utils.module_loading import import_string

from django_jobprogress.exceptions import JobProgressConfigurationError

if TYPE_CHECKING:
    from django_jobprogress.models import Batch, JobRecord
    from django_jobprogress.options import TaskOptions
    from django_jobprogress.progress import Progress

__all__ = ["ProgressTask", "resolve_task"]


@runtime_checkable
class ProgressTask(Protocol):
    """A progress task: a ``JobProgressMixin`` subclass, written as a class or made
    from a function by ``@progress_task``. The class itself is the task: these are
    its class methods."""

    def get_task_name(self) -> str:
        """The dotted path the worker finds the task again by."""
        ...

    def get_options(self) -> TaskOptions:
        """The task's checked options (queue, cancellation, timeouts, attempts)."""
        ...

    def perform(self, record: JobRecord, progress: Progress) -> Any:
        """Run the task's code for ``record``, reporting through ``progress``."""
        ...

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
        """Write a PENDING ``JobRecord`` for the task and hand it to the queue."""
        ...


def resolve_task(name: str) -> ProgressTask:
    """The task registered under the dotted path ``name``.

    What is there may also stand for a progress task: a ``django.tasks`` task made
    by ``JobProgressBackend`` gives its own through ``as_progress_task()`` (duck
    typed, so this layer never imports the backend).

    Raises ``JobProgressConfigurationError``, naming the path, if nothing can be
    imported there or what is there is not a progress task.
    """
    try:
        found = import_string(name)
    except ImportError as exc:
        raise JobProgressConfigurationError(f"task {name!r} cannot be imported: {exc}") from exc
    checked = _checked.get(name)
    if checked is not None and checked[0] is found:
        return checked[1]
    as_progress_task = getattr(found, "as_progress_task", None)
    task = as_progress_task() if callable(as_progress_task) else found
    if not isinstance(task, ProgressTask):
        raise JobProgressConfigurationError(f"{name!r} is not a progress task")
    _checked[name] = (found, task)
    return task


# name -> (what was found there, its progress task). The Protocol check costs tens of
# µs, and every job's task is resolved twice (by its worker and on its end), so it
# is made once per object found; a name that comes to hold another object is checked
# again.
_checked: dict[str, tuple[Any, ProgressTask]] = {}
