"""The outbox: a PENDING row is the promise that the job will reach the queue.

The row is committed before the queue hears of it, and a hand-off the queue
refuses (broker down) leaves it PENDING with no ``handed_off_at``, never failed:
the sweep (``recovery``) hands it off again once the queue is back.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from django_jobprogress.adapters import get_queue_adapter

if TYPE_CHECKING:
    from django_jobprogress.models import JobRecord
    from django_jobprogress.options import TaskOptions

logger = logging.getLogger(__name__)


def hand_off(record: JobRecord, options: TaskOptions) -> bool:
    """Give ``record`` to the queue; False (and the row marked unsent) if it refused."""
    try:
        get_queue_adapter().enqueue(record, options)
    except Exception as exc:
        if not record.hand_off_failed():
            return True  # a queue that runs jobs in the caller (django-q2's sync mode) ran it
        logger.warning(
            "job %s stays pending: the queue refused it (%s: %s); the sweep hands it off again",
            record.pk,
            type(exc).__name__,
            exc,
        )
        return False
    return True
