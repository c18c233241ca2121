"""Signal receivers: every committed change of a job is pushed to its watchers."""

from __future__ import annotations

import logging
from typing import Any

from django.dispatch import receiver

from django_jobprogress import conf
from django_jobprogress.adapters import get_push_adapter
from django_jobprogress.groups import job_group
from django_jobprogress.signals import job_finished, job_progress, job_started

logger = logging.getLogger(__name__)


@receiver(job_progress, dispatch_uid="django_jobprogress.push_progress")
@receiver(job_finished, dispatch_uid="django_jobprogress.push_finished")
def push_snapshot(sender: Any, record: Any, delay: float = 0.0, **kwargs: Any) -> None:
    try:
        adapter = get_push_adapter()
        if adapter.enabled:
            adapter.publish(job_group(record.pk), record.snapshot(), delay=delay)
    except Exception:
        # Pushing is best effort: the row is already committed and is the truth.
        logger.warning("could not push job %s", record.pk, exc_info=True)


@receiver(job_started, dispatch_uid="django_jobprogress.push_started")
def push_started(sender: Any, record: Any, **kwargs: Any) -> None:
    # Held for one throttle period: a job that is over by then sends only its end.
    push_snapshot(sender, record, delay=conf.get("THROTTLE"))
