"""The django-q2 adapter: the only module of the app that imports ``django_q``."""

from __future__ import annotations

import logging
import pickle
import threading
import time
import uuid
import zlib
from typing import TYPE_CHECKING, Any, cast

from django.conf import settings
from django.core import checks
from django.core.signing import b62_encode, b64_encode

from django_jobprogress.adapters.base import QueueAdapter, require_installed

if TYPE_CHECKING:
    from django_jobprogress.models import JobRecord
    from django_jobprogress.options import TaskOptions

logger = logging.getLogger(__name__)

RUN_JOB = "django_jobprogress.execution.run_job"


def delivery_name(record: JobRecord) -> str:
    """The django-q2 task name of ``record``'s deliveries (its Task rows carry it)."""
    return f"{_task_label(record.task_name)}:{record.pk}"


def _task_label(task_name: str) -> str:
    return task_name.rsplit(".", 1)[-1][:60]


def _q_cluster() -> dict[str, Any]:
    value = getattr(settings, "Q_CLUSTER", {})
    return value if isinstance(value, dict) else {}


class DjangoQ2Queue(QueueAdapter):
    """Enqueues ``run_job(job_id)`` with ``django_q.tasks.async_task``.

    ``queue`` selects the django-q2 cluster (its ``cluster``/list key). Every
    delivery is acknowledged, failed or not: retries are new deliveries that the
    run wrapper (or the sweep, for a lost worker) hands off itself, so they work
    on every broker, Redis included, and ``max_attempts`` is never django-q2's.
    """

    #: Retries are hand-offs of our own, so every broker supports them.
    supports_retries = True

    def enqueue(self, record: JobRecord, options: TaskOptions) -> str:
        from django_q.tasks import async_task

        q_options = {**_q_options(record, options), "broker": _broker(record.queue)}
        return str(async_task(RUN_JOB, str(record.pk), q_options=q_options) or "")

    def enqueues_in_transaction(self, using: str, queue: str) -> bool:
        """The ORM broker on the jobs' own database keeps its queue in a table there
        (not in sync mode, where a hand-off runs the job)."""
        from django_q.brokers.orm import ORM
        from django_q.conf import Conf

        return not Conf.SYNC and using == Conf.ORM and isinstance(_broker(queue), ORM)

    @property
    def sends_in_bulk(self) -> bool:  # type: ignore[override]
        """In sync mode each job runs inside its own hand-off, so one by one."""
        from django_q.conf import Conf

        return not Conf.SYNC

    def enqueue_many(self, records: list[JobRecord], options: TaskOptions) -> None:
        """Pack each job as ``async_task`` would (its options, ``pre_enqueue`` signal and
        signing), then give them all to the broker in one round trip: one ``RPUSH``
        (Redis), one bulk INSERT (ORM broker), one by one on other brokers."""
        broker = _broker(records[0].queue)
        _push_all(broker, _packages(records, options))
        logger.info("Enqueued [%s] %d jobs", broker.list_key, len(records))

    def waiting_count(self, queue: str) -> int | None:
        """Messages in the broker's list for ``queue``, plus those taken but not yet
        run: unacknowledged ones (ORM broker), or, for brokers that pop for good
        (Redis), the ones waiting in the clusters' own task queues."""
        from django_q.brokers import get_broker

        broker = get_broker(queue or None)
        waiting = broker.queue_size()
        if waiting is None:
            return None
        taken = broker.lock_size()
        if taken is None:
            taken = _prefetched(broker)
        return int(waiting) + int(taken)

    def current_delivery_id(self) -> str:
        return getattr(_delivery, "task_id", "")

    def default_max_attempts(self) -> int:
        conf = _q_cluster()
        attempts = conf.get("max_attempts", 0)
        if conf.get("ack_failures", False) or not isinstance(attempts, int) or attempts < 1:
            return 1
        return attempts

    def ready(self) -> None:
        from django_q.signals import post_execute, post_spawn, pre_execute

        post_execute.connect(close_unfinished, dispatch_uid="django_jobprogress.close_unfinished")
        pre_execute.connect(remember_delivery, dispatch_uid="django_jobprogress.remember_delivery")
        post_spawn.connect(start_sweeper, dispatch_uid="django_jobprogress.start_sweeper")

    def check(self) -> list[checks.CheckMessage]:
        return require_installed("django_q", "jobprogress.E007") + self._check_timeouts()

    def _check_timeouts(self) -> list[checks.CheckMessage]:
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


