from datetime import timedelta

import pytest

from django_jobprogress import conf
from django_jobprogress.models import Batch, JobRecord
from django_jobprogress.models.batches import BatchSealed
from django_jobprogress.recovery import sweep
from tests import jobs
from tests.factories import start

pytestmark = pytest.mark.django_db(transaction=True)

CALLBACK = "tests.jobs.batch_callback"


def fresh(batch):
    return Batch.objects.get(pk=batch.pk)


def test_members_are_counted_and_the_batch_completes_once(memory_queue):
    with Batch.open("blast", on_complete=CALLBACK, on_success=jobs.batch_callback) as batch:
        for n in range(3):
            jobs.add.enqueue(n, 1, batch=batch)
        assert fresh(batch).status == Batch.Status.OPEN
    snapshot = fresh(batch).snapshot()
    assert (snapshot["status"], snapshot["total"], snapshot["pending"]) == ("running", 3, 3)
    memory_queue.run_pending()
    done = fresh(batch)
    assert (done.status, done.succeeded, done.failed, done.cancelled) == ("completed", 3, 0, 0)
    assert done.on_complete_enqueued_at and done.on_success_enqueued_at
    assert done.on_failure_enqueued_at is None
    callbacks = JobRecord.objects.filter(task_name=CALLBACK)
    assert callbacks.count() == 2
    assert {c.status for c in callbacks} == {"completed"}
    assert {c.result["batch"] for c in callbacks} == {str(batch.pk)}
    assert fresh(batch).snapshot()["progress"] == 1.0


def test_empty_sealed_batch_completes_at_once():
    with Batch.open("nothing to do", on_complete=CALLBACK) as batch:
        pass
    done = fresh(batch)
    assert done.status == "completed" and done.finished_at is not None
    [callback] = JobRecord.objects.filter(task_name=CALLBACK)
    assert callback.result == {"batch": str(batch.pk), "status": "completed", "tag": ""}


def test_a_failed_member_fails_the_batch(memory_queue):
    with Batch.open(
        "blast", on_complete=CALLBACK, on_success=CALLBACK, on_failure=CALLBACK
    ) as batch:
        jobs.add.enqueue(1, 1, batch=batch)
        jobs.Explode.enqueue(batch=batch)
    memory_queue.run_pending()
    done = fresh(batch)
    assert (done.status, done.succeeded, done.failed) == ("failed", 1, 1)
    assert done.on_complete_enqueued_at and done.on_failure_enqueued_at
    assert done.on_success_enqueued_at is None


def test_allow_failures_still_succeeds(memory_queue):
    with Batch.open(
        "blast", on_success=CALLBACK, on_failure=CALLBACK, allow_failures=True
    ) as batch:
        jobs.Explode.enqueue(batch=batch)
    memory_queue.run_pending()
    done = fresh(batch)
    assert done.status == "completed"
    assert done.on_success_enqueued_at and done.on_failure_enqueued_at


def test_jobs_cannot_join_a_sealed_batch(memory_queue):
    with Batch.open("blast") as batch:
        batch.add(jobs.add, 1, 2)
    with pytest.raises(BatchSealed, match="is sealed"):
        batch.add(jobs.add, 3, 4)
    assert JobRecord.objects.count() == 1
    assert fresh(batch).total == 1


def test_an_exception_in_the_block_cancels_everything(memory_queue):
    with (
        pytest.raises(RuntimeError, match="address book"),
        Batch.open("blast", on_complete=CALLBACK) as batch,
    ):
        jobs.add.enqueue(1, 2, batch=batch)
        raise RuntimeError("address book unreadable")
    memory_queue.run_pending()
    done = fresh(batch)
    assert (done.status, done.cancelled, done.total) == ("cancelled", 1, 1)
    assert JobRecord.objects.get(batch=batch).status == "cancelled"
    assert not JobRecord.objects.filter(task_name=CALLBACK).exists()


def test_cancelling_a_batch_cancels_its_pending_members(memory_queue):
    with Batch.open("blast", on_complete=CALLBACK, on_success=CALLBACK) as batch:
        for n in range(3):
            jobs.add.enqueue(n, n, batch=batch)
    assert fresh(batch).request_cancel() is True
    memory_queue.run_pending()
    done = fresh(batch)
    assert (done.status, done.cancelled) == ("cancelled", 3)
    assert done.on_complete_enqueued_at and done.on_success_enqueued_at is None
    assert fresh(batch).request_cancel() is False  # finished: nothing to cancel


