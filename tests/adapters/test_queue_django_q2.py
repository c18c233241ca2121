"""The django-q2 adapter, run in-process (django-q2's own sync path: worker + monitor)."""

from datetime import timedelta

import pytest
from django.db import DatabaseError, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_q.conf import Conf
from django_q.models import OrmQ, Task
from django_q.signing import SignedPackage

from django_jobprogress.adapters import get_queue_adapter
from django_jobprogress.adapters.queue_django_q2 import RUN_JOB, DjangoQ2Queue, close_unfinished
from django_jobprogress.execution import run_job
from django_jobprogress.models import JobRecord
from django_jobprogress.recovery import sweep
from tests import jobs
from tests.factories import start

pytestmark = pytest.mark.django_db(transaction=True)

Q2 = "django_jobprogress.adapters.queue_django_q2.DjangoQ2Queue"


@pytest.fixture
def django_q2(settings):
    settings.JOBPROGRESS = {**settings.JOBPROGRESS, "QUEUE_ADAPTER": Q2}
    adapter = get_queue_adapter()
    adapter.ready()  # connect the monitor-side receiver, as AppConfig.ready() does
    return adapter


@pytest.fixture
def sync(django_q2, monkeypatch):
    monkeypatch.setattr(Conf, "SYNC", True)


def test_only_the_job_id_crosses_the_broker(django_q2):
    record = jobs.ZipExport.enqueue(["a", "b"], key="k1")
    [queued] = OrmQ.objects.all()
    package = SignedPackage.loads(queued.payload)
    assert package["func"] == RUN_JOB
    assert package["args"] == (str(record.pk),)
    assert package["kwargs"] == {}
    assert package["ack_failure"] is True  # one attempt: django-q2 must not re-run it
    assert package["save"] is False  # the JobRecord holds the result, not a second row
    assert package["name"] == f"ZipExport:{record.pk}"


def test_tasks_with_retries_are_acknowledged_too(django_q2):
    # A retry is a new hand-off of the same record, never django-q2's re-presentation.
    record = jobs.Flaky.enqueue(succeed_on=2)
    package = SignedPackage.loads(OrmQ.objects.get().payload)
    assert (package["ack_failure"], package["save"]) == (True, False)
    assert record.max_attempts == jobs.Flaky.max_attempts


def test_queue_selects_the_django_q2_cluster(django_q2):
    jobs.send_newsletter.enqueue(["a@x"])
    assert SignedPackage.loads(OrmQ.objects.get().payload)["cluster"] == "mail"


def test_completed_through_django_q2(sync):
    record = jobs.ZipExport.enqueue(["a", "b"])
    record.refresh_from_db()
    assert (record.status, record.result) == ("completed", {"path": "/tmp/export.zip", "files": 2})
    assert record.queue_task_id
    # The record is the one copy of the outcome: django-q2 saved no success row.
    assert not Task.objects.filter(id=record.queue_task_id).exists()


def test_failure_is_recorded_and_reraised_to_django_q2(django_q2):
    record = jobs.Explode.enqueue("quota")
    with pytest.raises(ValueError, match="quota"):  # what django-q2's worker sees
        run_job(str(record.pk))
    record.refresh_from_db()
    assert (record.status, record.error) == ("failed", "ValueError: quota")
    assert "Traceback" in record.traceback


def test_retries_run_on_the_same_record_through_django_q2(sync):
    record = jobs.Flaky.enqueue(succeed_on=3)
    record.refresh_from_db()
    assert (record.status, record.attempts, record.result) == ("completed", 3, {"attempt": 3})
    assert JobRecord.objects.count() == 1