_brokers: dict[tuple[Any, ...], Any] = {}


def _broker(queue: str) -> Any:
    """django-q2's broker for ``queue``, made once per process and configuration.

    ``async_task`` makes a new broker per call, and a new Redis broker is a new
    client: a TCP connect and a handshake per enqueue. A kept one reuses its pool's
    connections (redis-py's clients are thread-safe and reset their pool after a
    fork; the ORM broker reads Django's per-thread connection on each call).
    """
    from django_q.brokers import get_broker
    from django_q.conf import Conf

    key = (queue, Conf.BROKER_CLASS, Conf.ORM, repr(Conf.REDIS), Conf.CLUSTER_NAME)
    broker = _brokers.get(key)
    if broker is None:
        broker = _brokers[key] = get_broker(queue or None)
    return broker


def _q_options(record: JobRecord, options: TaskOptions) -> dict[str, Any]:
    q_options: dict[str, Any] = {
        # django-q2's task name links its rows back to the job: "<Task>:<job id>".
        "task_name": delivery_name(record),
        "ack_failure": True,
        # The JobRecord holds the result; django-q2 still keeps its failures.
        "save": False,
    }
    if record.queue:
        q_options["cluster"] = record.queue
    if options.timeout is not None:
        q_options["timeout"] = options.timeout
    return q_options


def _packages(records: list[JobRecord], options: TaskOptions) -> list[str]:
    """The signed package ``async_task(RUN_JOB, job_id, q_options=...)`` enqueues for
    each record (as django-q2 1.7+ builds it), without its log line per task. The
    first is django-q2's own; the rest are signed by a ``_BulkSigner`` if it gives
    the same for the first, else by django-q2."""
    from django.utils import timezone
    from django_q.conf import Conf
    from django_q.signals import pre_enqueue
    from django_q.signing import SignedPackage

    shared = _q_options(records[0], options)
    del shared["task_name"]
    if Conf.CACHED:
        shared["cached"] = Conf.CACHED
    tasks = []
    for record in records:
        job_id = str(record.pk)
        task: dict[str, Any] = {
            "id": uuid.uuid4().hex,  # django-q2's ids (its humanhash names are not used here)
            "name": f"{_task_label(record.task_name)}:{job_id}",  # delivery_name(record)
            "func": RUN_JOB,
            "args": (job_id,),
            **shared,
            "kwargs": {},
            "started": timezone.now(),
        }
        pre_enqueue.send(sender="django_q", task=task)
        tasks.append(task)
    first = SignedPackage.dumps(tasks[0])
    if len(tasks) == 1:
        return [first]
    signer = _BulkSigner()
    if signer.dumps(tasks[0]) != first:  # another django-q2 format (or a tick of the clock)
        return [first, *(SignedPackage.dumps(task) for task in tasks[1:])]
    return [first, *(signer.dumps(task) for task in tasks[1:])]


class _BulkSigner:
    """``SignedPackage.dumps`` for many messages, with the same output: django-q2 signs
    each with ``django.core.signing.dumps``, which builds a signer and derives its
    salted HMAC key again for every message (more than half of ``dumps``' time); here
    the key is derived once and its HMAC copied per message."""

    def __init__(self) -> None:
        from django.core.signing import TimestampSigner
        from django.utils.crypto import salted_hmac
        from django_q.conf import Conf

        # Django's own signer resolves the key, salt, separator and algorithm.
        signer = TimestampSigner(key=Conf.SECRET_KEY, salt=Conf.PREFIX)
        self._sep = signer.sep
        self._hmac = salted_hmac(
            cast(str, signer.salt) + "signer", b"", signer.key, algorithm=signer.algorithm
        )
        self._compress = bool(Conf.COMPRESSED)
        self._second, self._stamp = -1, ""

    def dumps(self, task: dict[str, Any]) -> str:
        """``django.core.signing.dumps(task, serializer=PickleSerializer, ...)``."""
        data = pickle.dumps(task, protocol=pickle.HIGHEST_PROTOCOL)
        flag = ""
        if self._compress:
            compressed = zlib.compress(data)
            if len(compressed) < len(data) - 1:
                data, flag = compressed, "."
        value = f"{flag}{b64_encode(data).decode()}{self._sep}{self._timestamp()}"
        mac = self._hmac.copy()
        mac.update(value.encode())
        return f"{value}{self._sep}{b64_encode(mac.digest()).decode()}"

    def _timestamp(self) -> str:
        second = int(time.time())
        if second != self._second:
            self._second, self._stamp = second, b62_encode(second)
        return self._stamp


