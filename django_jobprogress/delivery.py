"""The outbox: a PENDING row is the promise that the job will reach the queue.

The row is committed before the queue hears of it (or with its message, for a
queue kept in the same database), and a hand-off the queue refuses (broker down)
leaves it PENDING with no ``handed_off_at``, never failed: the sweep
(``recovery``) hands it off again once the queue is back.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from django.db import DatabaseError

from django_jobprogress.adapters import get_queue_adapter

if TYPE_CHECKING:
    from django_jobprogress.models import JobRecord
    from django_jobprogress.options import TaskOptions

logger = logging.getLogger(__name__)


def hand_off(record: JobRecord, options: TaskOptions, *, in_transaction: bool = False) -> bool:
    """Give ``record`` to the queue; False (and the row marked unsent) if it refused.

    ``in_transaction``: inside the transaction that writes the row (a queue in the
    same database); a database error there is raised, as it broke that transaction:
    nothing is written.
    """
    try:
        get_queue_adapter().enqueue(record, options)
    except Exception as exc:
        if in_transaction and isinstance(exc, DatabaseError):
            raise
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


def hand_off_many(
    records: list[JobRecord], options: TaskOptions, chunk_size: int, *, in_transaction: bool = False
) -> int:
    """Give ``records`` (of one task and queue) to the queue, ``chunk_size`` to a round
    trip where the queue sends in bulk; return how many it took. From the first chunk
    it refuses, the rest stay PENDING and unsent, for the sweep. ``in_transaction``:
    as for ``hand_off``."""
    adapter = get_queue_adapter()
    if not adapter.sends_in_bulk:
        return sum(hand_off(r, options, in_transaction=in_transaction) for r in records)
    for start in range(0, len(records), chunk_size):
        try:
            adapter.enqueue_many(records[start : start + chunk_size], options)
        except Exception as exc:
            if in_transaction and isinstance(exc, DatabaseError):
                raise
            unsent = records[start:]
            manager = type(unsent[0])._default_manager
            for first in range(0, len(unsent), chunk_size):
                pks = [record.pk for record in unsent[first : first + chunk_size]]
                manager.filter(pk__in=pks).hand_offs_failed()
            logger.warning(
                "%d jobs stay pending: the queue refused them (%s: %s); the sweep hands "
                "them off again",
                len(unsent),
                type(exc).__name__,
                exc,
            )
            return start
    return len(records)
