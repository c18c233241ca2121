"""The django-q2 adapter, run in-process (django-q2's own sync path: worker + monitor)."""

import pytest
from django_q.conf import Conf
from django_q.models import OrmQ, Task
from django_q.signing import SignedPackage

from django_jobprogress.adapters import get_queue_adapter
from django_jobprogress.adapters.queue_django_q2 import RUN_JOB, DjangoQ2Queue, close_unfinished
from django_jobprogress.models import JobRecord
from tests import jobs

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


def test_tasks_with_retries_stay_unacknowledged_on_failure(django_q2):
    jobs.Flaky.enqueue(succeed_on=2)
    package = SignedPackage.loads(OrmQ.objects.get().payload)
    assert package["ack_failure"] is False
    assert "save" not in package  # django-q2 counts the attempts on its own row


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


def test_failure_is_recorded_and_reraised_to_django_q2(sync):
    with pytest.raises(ValueError, match="quota"):
        jobs.Explode.enqueue("quota")
    record = JobRecord.objects.get()
    assert (record.status, record.error) == ("failed", "ValueError: quota")
    assert "Traceback" in record.traceback


def test_broker_failure_marks_the_job_failed(django_q2, monkeypatch):
    def refuse(*args, **kwargs):
        raise ConnectionError("broker down")

    monkeypatch.setattr("django_q.tasks.async_task", refuse)
    with pytest.raises(ConnectionError):
        jobs.add.enqueue(1, 2)
    record = JobRecord.objects.get()
    assert (record.status, record.error) == (
        "failed",
        "could not enqueue: ConnectionError: broker down",
    )


def test_monitor_closes_a_job_the_wrapper_could_not(django_q2):
    record = JobRecord.objects.create(task_name="tests.jobs.add", args=[1, 2])
    record.claim(host="h", pid=1)
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
    record.claim(host="h", pid=1)
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


@pytest.mark.parametrize(
    ("q_cluster", "retries"),
    [({"orm": "default"}, True), ({"redis": "redis://x"}, False), ({}, False)],
)
def test_only_brokers_that_redeliver_support_retries(settings, q_cluster, retries):
    settings.Q_CLUSTER = q_cluster
    assert DjangoQ2Queue().supports_retries is retries


def test_attempts_are_capped_by_q_cluster_max_attempts(settings):
    settings.Q_CLUSTER = {"orm": "default", "max_attempts": 2}
    assert DjangoQ2Queue().cap_attempts(5) == 2
    settings.Q_CLUSTER = {"orm": "default"}
    assert DjangoQ2Queue().cap_attempts(5) == 5
