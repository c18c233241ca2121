import math
import threading

import pytest

from django_jobprogress.exceptions import JobCancelled, JobNotRunning
from django_jobprogress.jobrun import JobRun
from django_jobprogress.models import JobRecord
from django_jobprogress.progress import Progress
from django_jobprogress.signals import job_progress
from tests.factories import start
from tests.test_validation import BIG, nested

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def running_record():
    def make(**fields):
        record = JobRecord.objects.create(task_name="tests.jobs.add", **fields)
        return start(record, host="test")

    return make


@pytest.fixture
def job_run(running_record):
    """``make(...)`` -> the ``JobRun`` the run wrapper builds for a running job."""

    def make(throttle=0.0, heartbeat_interval=10.0, **fields):
        return JobRun(
            running_record(**fields), throttle=throttle, heartbeat_interval=heartbeat_interval
        )

    return make


@pytest.fixture
def handle(job_run):
    """``make(...)`` -> the progress handle a task is given."""

    def make(throttle=0.0, **fields):
        return job_run(throttle=throttle, **fields).progress

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


def test_steps_continue_from_base_over_a_share_of_the_bar(handle):
    progress = handle()
    progress.update(0.25)
    progress.steps(8, 8, base=0.25, max=0.5)  # the laravel-job-progress example
    assert progress.fraction == 0.75
    record = stored(progress)
    assert record.progress == 0.75
    assert (record.current, record.total) == (8, 8)


def test_steps_map_completed_into_the_share(handle):
    progress = handle()
    progress.steps(1, 4, base=0.5, max=0.4)
    record = stored(progress)
    assert record.progress == pytest.approx(0.6)
    assert (record.current, record.total) == (1, 4)


def test_steps_share_is_clamped_to_what_is_left_of_the_bar(handle):
    progress = handle()
    progress.steps(4, 8, base=0.5, max=0.9)  # 0.5 + min(0.9, 0.5) * 4 / 8
    assert stored(progress).progress == pytest.approx(0.75)
    progress.steps(8, 8, base=0.8, max=1.0)
    assert stored(progress).progress == 1.0
    progress.steps(1, 2, base=0.8, max=0.2)  # base above max is legal now
    assert stored(progress).progress == pytest.approx(0.9)


def test_steps_of_zero_total_lands_on_base(handle):
    progress = handle()
    progress.steps(0, 0, base=0.2, max=0.4)
    assert stored(progress).progress == pytest.approx(0.2)
    progress.steps(0, 0)
    assert stored(progress).progress == 0.0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((5, 4), r"completed \(5\) must not exceed total \(4\)"),
        ((1, -2), "total must not be negative, got -2"),
        ((1.5, 4), "completed must be an integer, got 1.5"),
        ((1, 4, 1.2), "base must be between 0 and 1, got 1.2"),
        ((1, 4, 0.1, -0.2), r"max must be between 0 and 1, got -0\.2"),
        ((1, 2**63), "total must be at most 9223372036854775807, got 9223372036854775808"),
    ],
)
def test_steps_rejects_bad_values(handle, args, message):
    progress = handle()
    with pytest.raises((ValueError, TypeError), match=message):
        progress.steps(*args)
    assert stored(progress).progress == 0.0


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


def test_trailing_write_reaches_the_database_without_another_call(job_run):
    from django_jobprogress.ticker import ticker

    run = job_run(throttle=0.05)
    progress = run.progress
    progress.update(0.1)
    written = threading.Event()

    def on_progress(sender, record, **kwargs):
        if record.pk == progress.record.pk and record.progress == 0.7:
            written.set()

    job_progress.connect(on_progress)
    try:
        with ticker.watching(run):
            progress.update(0.7)  # throttled: not written by this call
            assert written.wait(5), "the trailing write never happened"
    finally:
        job_progress.disconnect(on_progress)
    assert stored(progress).progress == 0.7


def test_heartbeat_is_refreshed_by_the_ticker(job_run):
    from django_jobprogress.signals import job_progress  # noqa: F401
    from django_jobprogress.ticker import ticker

    run = job_run(heartbeat_interval=0.05)
    progress = run.progress
    before = stored(progress).heartbeat_at
    beaten = threading.Event()
    original = progress.record.beat

    def beat(*args, **kwargs):
        won = original(*args, **kwargs)
        beaten.set()
        return won

    progress.record.beat = beat
    with ticker.watching(run):
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


# -- values the databases cannot store ------------------------------------------------


