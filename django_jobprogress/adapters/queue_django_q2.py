"""The django-q2 adapter: the only module of the app that imports ``django_q``."""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core import checks

from django_jobprogress.adapters.base import QueueAdapter

if TYPE_CHECKING:
    from django_jobprogress.models import JobRecord
    from django_jobprogress.tasks import TaskOptions

logger = logging.getLogger(__name__)

RUN_JOB = "django_jobprogress.execution.run_job"
RETRYING_BROKERS = ("orm", "sqs", "mongo")


def delivery_name(record: JobRecord) -> str:
    """The django-q2 task name of ``record``'s deliveries (its Task rows carry it)."""
    return f"{record.task_name.rsplit('.', 1)[-1][:60]}:{record.pk}"


def _q_cluster() -> dict[str, Any]:
    value = getattr(settings, "Q_CLUSTER", {})
    return value if isinstance(value, dict) else {}


class DjangoQ2Queue(QueueAdapter):
    """Enqueues ``run_job(job_id)`` with ``django_q.tasks.async_task``.

    ``queue`` selects the django-q2 cluster (its ``cluster``/list key). A task
    with one attempt is acknowledged even when it fails, so django-q2 never
    re-runs it; with ``max_attempts > 1`` failures stay unacknowledged and the
    broker re-presents them after ``Q_CLUSTER["retry"]`` seconds.
    """

    @property
    def supports_retries(self) -> bool:
        """Only brokers that re-present unacknowledged tasks retry (the Redis broker pops
        a task for good, so a failed attempt there is final)."""
        conf = _q_cluster()
        return any(conf.get(name) for name in RETRYING_BROKERS)

    def enqueue(self, record: JobRecord, options: TaskOptions) -> str:
        from django_q.tasks import async_task

        q_options: dict[str, Any] = {
            # django-q2's task name links its rows back to the job: "<Task>:<job id>".
            "task_name": delivery_name(record),
            "ack_failure": record.max_attempts <= 1,
        }
        if record.max_attempts <= 1:
            q_options["save"] = False  # successes only; see the class docstring
        if record.queue:
            q_options["cluster"] = record.queue
        if options.timeout is not None:
            q_options["timeout"] = options.timeout
        return str(async_task(RUN_JOB, str(record.pk), q_options=q_options) or "")

    def current_delivery_id(self) -> str:
        return getattr(_delivery, "task_id", "")

    def default_max_attempts(self) -> int:
        conf = _q_cluster()
        attempts = conf.get("max_attempts", 0)
        if conf.get("ack_failures", False) or not isinstance(attempts, int) or attempts < 1:
            return 1
        return attempts

    def cap_attempts(self, wanted: int) -> int:
        # django-q2 acknowledges a task for good once it failed Q_CLUSTER["max_attempts"] times.
        ceiling = _q_cluster().get("max_attempts", 0)
        if isinstance(ceiling, int) and ceiling > 0:
            return min(wanted, ceiling)
        return wanted

    def ready(self) -> None:
        from django_q.signals import post_execute, pre_execute

        post_execute.connect(close_unfinished, dispatch_uid="django_jobprogress.close_unfinished")
        pre_execute.connect(remember_delivery, dispatch_uid="django_jobprogress.remember_delivery")

    def check(self) -> list[checks.CheckMessage]:
        conf = _q_cluster()
        timeout, retry = conf.get("timeout"), conf.get("retry", 60)
        if timeout is None:
            return [
                checks.Warning(
                    'Q_CLUSTER["timeout"] is not set, so a task may run longer than '
                    f'Q_CLUSTER["retry"] ({retry} s) and be delivered twice.',
                    hint='Set Q_CLUSTER["timeout"] below Q_CLUSTER["retry"].',
                    id="jobprogress.W002",
                )
            ]
        if isinstance(timeout, int | float) and isinstance(retry, int | float) and retry <= timeout:
            return [
                checks.Warning(
                    f'Q_CLUSTER["retry"] ({retry}) is not larger than '
                    f'Q_CLUSTER["timeout"] ({timeout}): django-q2 re-presents a task still '
                    "running after retry seconds.",
                    hint='Set Q_CLUSTER["retry"] larger than Q_CLUSTER["timeout"].',
                    id="jobprogress.W001",
                )
            ]
        return []


_delivery = threading.local()


def remember_delivery(sender: Any, func: Any, task: dict[str, Any], **kwargs: Any) -> None:
    """Worker side, just before a task runs: its django-q2 id, for the job's claim."""
    _delivery.task_id = task.get("id", "") if task.get("func") == RUN_JOB else ""


def close_unfinished(sender: Any, task: dict[str, Any], **kwargs: Any) -> None:
    """Monitor-side backstop: a failed delivery whose job is still RUNNING was not
    closed by the run wrapper (killed by a timeout or a crash), so close it here."""
    if task.get("func") != RUN_JOB or task.get("success") or not task.get("args"):
        return
    from django_jobprogress.models import JobRecord

    record = JobRecord.objects.filter(pk=task["args"][0]).first()
    if record is not None and record.status == JobRecord.Status.RUNNING:
        detail = str(task.get("result") or "worker error")
        error, _, trace = detail.partition(" : ")
        logger.warning("closing job %s after django-q2 reported: %s", record.pk, error)
        record.fail_attempt(error or "worker error", trace)
