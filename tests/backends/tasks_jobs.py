"""Sample ``django.tasks`` tasks for ``tests/backends``, run by ``JobProgressBackend``
in this process (``ImmediateQueue``) or in a real qcluster worker.

The worker finds them again by dotted path, so they live at module level. Tests
steer gated tasks from their own process through files in a ``gate_dir``.
"""

import inspect
import time
from pathlib import Path

try:
    from django.tasks import task
    from django.tasks.signals import task_enqueued, task_finished, task_started
except ImportError:
    from django_tasks import task
    from django_tasks.signals import task_enqueued, task_finished, task_started

from tests.push_jobs import wait_for_gate

#: Django 6.0's ``@task`` takes no job options; 6.1 and the backport pass them on.
TASK_OPTIONS = any(
    p.kind is inspect.Parameter.VAR_KEYWORD for p in inspect.signature(task).parameters.values()
)
WAIT_LIMIT = 30.0


class ExportError(Exception):
    """What ``explode`` raises (a class of its own, to find in the ``TaskError``)."""


@task()
def add(a, b):
    return a + b


@task(queue_name="mail")
def send_mail(to):
    return {"sent": to}


@task()
def explode(text):
    raise ExportError(text)


@task(takes_context=True)
def count_to(context, n):
    """Reports through the context: stage, total, steps, a message and a field."""
    progress = context.progress
    progress.stage("counting")
    progress.total = n
    for _ in range(n):
        progress.increment()
        context.checkpoint()
    progress.message(f"counted to {n}")
    progress.set(answer=42)
    return {"counted": n, "attempt": context.attempt, "job_id": str(context.job_id)}


@task(takes_context=True)
def gated_steps(context, gate_dir, steps):
    """Step ``i`` is reported once the test opens gate ``i`` (a file in ``gate_dir``)."""
    context.progress.stage("stepping")
    context.progress.total = steps
    for step in range(1, steps + 1):
        wait_for_gate(Path(gate_dir) / str(step))
        context.progress.increment()
    return {"steps": steps}


@task(takes_context=True)
def until_cancelled(context, gate_dir):
    """Reports 10 %, says so through ``<gate_dir>/started``, then waits at checkpoints."""
    context.progress.stage("waiting")
    context.progress.update(0.1)
    (Path(gate_dir) / "started").touch()
    deadline = time.monotonic() + WAIT_LIMIT
    while time.monotonic() < deadline:
        context.checkpoint()
        time.sleep(0.01)
    raise TimeoutError(f"no cancel within {WAIT_LIMIT:g} s")


@task()
def batch_done(snapshot):
    """A batch callback: the batch's snapshot comes first."""
    return {"batch": snapshot["id"], "status": snapshot["status"]}


@task(backend="careful")
def careful(x):
    return x


if TASK_OPTIONS:

    @task(takes_context=True, max_attempts=2, stall_timeout=30, throttle=0, cancellable=False)
    def flaky(context, marker_dir):
        """Fails its first attempt, succeeds on the second."""
        marker = Path(marker_dir) / "failed-once"
        if not marker.exists():
            marker.touch()
            raise ExportError("first attempt fails")
        return {"attempt": context.attempt}


# -- signals: a ``signalled(path)`` task logs the task signals it gets to ``path`` ----


@task()
def signalled(path):
    return "ok"


def _log(name):
    def receiver(sender, task_result, **kwargs):
        if task_result.task.func is signalled.func:
            with open(task_result.args[0], "a") as log:
                log.write(f"{name} {task_result.status} {task_result.id}\n")

    return receiver


_receivers = [_log("enqueued"), _log("started"), _log("finished")]
for _signal, _receiver in zip(
    (task_enqueued, task_started, task_finished), _receivers, strict=True
):
    _signal.connect(_receiver, weak=False, dispatch_uid=f"tests.backends.{_receiver}")
