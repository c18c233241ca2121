"""Signal receivers: every committed change of a job (and of its batch) is pushed
to the sockets watching it, and a task that asks is told of its job's end."""

from __future__ import annotations

import functools
import logging
from typing import Any

from django.dispatch import receiver

from django_jobprogress import conf
from django_jobprogress.adapters import get_push_adapter
from django_jobprogress.exceptions import JobProgressConfigurationError
from django_jobprogress.groups import batch_group, job_group
from django_jobprogress.models import Batch
from django_jobprogress.registry import resolve_task
from django_jobprogress.signals import batch_finished, job_finished, job_progress, job_started

logger = logging.getLogger(__name__)


def _publish(group: str, snapshot: Any, delay: float = 0.0) -> None:
    try:
        adapter = get_push_adapter()
        if adapter.enabled:
            adapter.publish(group, snapshot() if callable(snapshot) else snapshot, delay=delay)
    except Exception:
        # Pushing is best effort: the row is already committed and is the truth.
        logger.warning("could not push to %s", group, exc_info=True)


def _read_batch(batch_id: Any) -> dict[str, Any] | None:
    batch = Batch.objects.filter(pk=batch_id).first()
    return batch.snapshot() if batch is not None else None


def _push_batch_of(record: Any) -> None:
    """A member moved: ask for its batch's snapshot, read when it is sent.

    Held for one throttle period, during which later asks join it (the push
    adapter coalesces by group): each process reads and pushes a given batch at
    most once per period, and the read after the last change is always made.
    """
    if record.batch_id is None:
        return
    group = batch_group(record.batch_id)
    try:
        adapter = get_push_adapter()
        if adapter.enabled:
            read = functools.partial(_read_batch, record.batch_id)
            adapter.publish_lazy(group, read, delay=max(conf.get("THROTTLE"), 0.05))
    except Exception:
        logger.warning("could not push to %s", group, exc_info=True)


@receiver(job_progress, dispatch_uid="django_jobprogress.push_progress")
@receiver(job_finished, dispatch_uid="django_jobprogress.push_finished")
def push_snapshot(sender: Any, record: Any, **kwargs: Any) -> None:
    _publish(job_group(record.pk), record.snapshot)
    _push_batch_of(record)


@receiver(job_started, dispatch_uid="django_jobprogress.push_started")
def push_started(sender: Any, record: Any, **kwargs: Any) -> None:
    # Held for one throttle period: a job that is over by then sends only its end.
    _publish(job_group(record.pk), record.snapshot, delay=conf.get("THROTTLE"))


@receiver(batch_finished, dispatch_uid="django_jobprogress.push_batch_finished")
def push_batch_finished(sender: Any, batch: Any, **kwargs: Any) -> None:
    # Sent at once, replacing a member's ask still held for the batch.
    _publish(batch_group(batch.pk), batch.snapshot)


@receiver(job_finished, dispatch_uid="django_jobprogress.tell_task")
def tell_task(sender: Any, record: Any, **kwargs: Any) -> None:
    """Tell the job's task, if it asks (``after_end(record)``: django.tasks'
    ``task_finished``), that the job ended, however it ended: in its worker,
    cancelled while pending, or closed by the sweep. Sent once the end is committed,
    so a failing hook is logged, never raised into the code that ended the job."""
    try:
        after_end = getattr(resolve_task(record.task_name), "after_end", None)
    except JobProgressConfigurationError:
        return  # a task this process cannot import has nobody here to tell
    if after_end is None:
        return
    try:
        after_end(record)
    except Exception:
        logger.exception("job %s: after_end of %s failed", record.pk, record.task_name)
