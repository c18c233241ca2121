"""Signal receivers: every committed change of a job (and of its batch) is pushed
to the sockets watching it."""

from __future__ import annotations

import functools
import logging
from typing import Any

from django.dispatch import receiver

from django_jobprogress import conf
from django_jobprogress.adapters import get_push_adapter
from django_jobprogress.groups import batch_group, job_group
from django_jobprogress.models import Batch
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
