"""``JobProgressBackend`` in this process: enqueue, results, options, signals, and the
package's own features (owner, key, batch, cancel, retry, schedules) for django.tasks
tasks. Jobs run on commit (``ImmediateQueue``) or wait (``memory_queue``); the round
trips through a real qcluster are in ``test_worker.py``."""

import importlib
import os
import socket
import uuid
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

framework = pytest.importorskip(
    "django_jobprogress.backends.framework",
    reason="needs Django's task framework: Django >= 6.0 or the django-tasks backport",
    exc_type=ImportError,
)

from django_jobprogress.backends import JobFailed, JobProgressBackend  # noqa: E402
from django_jobprogress.exceptions import (  # noqa: E402
    DuplicateJob,
    JobProgressConfigurationError,
)
from django_jobprogress.models import Batch, JobRecord  # noqa: E402
from django_jobprogress.registry import resolve_task  # noqa: E402
from django_jobprogress.tasks import enqueue_or_find  # noqa: E402
from tests.backends import tasks_jobs  # noqa: E402

pytestmark = pytest.mark.django_db(transaction=True)

Status = JobRecord.Status
TaskResultStatus = framework.TaskResultStatus
WORKER = f"{socket.gethostname()}:{os.getpid()}"


def record_of(result):
    return JobRecord.objects.get(pk=result.id)


# -- what the backend says it can do ------------------------------------------------


def test_capability_flags_tell_the_truth():
    backend = tasks_jobs.add.get_backend()
    assert isinstance(backend, JobProgressBackend)
    assert backend.supports_get_result is True
    assert backend.supports_defer is False  # django-q2 has no ETA
    assert backend.supports_priority is False
    assert backend.supports_async_task is False


def test_run_after_and_priority_are_refused_as_the_framework_expects():
    with pytest.raises(framework.InvalidTask, match="run_after"):
        tasks_jobs.add.using(run_after=timezone.now() + timedelta(minutes=5))
    with pytest.raises(framework.InvalidTask, match="priority"):
        tasks_jobs.add.using(priority=10)
    assert not JobRecord.objects.exists()


def test_a_queue_the_backend_does_not_list_is_refused():
    with pytest.raises(framework.InvalidTask, match="nightly"):
        tasks_jobs.add.using(queue_name="nightly")


def test_unknown_or_bad_options_name_themselves():
    with pytest.raises(JobProgressConfigurationError, match="'retries'"):
        JobProgressBackend("x", {"OPTIONS": {"retries": 3}})
    with pytest.raises(JobProgressConfigurationError, match=r"max_attempts.*0"):
        JobProgressBackend("x", {"OPTIONS": {"max_attempts": 0}})


@pytest.mark.skipif(not tasks_jobs.TASK_OPTIONS, reason="@task takes no job options here")
def test_a_bad_job_option_on_the_task_is_refused_when_declared():
    with pytest.raises(framework.InvalidTask, match=r"throttle.*'fast'"):
        tasks_jobs.task(throttle="fast")(tasks_jobs.add.func)


# -- enqueue ------------------------------------------------------------------------


def test_enqueue_returns_a_ready_result_whose_id_is_the_record(memory_queue):
    result = tasks_jobs.add.enqueue(2, 3)
    assert result.status == TaskResultStatus.READY
    assert result.backend == "default"
    assert result.args == [2, 3]
    record = record_of(result)
    assert record.status == Status.PENDING
    assert record.task_name == "tests.backends.tasks_jobs.add"
    assert (record.args, record.kwargs, record.queue) == ([2, 3], {}, "")
    assert memory_queue.queued == [result.id]


def test_non_json_arguments_are_refused_naming_them_and_nothing_is_written(memory_queue):
    with pytest.raises(TypeError, match="argument 2"):
        tasks_jobs.add.enqueue(1, {1, 2})
    with pytest.raises(TypeError, match="argument 'b'"):
        tasks_jobs.add.enqueue(1, b=object())
    assert not JobRecord.objects.exists()
    assert memory_queue.queued == []


def test_queue_names_map_to_django_q2_queues(memory_queue):
    assert record_of(tasks_jobs.send_mail.enqueue("a@example.com")).queue == "mail"
    result = tasks_jobs.add.using(queue_name="mail").enqueue(1, 1)
    assert record_of(result).queue == "mail"
    assert result.task.queue_name == "mail"


def test_a_task_runs_on_the_backend_it_was_declared_for(memory_queue):
    with pytest.raises(framework.InvalidTask, match="declared for backend 'default'"):
        tasks_jobs.add.using(backend="careful").enqueue(1, 2)
    assert not JobRecord.objects.exists()


def test_options_come_from_the_backend_then_the_task(memory_queue):
    record = record_of(tasks_jobs.careful.enqueue(1))
    assert (record.max_attempts, record.stall_timeout, record.cancellable) == (2, 45, False)
    if tasks_jobs.TASK_OPTIONS:
        flaky = record_of(tasks_jobs.flaky.enqueue("/nowhere"))
        assert (flaky.max_attempts, flaky.stall_timeout, flaky.cancellable) == (2, 30, False)