def test_pruned_member_rows_do_not_stop_the_batch(memory_queue):
    with Batch.open("blast", on_complete=CALLBACK) as batch:
        members = [jobs.add.enqueue(n, 1, batch=batch) for n in range(4)]
    first, rest = memory_queue.queued[:2], memory_queue.queued[2:]
    memory_queue.queued[:] = first
    memory_queue.run_pending()
    JobRecord.objects.filter(batch=batch, status="completed").delete()  # a prune mid-batch
    memory_queue.queued[:] = rest
    memory_queue.run_pending()
    done = fresh(batch)
    assert (done.status, done.succeeded, done.total) == ("completed", 4, 4)
    assert JobRecord.objects.filter(pk__in=[m.pk for m in members]).count() == 2
    assert done.on_complete_enqueued_at is not None


def test_progress_counts_running_members_partial_progress(memory_queue):
    with Batch.open("blast") as batch:
        members = [jobs.add.enqueue(n, 1, batch=batch) for n in range(4)]
    finished = JobRecord.objects.get(pk=members[0].pk)
    start(finished)
    finished.complete(1)
    running = JobRecord.objects.get(pk=members[1].pk)
    start(running)
    running.save_progress({"progress": 0.5})
    snapshot = fresh(batch).snapshot()
    assert snapshot["progress"] == pytest.approx((1 + 0.5) / 4)
    assert (snapshot["succeeded"], snapshot["running"], snapshot["pending"]) == (1, 1, 2)


def test_bad_batch_input_is_named_and_writes_nothing():
    with (
        pytest.raises(Exception, match=r"'tests\.jobs\.nope' cannot be imported"),
        Batch.open("blast", on_complete="tests.jobs.nope"),
    ):
        pass
    with pytest.raises(ValueError, match="non-empty name, got ''"), Batch.open(""):
        pass
    with pytest.raises(TypeError, match="batch must be a Batch"):
        jobs.add.enqueue(1, 2, batch="not a batch")
    assert not Batch.objects.exists() and not JobRecord.objects.exists()


def test_member_snapshot_names_its_batch(memory_queue):
    with Batch.open("blast") as batch:
        record = jobs.add.enqueue(1, 2, batch=batch)
    assert record.snapshot()["batch"] == str(batch.pk)


def test_callback_kwargs_may_not_shadow_enqueue_options():
    with (
        pytest.raises(ValueError, match="callback_kwargs may not use owner, queue"),
        Batch.open("blast", on_complete=CALLBACK, callback_kwargs={"owner": 1, "queue": "x"}),
    ):
        pass
    assert not Batch.objects.exists()


def test_a_cancelled_batch_takes_no_new_members(memory_queue):
    with pytest.raises(BatchSealed, match="sealed or cancelled"), Batch.open("blast") as batch:
        batch.add(jobs.add, 1, 2)
        batch.request_cancel()
        batch.add(jobs.add, 3, 4)
    assert fresh(batch).total == 1


def test_batch_push_keeps_the_last_change(memory_queue, settings):
    import time

    from django_jobprogress.adapters.push_memory import RecordingPush
    from django_jobprogress.groups import batch_group

    settings.JOBPROGRESS = {
        **settings.JOBPROGRESS,
        "PUSH_ADAPTER": "django_jobprogress.adapters.push_memory.RecordingPush",
        "THROTTLE": 0.2,
    }
    RecordingPush.clear()
    with Batch.open("blast") as batch:
        members = [jobs.add.enqueue(n, 1, batch=batch) for n in range(3)]
    for member in members[:2]:  # two member ends inside one throttle window; still running
        record = JobRecord.objects.get(pk=member.pk)
        start(record)
        record.complete(1)

    def pushed_counts():
        return [s["succeeded"] for g, s in RecordingPush.sent if g == batch_group(batch.pk)]

    deadline = time.monotonic() + 5
    while 2 not in pushed_counts() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert 2 in pushed_counts(), f"the batch's last change was never pushed: {pushed_counts()}"
    RecordingPush.clear()


def test_callbacks_an_end_left_behind_are_enqueued_by_the_sweep_once(memory_queue, monkeypatch):
    with Batch.open("blast", on_complete=CALLBACK, on_success=CALLBACK) as batch:
        member = jobs.add.enqueue(1, 2, batch=batch)
    # The process that ends the last member dies before it enqueues the callbacks.
    monkeypatch.setattr(Batch, "_finished", lambda self, now: None)
    assert start(member).complete(3)
    monkeypatch.undo()
    ended = fresh(batch)
    assert ended.status == "completed"
    assert (ended.on_complete_enqueued_at, ended.on_success_enqueued_at) == (None, None)
    assert not JobRecord.objects.filter(task_name=CALLBACK).exists()

    assert sweep(ended.finished_at).callbacks == 0  # not before REDELIVER_AFTER
    later = ended.finished_at + timedelta(seconds=conf.get("REDELIVER_AFTER") + 1)
    assert sweep(later).callbacks == 1
    assert sweep(later).callbacks == 0  # claimed: the next sweep finds nothing
    repaired = fresh(batch)
    assert repaired.on_complete_enqueued_at and repaired.on_success_enqueued_at
    assert JobRecord.objects.filter(task_name=CALLBACK).count() == 2
