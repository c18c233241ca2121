import math
import threading

import pytest

from django_jobprogress.exceptions import JobCancelled, JobNotRunning
from django_jobprogress.models import JobRecord
from django_jobprogress.progress import Progress
from django_jobprogress.signals import job_progress

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def running_record():
    def make(**fields):
        record = JobRecord.objects.create(task_name="tests.jobs.add", **fields)
        assert record.claim(host="test", pid=1)
        return record

    return make


@pytest.fixture
def handle(running_record):
    def make(throttle=0.0, heartbeat_interval=10.0, **fields):
        return Progress(
            running_record(**fields), throttle=throttle, heartbeat_interval=heartbeat_interval
        )

    return make


def stored(progress):
    return JobRecord.objects.get(pk=progress.record.pk)


def test_update_writes_the_fraction(handle):
    progress = handle()
    progress.update(0.5)
    assert stored(progress).progress == 0.5


@pytest.mark.parametrize(
    ("value", "error", "message"),
    [
        (1.5, ValueError, "fraction must be between 0 and 1, got 1.5"),
        (-0.1, ValueError, "fraction must be between 0 and 1, got -0.1"),
        (math.nan, ValueError, "fraction must be between 0 and 1, got nan"),
        ("half", TypeError, "fraction must be a number between 0 and 1, got 'half'"),
        (None, TypeError, "fraction must be a number between 0 and 1, got None"),
        (True, TypeError, "fraction must be a number between 0 and 1, got True"),
    ],
)
def test_update_rejects_bad_fractions_and_keeps_the_last_good_one(handle, value, error, message):
    progress = handle()
    progress.update(0.3)
    with pytest.raises(error, match=f"^{message}$"):
        progress.update(value)
    assert progress.fraction == 0.3
    assert stored(progress).progress == 0.3


def test_steps_maps_into_base_and_max(handle):
    progress = handle()
    progress.steps(1, 4, base=0.5, max=0.9)
    record = stored(progress)
    assert record.progress == pytest.approx(0.6)
    assert (record.current, record.total) == (1, 4)


def test_steps_of_zero_total_is_the_whole_span(handle):
    progress = handle()
    progress.steps(0, 0, base=0.2, max=0.4)
    assert stored(progress).progress == pytest.approx(0.4)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((5, 4), r"completed \(5\) must not exceed total \(4\)"),
        ((1, -2), "total must not be negative, got -2"),
        ((1.5, 4), "completed must be an integer, got 1.5"),
        ((1, 4, 0.8, 0.2), r"base \(0.8\) must not be greater than max \(0.2\)"),
    ],
)
def test_steps_rejects_bad_values(handle, args, message):
    progress = handle()
    with pytest.raises((ValueError, TypeError), match=message):
        progress.steps(*args)


def test_total_and_increment_derive_the_fraction(handle):
    progress = handle()
    progress.total = 4
    progress.increment()
    progress.increment(2)
    progress.decrement()
    record = stored(progress)
    assert (record.current, record.total, record.progress) == (2, 4, 0.5)


def test_zero_total_never_divides_by_zero(handle):
    progress = handle()
    progress.total = 0
    progress.increment()
    assert stored(progress).progress == 1.0


@pytest.mark.parametrize(
    ("value", "error", "message"),
    [
        (-1, ValueError, "total must not be negative, got -1"),
        (2.5, TypeError, "total must be an integer, got 2.5"),
        ("10", TypeError, "total must be an integer, got '10'"),
    ],
)
def test_total_rejects_bad_values(handle, value, error, message):
    progress = handle()
    with pytest.raises(error, match=message):
        progress.total = value
    assert progress.total is None


def test_decrement_below_zero_is_refused(handle):
    progress = handle()
    progress.increment(2)
    with pytest.raises(ValueError, match=r"decrement\(3\) would make current negative \(it is 2\)"):
        progress.decrement(3)
    assert progress.current == 2


def test_increment_rejects_negative_and_non_integers(handle):
    progress = handle()
    with pytest.raises(ValueError, match="n must not be negative, got -1"):
        progress.increment(-1)
    with pytest.raises(TypeError, match=r"n must be an integer, got 0\.5"):
        progress.increment(0.5)
    assert progress.current == 0


