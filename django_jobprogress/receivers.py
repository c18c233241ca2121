"""Signal receivers: every committed change of a job (and of its batch) is pushed
to the sockets watching it."""

from __future__ import annotations

import logging
import time
from typing import Any

from django.dispatch import receiver

from django_jobprogress import conf
from django_jobprogress.adapters import get_push_adapter
from django_jobprogress.groups import batch_group, job_group
from django_jobprogress.signals import batch_finished, job_finished, job_progress, job_started

logger = logging.getLogger(__name__)

# batch id -> when this process last pushed that batch (a batch's snapshot costs a query).
_batch_pushed_at: dict[Any, float] = {}


def _publish(group: str, snapshot: Any, delay: float = 0.0) -> None:
    try:
        adapter = get_push_adapter()
        if adapter.enabled:
            adapter.publish(group, snapshot() if callable(snapshot) else snapshot, delay=delay)
    except Exception:
        # Pushing is best effort: the row is already committed and is the truth.
        logger.warning("could not push to %s", group, exc_info=True)


def _push_batch_of(record: Any) -> None:
    """A member moved: push its batch, at most once per throttle period per process."""
    if record.batch_id is None or not get_push_adapter().enabled:
        return
    now = time.monotonic()
    if now - _batch_pushed_at.get(record.batch_id, -1e9) < max(conf.get("THROTTLE"), 0.05):
        return
    _batch_pushed_at[record.batch_id] = now
    from django_jobprogress.models import Batch

    batch = Batch.objects.filter(pk=record.batch_id).first()
    if batch is not None:
        _publish(batch_group(batch.pk), batch.snapshot)


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
    _batch_pushed_at.pop(batch.pk, None)
    _publish(batch_group(batch.pk), batch.snapshot)