def test_a_rolled_back_enqueue_leaves_nothing_and_sends_nothing(memory_queue, tmp_path):
    log = tmp_path / "signals"
    with pytest.raises(RuntimeError), transaction.atomic():
        result = tasks_jobs.signalled.enqueue(str(log))
        raise RuntimeError("roll back")
    assert not JobRecord.objects.exists()
    assert memory_queue.queued == []
    assert not log.exists()
    with pytest.raises(framework.TaskResultDoesNotExist):
        tasks_jobs.signalled.get_result(result.id)


# -- get_result ------------------------------------------------------------------------


def test_get_result_of_a_success_has_the_return_value_and_the_real_task():
    result = tasks_jobs.add.enqueue(2, 3)
    got = tasks_jobs.add.get_result(result.id)
    assert got.task is tasks_jobs.add
    assert got.status == TaskResultStatus.SUCCESSFUL
    assert got.return_value == 5
    assert got.errors == []
    assert got.worker_ids == [WORKER]
    assert got.attempts == 1
    assert got.enqueued_at <= got.started_at <= got.finished_at
    result.refresh()
    assert result.status == TaskResultStatus.SUCCESSFUL


def test_get_result_of_a_failure_names_the_exception_class_with_its_traceback():
    result = tasks_jobs.explode.enqueue("disk full")
    got = tasks_jobs.explode.get_result(result.id)
    assert got.status == TaskResultStatus.FAILED
    [error] = got.errors
    assert error.exception_class_path == "tests.backends.tasks_jobs.ExportError"
    assert error.exception_class is tasks_jobs.ExportError
    assert "Traceback (most recent call last)" in error.traceback
    assert "raise ExportError(text)" in error.traceback
    assert record_of(result).error == "ExportError: disk full"
    with pytest.raises(ValueError, match="failed"):
        got.return_value  # noqa: B018


def test_unknown_and_malformed_ids_raise_task_result_does_not_exist():
    backend = tasks_jobs.add.get_backend()
    for result_id in (str(uuid.uuid4()), "not-an-id", ""):
        with pytest.raises(framework.TaskResultDoesNotExist):
            backend.get_result(result_id)


def test_the_id_of_a_job_that_is_no_django_task_raises_does_not_exist():
    from tests import jobs

    record = jobs.ZipExport.enqueue(["a"])
    with pytest.raises(framework.TaskResultDoesNotExist, match=r"not a django\.tasks task"):
        tasks_jobs.add.get_backend().get_result(str(record.pk))


def test_another_tasks_result_is_a_mismatch():
    result = tasks_jobs.add.enqueue(1, 2)
    mismatch = importlib.import_module(f"{framework.PROVIDER}.exceptions").TaskResultMismatch
    with pytest.raises(mismatch):
        tasks_jobs.explode.get_result(result.id)


def test_pending_and_running_statuses(memory_queue):
    result = tasks_jobs.add.enqueue(1, 2)
    record = record_of(result)
    assert tasks_jobs.add.get_result(result.id).worker_ids == []
    claimed = JobRecord.objects.claim(record.pk, host="box", pid=7)
    got = tasks_jobs.add.get_result(result.id)
    assert got.status == TaskResultStatus.RUNNING
    assert got.worker_ids == ["box:7"]
    assert got.started_at == claimed.started_at


# -- the task context ---------------------------------------------------------------


def test_context_progress_lands_on_the_record():
    result = tasks_jobs.count_to.enqueue(4)
    record = record_of(result)
    assert record.status == Status.COMPLETED
    assert (record.current, record.total, record.progress) == (4, 4, 1.0)
    assert record.stage == "counting"
    assert record.message == "counted to 4"
    assert record.fields == {"answer": 42}
    assert record.result == {"counted": 4, "attempt": 1, "job_id": result.id}
    assert record.snapshot()["status"] == "completed"


# -- signals -----------------------------------------------------------------------


def test_the_three_signals_are_sent_in_order(tmp_path):
    log = tmp_path / "signals"
    result = tasks_jobs.signalled.enqueue(str(log))
    assert log.read_text().splitlines() == [
        f"enqueued READY {result.id}",
        f"started RUNNING {result.id}",
        f"finished SUCCESSFUL {result.id}",
    ]


def test_a_job_cancelled_while_pending_sends_task_finished_once(memory_queue, tmp_path):
    log = tmp_path / "signals"
    result = tasks_jobs.signalled.enqueue(str(log))
    assert record_of(result).request_cancel() is True
    assert memory_queue.run_pending() == 1  # the delivery is dropped: nothing runs
    assert log.read_text().splitlines() == [
        f"enqueued READY {result.id}",
        f"finished FAILED {result.id}",
    ]


def test_a_job_closed_by_the_sweep_sends_task_finished(memory_queue, tmp_path):
    log = tmp_path / "signals"
    result = tasks_jobs.signalled.enqueue(str(log))
    JobRecord.objects.claim(result.id, host="gone", pid=1)  # its worker is then lost
    assert JobRecord.objects.fail_stalled(timezone.now() + timedelta(hours=1)) == 1
    assert log.read_text().splitlines() == [
        f"enqueued READY {result.id}",
        f"finished FAILED {result.id}",
    ]