def test_stage_message_and_fields_are_stored(handle):
    progress = handle()
    progress.stage("importing")
    progress.message("row 10 of 20")
    progress.set(step="rows", rows_done=10)
    record = stored(progress)
    assert (record.stage, record.message) == ("importing", "row 10 of 20")
    assert record.fields == {"step": "rows", "rows_done": 10}


def test_fields_must_be_json(handle):
    progress = handle()
    with pytest.raises(TypeError, match="field 'when' is not JSON-serialisable"):
        progress.set(ok=1, when=object())
    assert stored(progress).fields == {}


def test_finish_sets_current_to_total_without_ending_the_job(handle):
    progress = handle()
    progress.total = 10
    progress.increment(3)
    progress.finish()
    record = stored(progress)
    assert (record.current, record.progress, record.status) == (10, 1.0, "running")


def test_complete_keeps_reported_counts(handle):
    progress = handle()
    progress.total = 10
    progress.increment(3)
    progress.complete({"ok": True})
    record = stored(progress)
    assert record.status == "completed"
    assert (record.progress, record.current, record.total) == (1.0, 3, 10)
    assert record.result == {"ok": True}
    with pytest.raises(JobNotRunning, match="is completed"):
        progress.increment()


def test_fail_from_the_handle(handle):
    progress = handle()
    progress.fail("upstream said no")
    record = stored(progress)
    assert (record.status, record.error) == ("failed", "upstream said no")


def test_throttle_coalesces_writes_but_forces_stage_and_total(handle):
    progress = handle(throttle=3600)
    progress.update(0.1)  # the first report is written at once
    progress.update(0.2)
    progress.update(0.3)
    assert stored(progress).progress == 0.1
    progress.stage("second")
    record = stored(progress)
    assert (record.stage, record.progress) == ("second", 0.3)
    progress.increment(5)
    progress.total = 10
    assert (stored(progress).current, stored(progress).total) == (5, 10)
    assert progress.writes == 3


def test_trailing_write_reaches_the_database_without_another_call(handle):
    from django_jobprogress.ticker import ticker

    progress = handle(throttle=0.05)
    progress.update(0.1)
    written = threading.Event()

    def on_progress(sender, record, **kwargs):
        if record.pk == progress.record.pk and record.progress == 0.7:
            written.set()

    job_progress.connect(on_progress)
    try:
        with ticker.watching(progress):
            progress.update(0.7)  # throttled: not written by this call
            assert written.wait(5), "the trailing write never happened"
    finally:
        job_progress.disconnect(on_progress)
    assert stored(progress).progress == 0.7


def test_heartbeat_is_refreshed_by_the_ticker(handle):
    from django_jobprogress.signals import job_progress  # noqa: F401
    from django_jobprogress.ticker import ticker

    progress = handle(heartbeat_interval=0.05)
    before = stored(progress).heartbeat_at
    beaten = threading.Event()
    original = progress.record.beat

    def beat(*args, **kwargs):
        won = original(*args, **kwargs)
        beaten.set()
        return won

    progress.record.beat = beat
    with ticker.watching(progress):
        assert beaten.wait(5), "no heartbeat"
    assert stored(progress).heartbeat_at > before


def test_checkpoint_raises_after_a_cancel_request(handle):
    progress = handle()
    progress.update(0.2)
    progress.checkpoint()
    assert JobRecord.objects.get(pk=progress.record.pk).request_cancel()
    with pytest.raises(JobCancelled):
        progress.checkpoint()


def test_checkpoint_ignores_a_cancel_past_the_threshold(handle):
    progress = handle(cancel_threshold=0.5)
    progress.update(0.4)
    assert JobRecord.objects.get(pk=progress.record.pk).request_cancel()
    progress.update(0.6)  # moved past the threshold before reaching a checkpoint
    progress.checkpoint()
    # The request it can no longer honour is withdrawn, so viewers stop expecting it.
    assert stored(progress).cancel_requested_at is None
    assert stored(progress).snapshot()["cancel_requested"] is False


def test_progress_call_raises_once_the_job_was_closed_outside(handle):
    progress = handle()
    progress.update(0.2)
    JobRecord.objects.get(pk=progress.record.pk).fail("closed by the sweep")
    with pytest.raises(JobNotRunning, match="is failed: closed by the sweep"):
        progress.update(0.3)
    with pytest.raises(JobNotRunning):
        progress.checkpoint()
