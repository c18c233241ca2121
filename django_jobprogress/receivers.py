"""Signal receivers: every committed change of a job (and of its batch) is pushed
to the sockets watching it."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from django.db import connections
from django.dispatch import receiver

from django_jobprogress import conf
from django_jobprogress.adapters import get_push_adapter
from django_jobprogress.groups import batch_group, job_group
from django_jobprogress.signals import batch_finished, job_finished, job_progress, job_started

logger = logging.getLogger(__name__)

# batch id -> when this process last pushed that batch (a batch's snapshot costs a
# query), and the batches whose trailing push is already scheduled.
_batch_pushed_at: dict[Any, float] = {}
_batch_trailing: set[Any] = set()
_lock = threading.Lock()


def _publish(group: str, snapshot: Any, delay: float = 0.0) -> None:
    try:
        adapter = get_push_adapter()
        if adapter.enabled:
            adapter.publish(group, snapshot() if callable(snapshot) else snapshot, delay=delay)
    except Exception:
        # Pushing is best effort: the row is already committed and is the truth.
        logger.warning("could not push to %s", group, exc_info=True)


def _push_batch_of(record: Any) -> None:
    """A member moved: push its batch at most once per throttle period per process,
    and once more at the end of the period, so the last change is never lost."""
    batch_id = record.batch_id
    if batch_id is None or not get_push_adapter().enabled:
        return
    window = max(conf.get("THROTTLE"), 0.05)
    now = time.monotonic()
    with _lock:
        wait = _batch_pushed_at.get(batch_id, -1e9) + window - now
        if wait > 0:
            if batch_id in _batch_trailing:
                return
            _batch_trailing.add(batch_id)
        else:
            _batch_pushed_at[batch_id] = now
            if len(_batch_pushed_at) > 1000:  # forget batches not heard of for a while
                for old in [b for b, t in _batch_pushed_at.items() if now - t > 60]:
                    del _batch_pushed_at[old]
    if wait > 0:
        timer = threading.Timer(wait, _trailing_batch_push, args=(batch_id,))
        timer.daemon = True
        timer.start()
    else:
        _push_batch(batch_id)


def _trailing_batch_push(batch_id: Any) -> None:
    with _lock:
        _batch_trailing.discard(batch_id)
        _batch_pushed_at[batch_id] = time.monotonic()
    try:
        _push_batch(batch_id)
    finally:
        connections.close_all()  # this short-lived thread's own connection


def _push_batch(batch_id: Any) -> None:
    from django_jobprogress.models import Batch

    batch = Batch.objects.filter(pk=batch_id).first()
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