def test_broker_failure_leaves_the_job_pending_for_the_sweep(django_q2, monkeypatch):
    def refuse(*args, **kwargs):
        raise ConnectionError("broker down")

    monkeypatch.setattr("django_q.tasks.async_task", refuse)
    record = jobs.add.enqueue(1, 2)  # the caller is not failed by the broker's outage
    record.refresh_from_db()
    assert (record.status, record.error, record.handed_off_at) == ("pending", "", None)
    assert list(JobRecord.objects.never_handed_off()) == [record]

    monkeypatch.undo()
    assert sweep().handed_off == 1
    [queued] = OrmQ.objects.all()
    assert SignedPackage.loads(queued.payload)["args"] == (str(record.pk),)
    record.refresh_from_db()
    assert record.handed_off_at is not None


def test_on_the_orm_broker_the_row_and_its_message_commit_together(django_q2):
    """django-q2's ORM broker keeps its queue in the jobs' database: the message is
    written in the row's own transaction, so neither exists without the other."""
    from django.db import connection

    with CaptureQueriesContext(connection) as queries:
        record = jobs.add.enqueue(1, 2)
    assert OrmQ.objects.get().payload and JobRecord.objects.get().pk == record.pk
    writes = [q["sql"].split()[0].upper() for q in queries.captured_queries]
    assert writes.count("INSERT") == 2  # the job and its message, in one transaction

    with pytest.raises(RuntimeError), transaction.atomic():
        jobs.add.enqueue(3, 4)
        raise RuntimeError("the view failed")
    assert OrmQ.objects.count() == 1 and JobRecord.objects.count() == 1


def test_a_database_error_in_the_orm_brokers_insert_writes_nothing(django_q2, monkeypatch):
    def broken(*args, **kwargs):
        raise DatabaseError("disk full")

    monkeypatch.setattr(OrmQ.objects.__class__, "create", broken)
    with pytest.raises(DatabaseError, match="disk full"):
        jobs.add.enqueue(1, 2)
    assert not JobRecord.objects.exists() and not OrmQ.objects.exists()


def test_monitor_closes_a_job_the_wrapper_could_not(django_q2):
    record = JobRecord.objects.create(task_name="tests.jobs.add", args=[1, 2])
    start(record)
    close_unfinished(
        sender="django_q",
        task={
            "func": RUN_JOB,
            "args": (str(record.pk),),
            "success": False,
            "result": "Task exceeded maximum timeout value (5 seconds) : Traceback ...",
        },
    )
    record.refresh_from_db()
    assert record.status == "failed"
    assert record.error == "Task exceeded maximum timeout value (5 seconds)"


def test_monitor_leaves_successful_and_foreign_tasks_alone(django_q2):
    record = JobRecord.objects.create(task_name="tests.jobs.add")
    start(record)
    close_unfinished(
        sender="django_q", task={"func": RUN_JOB, "args": (str(record.pk),), "success": True}
    )
    close_unfinished(
        sender="django_q", task={"func": "math.floor", "args": (str(record.pk),), "success": False}
    )
    record.refresh_from_db()
    assert record.status == "running"


@pytest.mark.parametrize(
    ("q_cluster", "attempts"),
    [({}, 1), ({"max_attempts": 4}, 4), ({"max_attempts": 4, "ack_failures": True}, 1)],
)
def test_default_attempts_follow_q_cluster(settings, q_cluster, attempts):
    settings.Q_CLUSTER = q_cluster
    assert DjangoQ2Queue().default_max_attempts() == attempts


@pytest.mark.parametrize("q_cluster", [{"orm": "default"}, {"redis": "redis://x"}, {}])
def test_every_broker_supports_retries(settings, q_cluster):
    settings.Q_CLUSTER = q_cluster
    assert DjangoQ2Queue().supports_retries is True


def test_q_cluster_max_attempts_does_not_cap_a_task(settings):
    # Each attempt is its own django-q2 task, so django-q2's count never applies.
    settings.Q_CLUSTER = {"orm": "default", "max_attempts": 2}
    assert DjangoQ2Queue().cap_attempts(5) == 5


