from datetime import timedelta

import pytest
from django.utils import timezone

from django_jobprogress.models import WORKER_LOST, JobRecord
from tests.factories import start

pytestmark = pytest.mark.django_db

Status = JobRecord.Status


@pytest.fixture
def make_job():
    def make(status=None, progress=None, **fields):
        record = JobRecord.objects.create(task_name="tests.jobs.add", **fields)
        if status == Status.RUNNING:
            start(record)
        if progress is not None:
            assert record.save_progress({"progress": progress})
        return record

    return make


def fresh(record):
    return JobRecord.objects.get(pk=record.pk)


def test_status_values_are_the_lowercase_words():
    assert list(Status.values) == ["pending", "running", "completed", "failed", "cancelled"]


def test_claim_moves_pending_to_running_once(make_job):
    record = make_job()
    assert JobRecord.objects.claim(record.pk, host="a", pid=10) is not None
    # A duplicate delivery loses.
    assert JobRecord.objects.claim(record.pk, host="b", pid=20) is None
    stored = fresh(record)
    assert (stored.status, stored.worker_host, stored.worker_pid, stored.attempts) == (
        "running",
        "a",
        10,
        1,
    )


def test_claim_retakes_a_running_job_whose_heartbeat_is_stale(make_job):
    record = make_job(Status.RUNNING, stall_timeout=30, max_attempts=2)
    later = timezone.now() + timedelta(seconds=31)
    assert JobRecord.objects.claim(record.pk, host="b", pid=2, now=later) is not None
    assert fresh(record).attempts == 2
    # The lost attempt counted: a third delivery finds no attempt left.
    even_later = later + timedelta(seconds=31)
    assert JobRecord.objects.claim(record.pk, host="c", pid=3, now=even_later) is None
    assert (fresh(record).worker_host, fresh(record).attempts) == ("b", 2)


def test_claim_never_retakes_a_lost_job_with_no_attempt_left(make_job):
    record = make_job(Status.RUNNING, stall_timeout=30)  # max_attempts=1
    later = timezone.now() + timedelta(seconds=31)
    assert JobRecord.objects.claim(record.pk, host="b", pid=2, now=later) is None
    stored = fresh(record)
    assert (stored.status, stored.worker_host, stored.attempts) == ("running", "h", 1)


def test_a_job_finishes_only_once(make_job):
    record = make_job(Status.RUNNING)
    other = fresh(record)
    assert record.complete({"n": 1}) is True
    assert other.fail("late failure") is False
    assert other.mark_cancelled() is False
    stored = fresh(record)
    assert (stored.status, stored.result, stored.error) == ("completed", {"n": 1}, "")


def test_request_cancel_of_a_pending_job_cancels_it_at_once(make_job, make_user):
    user = make_user()
    record = make_job(cancellable=False)  # not started yet: cancellable or not
    assert record.request_cancel(by=user) is True
    stored = fresh(record)
    assert stored.status == Status.CANCELLED
    assert stored.cancel_requested_by == user and stored.finished_at is not None


def test_request_cancel_of_a_running_job_only_flags_it(make_job):
    record = make_job(Status.RUNNING)
    assert record.request_cancel() is True
    assert record.request_cancel() is True  # asking twice keeps the first time
    stored = fresh(record)
    assert stored.status == Status.RUNNING and stored.cancel_requested_at is not None
    assert stored.snapshot()["cancel_requested"] is True


@pytest.mark.parametrize(
    "fields",
    [{"cancellable": False}, {"cancel_threshold": 0.5, "progress": 0.5}],
    ids=["not-cancellable", "past-threshold"],
)
def test_request_cancel_refused_changes_nothing(make_job, fields):
    record = make_job(Status.RUNNING, **fields)
    assert record.request_cancel() is False
    stored = fresh(record)
    assert stored.status == Status.RUNNING and stored.cancel_requested_at is None


def test_request_cancel_of_a_finished_job_is_refused(make_job):
    record = make_job(Status.RUNNING)
    record.complete()
    assert fresh(record).request_cancel() is False
    assert fresh(record).status == Status.COMPLETED


def test_stalled_finds_only_running_jobs_with_an_old_heartbeat(make_job):
    lost = make_job(Status.RUNNING, stall_timeout=5)
    healthy = make_job(Status.RUNNING, stall_timeout=600)
    make_job()  # pending: never stalled
    later = timezone.now() + timedelta(seconds=10)
    assert list(JobRecord.objects.stalled(later)) == [lost]
    assert JobRecord.objects.fail_stalled(later) == 1
    assert (fresh(lost).status, fresh(lost).error) == ("failed", WORKER_LOST)
    assert fresh(healthy).status == Status.RUNNING


def test_fail_silent_uses_the_progress_timeout(make_job):
    silent = make_job(Status.RUNNING, progress_timeout=2)
    make_job(Status.RUNNING)  # no progress_timeout
    later = timezone.now() + timedelta(seconds=3)
    assert JobRecord.objects.fail_silent(later) == 1
    assert fresh(silent).error == "no progress after 2 s"


def test_access_token_is_bound_to_its_job(make_job):
    record, other = make_job(), make_job()
    token = record.access_token()
    assert record.check_access_token(token)
    assert not other.check_access_token(token)
    assert not record.check_access_token(token + "x")
    assert not record.check_access_token(None)