def row_state(progress):
    record = stored(progress)
    fields = ("status", "progress", "current", "total", "stage", "message", "fields", "result")
    return {name: getattr(record, name) for name in fields}


@pytest.mark.parametrize(
    ("call", "error", "parts"),
    [
        pytest.param(
            lambda p: p.update(10**400), ValueError, ["fraction", "401 digits"], id="update"
        ),
        pytest.param(
            lambda p: setattr(p, "total", BIG), ValueError, ["total", str(BIG)], id="total"
        ),
        pytest.param(
            lambda p: p.steps(1, BIG), ValueError, ["total must be at most", str(BIG)], id="steps"
        ),
        pytest.param(
            lambda p: p.increment(BIG), ValueError, ["increment", str(BIG)], id="increment"
        ),
        pytest.param(lambda p: p.decrement(BIG), ValueError, ["n must be", str(BIG)], id="decr"),
        pytest.param(lambda p: p.stage("a\x00b"), ValueError, ["stage", r"'a\x00b'"], id="nul"),
        pytest.param(lambda p: p.stage("\ud800"), ValueError, ["stage", r"'\ud800'"], id="surr"),
        pytest.param(lambda p: p.message("x\x00"), ValueError, ["message", r"'x\x00'"], id="msg"),
        pytest.param(
            lambda p: p.set(stats={"ratio": math.nan}),
            ValueError,
            ["field 'stats'['ratio']", "nan"],
            id="set-nan",
        ),
        pytest.param(
            lambda p: p.set(rows=[0, {"n": BIG}]),
            ValueError,
            ["field 'rows'[1]['n']", str(BIG)],
            id="set-int",
        ),
        pytest.param(
            lambda p: p.set(ok=1, name="caf\udce9"),
            ValueError,
            ["field 'name'", r"'caf\udce9'"],
            id="set-surrogate",
        ),
        pytest.param(
            lambda p: p.set(**{"a\x00": 1}),
            ValueError,
            ["field name", r"'a\x00'"],
            id="set-name",
        ),
        pytest.param(
            lambda p: p.set(labels={"b\x00": 1}),
            ValueError,
            ["field 'labels' key", r"'b\x00'"],
            id="set-key",
        ),
        pytest.param(
            lambda p: p.set(tree=nested(10_000)),
            ValueError,
            ["field 'tree'", "levels deep"],
            id="set-deep",
        ),
        pytest.param(
            lambda p: p.complete({"ratio": -math.inf}),
            ValueError,
            ["result['ratio']", "-inf"],
            id="complete",
        ),
    ],
)
def test_a_value_the_database_cannot_store_is_refused_and_nothing_changes(
    handle, call, error, parts
):
    progress = handle()
    progress.stage("before")
    progress.message("kept")
    progress.set(kept=1)
    progress.update(0.5)
    before = row_state(progress)
    with pytest.raises(error) as caught:
        call(progress)
    for part in parts:
        assert part in str(caught.value)
    assert row_state(progress) == before
    assert before["status"] == "running"
    progress.complete({"ok": True})  # the job goes on and ends normally
    record = stored(progress)
    assert (record.status, record.result, record.fields) == ("completed", {"ok": True}, {"kept": 1})
    assert (record.stage, record.message) == ("before", "kept")


def test_increment_may_not_pass_the_largest_stored_integer(handle):
    progress = handle()
    progress.increment(BIG - 1)
    with pytest.raises(ValueError, match=f"increment\\(1\\) would make current {BIG}"):
        progress.increment()
    assert progress.current == BIG - 1
    progress.complete()
    assert stored(progress).current == BIG - 1


def test_fail_stores_an_error_with_nul_and_surrogates_replaced(handle):
    progress = handle()
    try:
        raise ValueError("bad\x00byte \ud800")
    except ValueError as exc:
        error = exc
    progress.fail(error)
    record = stored(progress)
    assert (record.status, record.error) == ("failed", "ValueError: bad\ufffdbyte \ufffd")
    assert "ValueError: bad\ufffdbyte" in record.traceback
    assert "\x00" not in record.traceback


