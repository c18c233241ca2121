"""``record.retry(by=user)``: a new job with the same task, arguments, owner, key and
queue as a failed or cancelled one, linked to it; anything else is refused."""

import pytest

from django_jobprogress.exceptions import DuplicateJob, NotRetryable
from django_jobprogress.models import JobRecord
from tests import jobs
from tests.factories import start

pytestmark = pytest.mark.django_db


@pytest.fixture
def failed(memory_queue, make_user, django_capture_on_commit_callbacks):
    owner = make_user()
    with django_capture_on_commit_callbacks(execute=True):
        record = jobs.echo.enqueue([1, "two"], stage="load", owner=owner, key="k", queue="mail")
    memory_queue.clear()
    start(record).fail("boom")
    return record


def test_a_failed_job_is_retried_as_a_new_pending_job_linked_to_it(
    failed, memory_queue, make_user, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        retried = failed.retry(by=make_user(staff=True))

    stored = JobRecord.objects.get(pk=retried.pk)
    assert stored.pk != failed.pk
    assert (stored.status, stored.retry_of) == ("pending", failed.pk)
    assert (stored.task_name, stored.args, stored.kwargs) == (
        failed.task_name,
        [[1, "two"]],
        {"stage": "load"},
    )
    assert (stored.owner, stored.key, stored.queue) == (failed.owner, "k", "mail")
    assert memory_queue.queued == [str(stored.pk)]  # handed off on commit
    memory_queue.run_pending()
    assert JobRecord.objects.get(pk=stored.pk).status == "completed"


def test_a_cancelled_job_can_be_retried(memory_queue):
    record = jobs.add.enqueue(1, 2)
    assert record.request_cancel()
    assert record.retry().retry_of == record.pk


@pytest.mark.parametrize("status", ["pending", "running", "completed"])
def test_other_statuses_are_refused_naming_the_job(memory_queue, status):
    record = jobs.add.enqueue(1, 2)
    if status != "pending":
        start(record)
    if status == "completed":
        record.complete(3)
    with pytest.raises(NotRetryable) as refused:
        record.retry()
    assert str(refused.value) == (
        f"job {record.pk} is {status}: only a failed or cancelled job can be retried"
    )
    assert JobRecord.objects.count() == 1


def test_a_stale_copy_is_judged_by_the_stored_status(memory_queue):
    record = jobs.add.enqueue(1, 2)
    stale = JobRecord.objects.get(pk=record.pk)
    start(record).fail("boom")
    assert stale.retry().retry_of == record.pk  # the copy still said pending


def test_the_key_lock_still_holds(failed):
    holder = failed.retry()
    with pytest.raises(DuplicateJob):
        failed.retry()
    assert JobRecord.objects.filter(key="k").exclude(pk=failed.pk).get() == holder