def test_task_enqueued_waits_for_the_commit(memory_queue, tmp_path):
    log = tmp_path / "signals"
    with transaction.atomic():
        result = tasks_jobs.signalled.enqueue(str(log))
        assert not log.exists()
    assert log.read_text() == f"enqueued READY {result.id}\n"


# -- owner, key, batch, cancel, retry, schedules ----------------------------------------


def test_using_job_sets_owner_and_key(memory_queue, make_user):
    user = make_user()
    first = tasks_jobs.add.using_job(owner=user, key="sum-1").enqueue(1, 2)
    again = tasks_jobs.add.using_job(owner=user, key="sum-1").enqueue(1, 2)
    assert again.id == first.id
    record = record_of(first)
    assert (record.owner, record.key) == (user, "sum-1")
    assert JobRecord.for_key(tasks_jobs.add, "sum-1") == record
    with pytest.raises(DuplicateJob):
        tasks_jobs.add.using_job(key="sum-1", on_conflict="raise").enqueue(1, 2)


def test_a_django_task_can_be_a_batch_member_and_its_callback(memory_queue):
    with Batch.open("sums", on_complete=tasks_jobs.batch_done) as batch:
        members = [tasks_jobs.add.using_job(batch=batch).enqueue(i, i) for i in range(3)]
    memory_queue.run_pending()
    batch.refresh_from_db()
    assert batch.status == Batch.Status.COMPLETED
    assert [tasks_jobs.add.get_result(m.id).return_value for m in members] == [0, 2, 4]
    callback = JobRecord.objects.get(task_name="tests.backends.tasks_jobs.batch_done")
    result = tasks_jobs.batch_done.get_result(str(callback.pk))
    assert result.return_value == {"batch": str(batch.pk), "status": "completed"}


def test_a_job_cancelled_while_pending_is_failed_naming_the_cancel(memory_queue):
    result = tasks_jobs.add.enqueue(1, 2)
    assert record_of(result).request_cancel() is True
    got = tasks_jobs.add.get_result(result.id)
    assert got.status == TaskResultStatus.FAILED
    [error] = got.errors
    assert error.exception_class_path == "django_jobprogress.exceptions.JobCancelled"
    assert f"job {result.id} was cancelled" in error.traceback
    assert memory_queue.run_pending() == 1
    assert record_of(result).status == Status.CANCELLED  # the delivery was dropped


def test_retry_runs_the_django_task_again():
    failed = record_of(tasks_jobs.explode.enqueue("once"))
    retried = failed.retry()
    retried.refresh_from_db()
    assert retried.retry_of == failed.pk
    assert retried.task_name == "tests.backends.tasks_jobs.explode"
    assert tasks_jobs.explode.get_result(str(retried.pk)).errors[0].exception_class is (
        tasks_jobs.ExportError
    )


def test_the_worker_resolves_the_name_to_the_tasks_progress_task(memory_queue):
    job = resolve_task("tests.backends.tasks_jobs.add")
    assert job is tasks_jobs.add.as_progress_task()
    # What the scheduler does with a schedule's task: it is found again by its name.
    record, created = enqueue_or_find(job, [4, 5], {}, key="nightly")
    assert created
    memory_queue.run_pending()
    assert tasks_jobs.add.get_result(str(record.pk)).return_value == 9


@pytest.mark.skipif(not tasks_jobs.TASK_OPTIONS, reason="@task takes no job options here")
def test_a_failed_attempt_is_ready_again_then_succeeds(memory_queue, tmp_path):
    result = tasks_jobs.flaky.enqueue(str(tmp_path))
    memory_queue.run_pending(limit=1)
    again = tasks_jobs.flaky.get_result(result.id)
    assert again.status == TaskResultStatus.READY
    assert again.errors[0].exception_class_path == "tests.backends.tasks_jobs.ExportError"
    assert again.worker_ids == [WORKER]
    memory_queue.run_pending()
    done = tasks_jobs.flaky.get_result(result.id)
    assert done.status == TaskResultStatus.SUCCESSFUL
    assert done.return_value == {"attempt": 2}
    assert done.worker_ids == [WORKER, WORKER]
    assert done.errors == []


def test_a_job_whose_worker_was_lost_names_job_failed(memory_queue):
    result = tasks_jobs.add.enqueue(1, 2)
    JobRecord.objects.claim(result.id, host="gone", pid=1)
    later = timezone.now() + timedelta(hours=1)
    assert JobRecord.objects.fail_stalled(later) == 1
    got = tasks_jobs.add.get_result(result.id)
    assert got.status == TaskResultStatus.FAILED
    [error] = got.errors
    assert error.exception_class is JobFailed
    assert error.traceback == "django_jobprogress.backends.results.JobFailed: worker lost\n"
    assert got.worker_ids == ["gone:1"]
