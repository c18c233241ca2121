"""The function the queue runs: claim -> run -> complete / fail / cancel."""

from __future__ import annotations

import logging
import os
import socket
from typing import Any

from django_jobprogress import conf
from django_jobprogress.adapters import get_queue_adapter
from django_jobprogress.delivery import hand_off
from django_jobprogress.exceptions import JobCancelled, UnstorableError
from django_jobprogress.jobrun import JobRun
from django_jobprogress.models import JobRecord
from django_jobprogress.registry import resolve_task
from django_jobprogress.ticker import ticker
from django_jobprogress.validation import storable_text

logger = logging.getLogger(__name__)

HOSTNAME = socket.gethostname()


def run_job(job_id: str) -> Any:
    """Run the job ``job_id`` once, keeping its record true whatever happens.

    A delivery of a job that is finished, cancelled while pending, or already
    running with a fresh heartbeat (a duplicate delivery) is dropped. An
    exception, including django-q2's ``SystemExit``-based timeout, marks the
    job failed, or pending and handed off again while it has attempts left, and
    is re-raised to the queue (as an ``UnstorableError`` if its text could not
    be stored, so the queue's own bookkeeping cannot choke on it).
    """
    delivery_id = get_queue_adapter().current_delivery_id()
    record = JobRecord.objects.claim(
        job_id, host=HOSTNAME, pid=os.getpid(), delivery_id=delivery_id
    )
    if record is None:
        logger.info("job %s is missing, finished or running elsewhere; delivery dropped", job_id)
        return None
    try:
        task = resolve_task(record.task_name)
        options = task.get_options()
    except Exception as exc:
        record.fail(f"{type(exc).__name__}: {exc}")
        raise
    run = JobRun(
        record,
        throttle=options.effective_throttle(),
        # A few heartbeats must fit in the job's own stall timeout.
        heartbeat_interval=min(conf.get("HEARTBEAT_INTERVAL"), record.stall_timeout / 3),
        worker=worker_id(record),
    )
    with ticker.watching(run):
        try:
            result = task.perform(record, run.progress)
            run.close_completed(result)
        except JobCancelled as exc:
            run.close_cancelled(exc)
            return None
        except KeyboardInterrupt:
            raise  # the worker is going down; the sweep rescues the job
        except BaseException as exc:
            run.close_failed(exc)
            _reraise_storable(exc)
            raise
        finally:
            if record.status == JobRecord.Status.PENDING:
                hand_off(record, options)  # it failed with attempts left: the next one
    return result


def worker_id(record: JobRecord) -> str:
    """``"host:pid"`` of the worker running ``record`` (its ``worker_ids`` entry)."""
    return f"{record.worker_host}:{record.worker_pid}" if record.worker_host else ""


def _reraise_storable(exc: BaseException) -> None:
    text = f"{type(exc).__name__}: {exc}"
    if storable_text(text) != text:
        raise UnstorableError(storable_text(text)) from None