def _push_all(broker: Any, packs: list[str]) -> None:
    from django_q.brokers.orm import ORM
    from django_q.brokers.redis_broker import Redis

    if isinstance(broker, Redis):
        broker.connection.rpush(broker.list_key, *packs)
    elif isinstance(broker, ORM):
        _insert_queue_rows(broker, packs)
    else:
        for pack in packs:
            broker.enqueue(pack)


def _insert_queue_rows(broker: Any, packs: list[str]) -> None:
    """The ORM broker's ``enqueue`` of each package (its ``OrmQ`` row: list key,
    payload, lock = now), as one prepared INSERT executed per row: the key and lock
    are prepared once, where ``bulk_create`` prepares every field of every row (it
    took as long as writing the jobs themselves)."""
    from django.db import connections
    from django.utils import timezone
    from django_q.conf import Conf

    rows = broker.get_connection()  # the broker's manager, on its database
    connection = connections[rows.db]
    meta = rows.model._meta
    key, payload, lock = (meta.get_field(name) for name in ("key", "payload", "lock"))
    shared_key = key.get_db_prep_save(broker.list_key or Conf.CLUSTER_NAME, connection)
    shared_lock = lock.get_db_prep_save(timezone.now(), connection)
    qn = connection.ops.quote_name
    columns = ", ".join(qn(field.column) for field in (key, payload, lock))
    with connection.cursor() as cursor:
        cursor.executemany(
            f"INSERT INTO {qn(meta.db_table)} ({columns}) VALUES (%s, %s, %s)",
            [(shared_key, pack, shared_lock) for pack in packs],
        )


def _prefetched(broker: Any) -> int:
    """Tasks the running clusters popped into their own task queues (from the stats
    each cluster publishes every guard cycle); 0 if the stats cannot be read."""
    from django_q.status import Stat

    try:
        return sum(int(getattr(stat, "task_q_size", 0) or 0) for stat in Stat.get_all(broker))
    except Exception:
        return 0


_delivery = threading.local()


def remember_delivery(sender: Any, func: Any, task: dict[str, Any], **kwargs: Any) -> None:
    """Worker side, just before a task runs: its django-q2 id, for the job's claim."""
    _delivery.task_id = task.get("id", "") if task.get("func") == RUN_JOB else ""


def start_sweeper(sender: Any, proc_name: str = "", **kwargs: Any) -> None:
    """In each new worker process: take part in this cluster's recovery sweep (not in
    django-q2's sync mode, which runs the worker in the caller's own process)."""
    from django_q.conf import Conf

    from django_jobprogress.sweeper import sweeper

    if Conf.SYNC:
        return

    sweeper.start()


def close_unfinished(sender: Any, task: dict[str, Any], **kwargs: Any) -> None:
    """Monitor-side backstop: a failed delivery whose job is still RUNNING was not
    closed by the run wrapper (killed by a timeout or a crash), so close it here.

    Runs inside django-q2's monitor loop, so it never raises: a failure here is
    logged and left to the sweep.
    """
    if task.get("func") != RUN_JOB or task.get("success") or not task.get("args"):
        return
    try:
        _close_unfinished(task)
    except Exception:
        logger.exception("could not close job %s after its failed delivery", task["args"][0])


def _close_unfinished(task: dict[str, Any]) -> None:
    from django_jobprogress.models import JobRecord
    from django_jobprogress.recovery import hand_off_again

    record = JobRecord.objects.filter(pk=task["args"][0]).first()
    if record is None or record.status != JobRecord.Status.RUNNING:
        return
    if record.queue_task_id and record.queue_task_id != task.get("id"):
        return  # another delivery has the job now
    detail = str(task.get("result") or "worker error")
    error, _, trace = detail.partition(" : ")
    logger.warning("closing job %s after django-q2 reported: %s", record.pk, error[:200])
    if record.fail_attempt(error or "worker error", trace) and not record.is_finished:
        hand_off_again(record)