def test_waiting_count_counts_queued_and_taken_messages(django_q2):
    jobs.add.enqueue(1, 2)
    jobs.add.enqueue(3, 4)
    assert django_q2.waiting_count("") == 2
    OrmQ.objects.filter(pk=OrmQ.objects.order_by("pk").first().pk).update(
        lock=timezone.now() + timedelta(seconds=60)  # taken by a worker, not acknowledged
    )
    assert django_q2.waiting_count("") == 2
    assert django_q2.waiting_count("mail") == 0


def test_each_worker_process_joins_the_sweep_but_sync_mode_does_not(django_q2, monkeypatch):
    from django_q.signals import post_spawn

    from django_jobprogress.sweeper import sweeper

    started = []
    monkeypatch.setattr(sweeper, "start", lambda: started.append(True))
    monkeypatch.setattr(Conf, "SYNC", True)  # the "worker" is the caller's own process
    post_spawn.send(sender="django_q", proc_name="MainProcess")
    assert started == []
    monkeypatch.setattr(Conf, "SYNC", False)
    post_spawn.send(sender="django_q", proc_name="Process-1")
    assert started == [True]


# -- packing many messages (enqueue_many) ------------------------------------------------


@pytest.fixture
def frozen_clock(monkeypatch):
    """One second for every signature: django-q2 signs with a timestamp."""
    import time

    monkeypatch.setattr(time, "time", lambda: 1_764_614_400.25)


def _records(n, **fields):
    return [JobRecord(task_name="tests.jobs.add", **fields) for _ in range(n)]


@pytest.mark.parametrize(
    ("fields", "timeout"), [({}, None), ({"queue": "mail"}, 30), ({"queue": "x" * 100}, None)]
)
def test_bulk_packages_are_byte_for_byte_django_q2s(django_q2, frozen_clock, fields, timeout):
    from django_jobprogress.adapters.queue_django_q2 import _packages
    from django_jobprogress.options import TaskOptions

    records = _records(5, **fields)
    packages = _packages(records, TaskOptions(timeout=timeout))
    tasks = [SignedPackage.loads(package) for package in packages]  # django-q2 reads them
    assert [task["args"] for task in tasks] == [(str(r.pk),) for r in records]
    assert [SignedPackage.dumps(task) for task in tasks] == packages
    assert {(t.get("cluster"), t.get("timeout")) for t in tasks} == {(fields.get("queue"), timeout)}


def test_the_bulk_signer_signs_compressed_messages_as_django_q2_does(frozen_clock, monkeypatch):
    from django_jobprogress.adapters.queue_django_q2 import _BulkSigner

    task = {"id": "0" * 32, "name": "add:" + "7" * 36, "args": ("a" * 200,), "kwargs": {}}
    assert _BulkSigner().dumps(task) == SignedPackage.dumps(task, compressed=False)
    monkeypatch.setattr(Conf, "COMPRESSED", True)
    compressed = _BulkSigner().dumps(task)
    assert compressed.startswith(".")  # zlib made it shorter, so it was compressed
    assert compressed == SignedPackage.dumps(task, compressed=True)
    assert SignedPackage.loads(compressed) == task


def test_bulk_packages_follow_django_q2_when_its_format_differs(
    django_q2, frozen_clock, monkeypatch
):
    """Another way of signing in django-q2 (here: pickle protocol 4) is seen on the
    first message, and then every message is django-q2's own."""
    import pickle

    from django_q.signing import PickleSerializer

    from django_jobprogress.adapters.queue_django_q2 import _BulkSigner, _packages
    from django_jobprogress.options import TaskOptions

    monkeypatch.setattr(PickleSerializer, "dumps", staticmethod(lambda o: pickle.dumps(o, 4)))
    packages = _packages(_records(4), TaskOptions())
    tasks = [SignedPackage.loads(p) for p in packages]
    assert [SignedPackage.dumps(task) for task in tasks] == packages
    assert _BulkSigner().dumps(tasks[0]) != packages[0]  # its own would not have done