def test_accepted_values_round_trip_through_the_database(handle):
    from django_jobprogress.validation import MAX_JSON_DEPTH

    awkward = {
        "text": 'café ☕ 😀 Ωμέγα \t\n\x01\x1f\x7f \\u0000 "quoted"',
        "keys": {"": 0, "é": 1, "😀": 2, "a.b": 3, "$x": 4},
        "ints": [-BIG, BIG - 1, 0, -1],
        "floats": [1.5, -2.25e-300, 1e-7, 0.1],
        "flags": [True, False, None],
        "empty": [[], {}, ""],
        "deep": nested(MAX_JSON_DEPTH - 1),
    }
    progress = handle()
    progress.stage("😀" * 300)  # cut to 255 characters, not bytes
    progress.message(awkward["text"])
    progress.set(**awkward)
    progress.total = BIG - 1
    progress.increment(BIG - 1)
    progress.complete(awkward)
    record = progress.record
    record.refresh_from_db()
    assert record.status == "completed"
    assert record.stage == "😀" * 255
    assert record.message == awkward["text"]
    assert record.fields == awkward
    assert record.result == awkward
    assert (record.current, record.total) == (BIG - 1, BIG - 1)


# -- the handle and the run's controls ------------------------------------------------

USER_FACING = {
    # reporting
    "update",
    "steps",
    "total",
    "increment",
    "decrement",
    "stage",
    "message",
    "set",
    "finish",
    "complete",
    "fail",
    "checkpoint",
    # reading
    "fraction",
    "current",
    "closed",
    "cancel_requested",
    "writes",
    "record",
}


def test_the_handle_offers_task_code_only_what_it_reports_and_reads(handle):
    progress = handle()
    assert isinstance(progress, Progress)
    assert {name for name in dir(progress) if not name.startswith("_")} == USER_FACING


def test_the_run_closes_with_the_outcome_unless_the_task_ended_the_job(job_run):
    run = job_run()
    run.progress.total = 4
    run.progress.increment(3)
    assert run.close_completed({"n": 3}) is True
    assert run.close_completed({"n": 4}) is False
    assert run.close_failed(ValueError("late")) is False
    record = stored(run.progress)
    assert (record.status, record.result, record.current, record.total) == (
        "completed",
        {"n": 3},
        3,
        4,
    )

    ended_by_task = job_run()
    ended_by_task.progress.fail("gave up")
    assert ended_by_task.close_cancelled() is False
    assert stored(ended_by_task.progress).error == "gave up"


def test_the_run_fails_a_result_that_cannot_be_stored_and_raises_it(job_run):
    run = job_run()
    with pytest.raises(TypeError, match=r"return value\['r'\] must be a finite number, got nan"):
        run.close_completed({"r": math.nan})
    record = stored(run.progress)
    assert record.status == "failed"
    assert record.error.startswith("TypeError: return value['r']")
    with pytest.raises(JobNotRunning, match="is failed"):
        run.progress.update(0.5)


def test_the_run_cancels_after_a_checkpoint_stopped_the_task(job_run):
    run = job_run()
    run.progress.update(0.2)
    assert JobRecord.objects.get(pk=run.record.pk).request_cancel()
    with pytest.raises(JobCancelled):
        run.progress.checkpoint()
    assert run.close_cancelled() is True
    assert (stored(run.progress).status, stored(run.progress).progress) == ("cancelled", 0.2)


def test_a_tick_beats_while_a_throttled_write_waits_then_makes_the_trailing_write(job_run):
    import time

    run = job_run(throttle=60, heartbeat_interval=30)
    progress, beats = run.progress, []
    original = run.record.beat
    run.record.beat = lambda *a, **k: beats.append(1) or original(*a, **k)
    progress.update(0.1)  # written at once
    progress.update(0.2)  # throttled
    now = time.monotonic()
    run.tick(now + 10)  # neither is due
    run.tick(now + 31)  # the heartbeat is due, the write is not
    assert (stored(progress).progress, progress.writes, beats) == (0.1, 1, [1])
    run.tick(now + 45)
    assert beats == [1]
    run.tick(now + 61)  # the throttle interval has passed: the trailing write
    assert (stored(progress).progress, progress.writes, beats) == (0.2, 2, [1])
    assert run.tick_interval() == 1.0


def test_a_progress_write_counts_as_a_heartbeat(job_run):
    import time

    run = job_run(throttle=0, heartbeat_interval=30)
    progress, beats = run.progress, []
    original = run.record.beat
    run.record.beat = lambda *a, **k: beats.append(1) or original(*a, **k)
    built = time.monotonic()
    time.sleep(0.2)
    progress.update(0.1)  # at least 0.2 s after the run was built
    run.tick(built + 30.05)  # 30 s since the run began, under 30 s since the write
    assert beats == []
    run.tick(built + 60)
    assert beats == [1]