def test_access_token_expires_with_token_max_age(make_job, settings):
    record = make_job()
    token = record.access_token()
    settings.JOBPROGRESS = {**settings.JOBPROGRESS, "TOKEN_MAX_AGE": -1}
    assert not record.check_access_token(token)


def test_snapshot_shape(make_job):
    record = make_job(Status.RUNNING)
    record.save_progress(
        {
            "progress": 0.5,
            "current": 5,
            "total": 10,
            "stage": "s",
            "message": "m",
            "fields": {"a": 1},
        }
    )
    snapshot = fresh(record).snapshot()
    assert set(snapshot) == {
        "id",
        "name",
        "status",
        "progress",
        "current",
        "total",
        "stage",
        "message",
        "fields",
        "result",
        "error",
        "eta_seconds",
        "cancel_requested",
        "cancellable",
        "attempts",
        "created",
        "started",
        "finished",
        "updated",
        "batch",
    }
    assert snapshot["id"] == str(record.pk)
    assert (snapshot["status"], snapshot["progress"], snapshot["current"]) == ("running", 0.5, 5)
    assert snapshot["cancellable"] is True
    assert "traceback" not in snapshot


def test_eta_from_the_rate_of_progress(make_job):
    from django_jobprogress.snapshots import eta_seconds

    record = make_job(Status.RUNNING)
    record.started_at = timezone.now() - timedelta(seconds=40)
    record.progress_at = record.started_at + timedelta(seconds=30)
    record.progress = 0.25
    now = record.progress_at + timedelta(seconds=10)
    # 30 s for a quarter -> 90 s left at that report, 10 s of which have passed.
    assert eta_seconds(record, now) == 80.0
    record.progress = 0
    assert eta_seconds(record, now) is None


# -- the failure path cannot fail ---------------------------------------------------------

POISON_SQLITE = """
CREATE TRIGGER jobprogress_poison BEFORE UPDATE ON django_jobprogress_jobrecord
WHEN NEW.{column} LIKE '%poison%' BEGIN SELECT RAISE(ABORT, 'poisoned value'); END
"""
POISON_POSTGRES = """
CREATE FUNCTION jobprogress_poison() RETURNS trigger AS $$
BEGIN
  IF NEW.{column}::text LIKE '%poison%' THEN RAISE EXCEPTION 'poisoned value'; END IF;
  RETURN NEW;
END $$ LANGUAGE plpgsql;
CREATE TRIGGER jobprogress_poison BEFORE UPDATE ON django_jobprogress_jobrecord
FOR EACH ROW EXECUTE FUNCTION jobprogress_poison();
"""


@pytest.fixture
def poison():
    """Make the database refuse any write of a value containing "poison" to ``column``:
    a real refusal by the database, as for a value it cannot store."""
    from django.db import connection

    def install(column):
        sql = POISON_POSTGRES if connection.vendor == "postgresql" else POISON_SQLITE
        with connection.cursor() as cursor:
            cursor.execute(sql.format(column=column))

    return install


def test_a_result_the_database_refuses_ends_the_job_failed_saying_so(make_job, poison):
    record = make_job(Status.RUNNING)
    poison("result")
    assert record.complete({"path": "poison.zip"}) is True
    stored = fresh(record)
    assert stored.status == Status.FAILED
    assert stored.error.startswith("the job's result could not be stored: ")
    assert "poisoned value" in stored.error
    assert (stored.result, stored.finished_at is not None) == (None, True)


def test_a_failure_whose_values_are_refused_still_ends_the_job(make_job, poison):
    record = make_job(Status.RUNNING)
    poison("stage")
    assert record.fail("ValueError: bad row", "Traceback ...", stage="poison") is True
    stored = fresh(record)
    assert (stored.status, stored.stage) == (Status.FAILED, "")
    assert stored.error.startswith("ValueError: bad row (the job's final values could not")
    assert stored.traceback == "Traceback ..."


def test_a_refused_end_of_a_batch_member_still_counts_in_its_batch(make_job, poison):
    from django_jobprogress.models import Batch

    with Batch.open("b") as batch:
        member = make_job(batch=batch)
        Batch.objects.filter(pk=batch.pk).update(total=1)
    start(member)
    poison("message")
    assert member.fail("boom", message="poison") is True
    batch.refresh_from_db()
    assert (fresh(member).status, batch.status, batch.failed) == ("failed", "failed", 1)


def test_a_retry_whose_values_are_refused_still_goes_back_to_pending(make_job, poison):
    record = make_job(Status.RUNNING, max_attempts=2)
    poison("message")
    assert record.fail_attempt("boom", message="poison") is True
    stored = fresh(record)
    assert (stored.status, stored.message, stored.worker_pid) == ("pending", "", None)
    assert stored.error.startswith("boom (the job's final values could not be stored")


def test_exception_text_is_stored_with_nul_and_surrogates_replaced(make_job):
    record = make_job(Status.RUNNING)
    assert record.fail("ValueError: a\x00b\ud800c", "line\x00") is True
    stored = fresh(record)
    assert (stored.error, stored.traceback) == ("ValueError: a\ufffdb\ufffdc", "line\ufffd")
