"""Races between processes, decided by PostgreSQL (row locks, the partial unique index).

Threads stand in for processes: each has its own database connection, and a
barrier releases them at the same instant so their statements really overlap.
"""

import threading
from datetime import timedelta
from functools import partial

import pytest
from django.db import OperationalError, connection, transaction
from django.db.models import Sum
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from django_jobprogress import conf, scheduler
from django_jobprogress.exceptions import DuplicateJob, JobCancelled
from django_jobprogress.execution import run_job
from django_jobprogress.models import Batch, EndsCounted, JobMinute, JobRecord, Schedule
from django_jobprogress.models.stats import count_ends, counted_before
from django_jobprogress.progress import Progress
from django_jobprogress.signals import job_finished, job_started
from tests import jobs
from tests.factories import count_every_end, start
from tests.workers import require_postgres

if connection.vendor != "postgresql":
    pytest.skip("PostgreSQL-only: run with JOBPROGRESS_TEST_DB=postgres", allow_module_level=True)

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

Status = JobRecord.Status
ROUNDS = 25


@pytest.fixture(scope="session", autouse=True)
def _require_postgres():
    """Runs before the test database is set up, so a missing server skips cleanly."""
    require_postgres()


def race(*calls):
    """Run each call in its own thread, all released together; return their outcomes.

    An outcome is ``("ok", value)`` or ``("raised", exception)``.
    """
    barrier = threading.Barrier(len(calls))
    outcomes = [None] * len(calls)

    def run(index, call):
        try:
            connection.ensure_connection()  # connect first: the race is on the statements
            barrier.wait(timeout=10)
            outcomes[index] = ("ok", call())
        except Exception as exc:
            outcomes[index] = ("raised", exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=pair) for pair in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not any(thread.is_alive() for thread in threads), "a racing thread hung"
    return outcomes


@pytest.fixture
def signals_sent():
    """(signal name, job id, status) for every job_started / job_finished sent."""
    sent = []
    lock = threading.Lock()

    def receiver(name):
        def receive(sender, record, **kwargs):
            with lock:
                sent.append((name, record.pk, record.status))

        return receive

    receivers = {"started": receiver("started"), "finished": receiver("finished")}
    job_started.connect(receivers["started"])
    job_finished.connect(receivers["finished"])
    yield sent
    job_started.disconnect(receivers["started"])
    job_finished.disconnect(receivers["finished"])


def fresh(record):
    return JobRecord.objects.get(pk=record.pk)


# -- keys: one unfinished job per (task, key) ------------------------------------------


def test_concurrent_enqueues_with_one_key_make_one_job(memory_queue):
    for round_ in range(ROUNDS):
        key = f"product-{round_}"
        outcomes = race(*[partial(jobs.add.enqueue, 1, 2, key=key)] * 8)

        assert [kind for kind, _ in outcomes] == ["ok"] * 8, outcomes
        [job] = JobRecord.objects.filter(task_name="tests.jobs.add", key=key)
        assert job.status == Status.PENDING
        assert {record.pk for _, record in outcomes} == {job.pk}
        assert memory_queue.queued.count(str(job.pk)) == 1  # handed to the queue once
    assert JobRecord.objects.count() == ROUNDS


def test_concurrent_enqueues_with_on_conflict_raise_let_exactly_one_through(memory_queue):
    for round_ in range(ROUNDS):
        key = f"product-{round_}"
        outcomes = race(*[partial(jobs.add.enqueue, 1, 2, key=key, on_conflict="raise")] * 8)

        created = [value for kind, value in outcomes if kind == "ok"]
        refused = [value for kind, value in outcomes if kind == "raised"]
        assert len(created) == 1, outcomes
        assert len(refused) == 7
        assert all(isinstance(exc, DuplicateJob) for exc in refused), refused
        assert {exc.existing.pk for exc in refused} == {created[0].pk}
        assert JobRecord.objects.filter(key=key).count() == 1
    assert len(memory_queue.queued) == ROUNDS


def test_a_finished_key_can_be_enqueued_again_while_others_race_for_it(memory_queue):
    first = jobs.add.enqueue(1, 2, key="k")
    assert start(first, host="w").complete(3)

    outcomes = race(*[partial(jobs.add.enqueue, 1, 2, key="k")] * 8)

    assert [kind for kind, _ in outcomes] == ["ok"] * 8, outcomes
    [second] = JobRecord.objects.unfinished().filter(key="k")
    assert second.pk != first.pk
    assert {record.pk for _, record in outcomes} == {second.pk}
    assert JobRecord.for_key(jobs.add, "k") == second


# -- transitions: exactly one winner -----------------------------------------------------


def _running_job():
    record = jobs.add.enqueue(1, 2)
    start(record, host="worker")
    return record


def _stalled_job():
    record = _running_job()
    # Its heartbeat is long gone: the stall sweep may close it while the worker finishes.
    JobRecord.objects.filter(pk=record.pk).update(stale_after=record.started_at.replace(year=2000))
    return fresh(record)


FINISHES = {
    "complete": (lambda r: r.complete({"sum": 3}), Status.COMPLETED),
    "fail": (lambda r: r.fail("boom"), Status.FAILED),
    "fail_lost": (lambda r: r.fail_lost(), Status.FAILED),
    "mark_cancelled": (lambda r: r.mark_cancelled(), Status.CANCELLED),
}


@pytest.mark.parametrize(
    ("make", "first", "second"),
    [
        (_running_job, "complete", "fail"),
        (_running_job, "mark_cancelled", "complete"),
        (_stalled_job, "complete", "fail_lost"),  # worker finishes as the sweep fires
    ],
)
def test_racing_terminal_transitions_have_exactly_one_winner(
    memory_queue, signals_sent, make, first, second
):
    for _ in range(ROUNDS):
        record = make()
        signals_sent.clear()
        a, b = fresh(record), fresh(record)
        (do_first, first_status), (do_second, second_status) = FINISHES[first], FINISHES[second]

        outcomes = race(partial(do_first, a), partial(do_second, b))

        assert [kind for kind, _ in outcomes] == ["ok", "ok"], outcomes
        won = [value for _, value in outcomes]
        assert sorted(won) == [False, True], won
        winner, status = (first, first_status) if won[0] else (second, second_status)
        stored = fresh(record)
        assert stored.status == status
        assert stored.finished_at is not None
        if winner == "complete":
            assert (stored.result, stored.error, stored.progress) == ({"sum": 3}, "", 1.0)
        else:
            assert stored.result is None
        # Whoever listens for the end (batches, the socket) hears it exactly once.
        assert signals_sent == [("finished", record.pk, status)]


def test_two_workers_claiming_one_delivery_exactly_one_runs_it(memory_queue, signals_sent):
    for _ in range(ROUNDS):
        record = jobs.add.enqueue(1, 2)
        signals_sent.clear()
        claim = partial(JobRecord.objects.claim, record.pk)

        outcomes = race(*[partial(claim, host=f"host-{pid}", pid=pid) for pid in range(100, 104)])

        won = [value is not None for _, value in outcomes]
        assert won.count(True) == 1, outcomes
        winner_pid = 100 + won.index(True)
        stored = fresh(record)
        assert stored.status == Status.RUNNING
        assert (stored.worker_pid, stored.worker_host) == (winner_pid, f"host-{winner_pid}")
        assert stored.attempts == 1
        assert signals_sent == [("started", record.pk, Status.RUNNING)]


# -- cancel racing the worker's claim ----------------------------------------------------------


def test_cancel_racing_claim_ends_in_one_consistent_state(memory_queue):
    for _ in range(ROUNDS):
        record = jobs.add.enqueue(1, 2)
        user = fresh(record)

        outcomes = race(
            partial(JobRecord.objects.claim, record.pk, host="worker", pid=7), user.request_cancel
        )

        assert [kind for kind, _ in outcomes] == ["ok", "ok"], outcomes
        (_, worker), (_, cancelled) = outcomes
        claimed = worker is not None

        assert cancelled is True  # a pending or freshly running job is always cancellable
        stored = fresh(record)
        assert stored.cancel_requested_at is not None
        if claimed:
            assert stored.status == Status.RUNNING
            assert (stored.worker_pid, stored.attempts) == (7, 1)
            assert stored.finished_at is None
            # The worker learns of the cancel at its next checkpoint, and stops there.
            progress = Progress(worker, throttle=0)
            with pytest.raises(JobCancelled):
                progress.checkpoint()
        else:
            assert stored.status == Status.CANCELLED
            assert (stored.worker_pid, stored.attempts, stored.started_at) == (None, 0, None)
            # A delivery that arrives later is dropped: the job never runs.
            assert run_job(str(record.pk)) is None
            assert fresh(record).status == Status.CANCELLED
            assert fresh(record).started_at is None


# -- the dashboard's counts: sweepers folding while workers end jobs -----------------------


def test_two_sweepers_counting_while_two_workers_end_jobs_count_every_end_once(memory_queue):
    per_worker = 150
    running = [_running_job() for _ in range(2 * per_worker)]
    workers_done = [threading.Event(), threading.Event()]

    def worker(records, outcome, done):
        for record in records:
            assert record.complete() if outcome == "completed" else record.fail("boom")
        done.set()

    def sweeper():
        passes = 0
        for passes in range(1, 10_001):  # until both workers are done
            count_ends(spans=2)
            if all(done.is_set() for done in workers_done):
                return passes
        raise AssertionError("the workers did not finish")

    outcomes = race(
        partial(worker, running[:per_worker], "completed", workers_done[0]),
        partial(worker, running[per_worker:], "failed", workers_done[1]),
        sweeper,
        sweeper,
    )

    assert [kind for kind, _ in outcomes] == ["ok"] * 4, outcomes
    counted_while_running = JobMinute.objects.aggregate(Sum("completed"), Sum("failed"))
    assert sum(n or 0 for n in counted_while_running.values()) > 0  # they counted meanwhile
    count_every_end()
    assert JobMinute.objects.aggregate(Sum("completed"), Sum("failed")) == {
        "completed__sum": per_worker,
        "failed__sum": per_worker,
    }


def test_an_end_not_yet_committed_is_counted_once_it_commits_not_before_nor_twice(
    memory_queue,
):
    earlier, record = _running_job(), _running_job()
    assert earlier.complete()
    count_ends()  # leaves a mark after the earlier end, before the slow one begins
    ended, release = threading.Event(), threading.Event()

    def slow_end():
        with transaction.atomic():  # the end, then a slow commit
            assert fresh(record).complete()
            ended.set()
            assert release.wait(10)
        return fresh(record).finished_at

    def sweeper():
        assert ended.wait(10)
        assert fresh(record).finished_at is None  # stamped, not committed
        for _pass in range(5):
            count_ends()
        counted = JobMinute.objects.aggregate(n=Sum("completed"))["n"]
        reached = counted_before()
        release.set()
        return counted, reached

    (kind_end, finished_at), (kind_sweep, swept) = race(slow_end, sweeper)
    assert (kind_end, kind_sweep) == ("ok", "ok"), (finished_at, swept)
    counted, reached = swept
    assert counted == 1  # the earlier end, counted meanwhile
    assert fresh(earlier).finished_at < reached <= finished_at  # and not past the slow one
    count_every_end()
    count_every_end()
    assert JobMinute.objects.aggregate(n=Sum("completed"))["n"] == 2


# -- the recovery sweep: any number of sweepers, one outcome per job ------------------------


def _lost_jobs(n, max_attempts):
    records = [jobs.Flaky.enqueue(succeed_on=9) for _ in range(n)]
    JobRecord.objects.filter(pk__in=[r.pk for r in records]).update(max_attempts=max_attempts)
    for record in records:
        assert JobRecord.objects.claim(record.pk, host="lost", pid=1) is not None
    JobRecord.objects.filter(pk__in=[r.pk for r in records]).update(
        stale_after=records[0].created_at.replace(year=2000)
    )
    return records


@pytest.mark.parametrize("max_attempts", [1, 3], ids=["no-attempt-left", "attempts-left"])
def test_four_sweepers_at_once_close_or_rescue_each_lost_job_once(memory_queue, max_attempts):
    from django_jobprogress.recovery import sweep

    records = _lost_jobs(20, max_attempts)
    memory_queue.clear()

    reports = [value for _, value in race(*[sweep] * 4)]

    rescued = sum(r.rescued for r in reports)
    failed = sum(r.failed_lost for r in reports)
    if max_attempts == 1:
        assert (rescued, failed) == (0, 20)
        assert memory_queue.queued == []
    else:
        assert (rescued, failed) == (20, 0)
        assert sorted(memory_queue.queued) == sorted(str(r.pk) for r in records)  # once each
    assert {fresh(r).attempts for r in records} == {1}


def test_the_sweep_and_a_redelivery_racing_for_a_lost_job_give_one_outcome(memory_queue):
    for _ in range(ROUNDS):
        [record] = _lost_jobs(1, 3)
        memory_queue.clear()
        sweeper_view, worker_view = fresh(record), fresh(record)

        outcomes = race(
            partial(sweeper_view.recover_lost),
            partial(JobRecord.objects.claim, worker_view.pk, host="new", pid=2),
        )

        rescued, retaken = outcomes[0][1], outcomes[1][1] is not None
        assert [kind for kind, _ in outcomes] == ["ok", "ok"], outcomes
        stored = fresh(record)
        if rescued:  # the sweep won: the redelivery found the row pending and claimed it
            assert (stored.status, stored.attempts, stored.worker_host) in {
                ("running", 2, "new"),
                ("pending", 1, ""),
            }
        else:  # the redelivery retook it first: the sweep's guarded rescue lost
            assert retaken and (stored.status, stored.attempts) == ("running", 2)
        assert stored.attempts <= stored.max_attempts


def test_four_schedulers_at_once_start_each_slot_once(memory_queue, settings):
    schedules = {"tick": {"task": "tests.jobs.add", "every": 60, "args": [1, 2]}}
    settings.JOBPROGRESS = {**settings.JOBPROGRESS, "SCHEDULES": schedules}
    scheduler.sync()
    slot = timezone.now()
    for round_number in range(ROUNDS):
        slot += timedelta(seconds=60)
        Schedule.objects.filter(name="tick").update(next_run_at=slot)
        JobRecord.objects.filter(key="tick").update(status=Status.COMPLETED)  # no overlap

        outcomes = race(*[partial(scheduler.run_due, slot) for _ in range(4)])

        assert [kind for kind, _ in outcomes] == ["ok"] * 4, outcomes
        started = [name for _, report in outcomes for name in report.started]
        assert started == ["tick"], (round_number, outcomes)
        assert JobRecord.objects.filter(key="tick", scheduled_for=slot).count() == 1
    assert JobRecord.objects.filter(key="tick").count() == ROUNDS


# -- a batch member's end: one statement ------------------------------------------------


def test_a_members_end_is_one_statement_and_the_last_one_enqueues_the_callbacks(memory_queue):
    with Batch.open("blast", on_complete="tests.jobs.batch_callback") as batch:
        members = [jobs.add.enqueue(n, 1, batch=batch) for n in (1, 2)]
    first, last = (start(member, host="worker") for member in members)

    with CaptureQueriesContext(connection) as statements:
        assert first.complete(2)
    assert len(statements) == 1, [q["sql"] for q in statements]  # the end and the count
    counted = Batch.objects.get(pk=batch.pk)
    assert (counted.succeeded, counted.finished_at) == (1, None)
    assert fresh(first).finished_at == first.finished_at  # the stamp, read back

    assert last.complete(3)
    done = Batch.objects.get(pk=batch.pk)
    assert (done.status, done.succeeded) == ("completed", 2)
    assert done.on_complete_enqueued_at is not None
    assert JobRecord.objects.filter(task_name="tests.jobs.batch_callback").count() == 1


def test_a_failure_after_the_last_members_end_leaves_its_callbacks_to_the_sweep(
    memory_queue, monkeypatch
):
    with Batch.open("blast", on_complete="tests.jobs.batch_callback") as batch:
        member = jobs.add.enqueue(1, 1, batch=batch)
    last = start(member, host="worker")

    def connection_lost(self, now):
        raise OperationalError("the connection went away after the end committed")

    monkeypatch.setattr(Batch, "_finished", connection_lost)
    assert last.complete(2)  # the end itself committed, and says so
    monkeypatch.undo()
    assert fresh(last).status == Status.COMPLETED
    ended = Batch.objects.get(pk=batch.pk)
    assert ended.status == "completed" and ended.on_complete_enqueued_at is None

    from django_jobprogress.recovery import sweep

    later = ended.finished_at + timedelta(seconds=conf.get("REDELIVER_AFTER") + 1)
    assert sweep(later).callbacks == 1
    assert JobRecord.objects.filter(task_name="tests.jobs.batch_callback").count() == 1


def test_the_count_yields_to_a_lock_it_would_wait_on_and_counts_at_the_next_pass(memory_queue):
    record = _running_job()
    assert record.complete()
    locked, release = threading.Event(), threading.Event()

    def migration():
        with transaction.atomic(), connection.cursor() as cursor:
            table = connection.ops.quote_name(EndsCounted._meta.db_table)
            cursor.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
            locked.set()
            assert release.wait(10)

    def sweeper():
        assert locked.wait(10)
        try:
            return count_ends(), count_ends()  # each waits 200 ms, then gives up
        finally:
            release.set()

    (kind_lock, _), (kind_sweep, passes) = race(migration, sweeper)
    assert (kind_lock, kind_sweep) == ("ok", "ok"), passes
    assert passes == (0, 0)
    assert counted_before() is None  # nothing moved
    count_every_end()
    assert JobMinute.objects.aggregate(n=Sum("completed"))["n"] == 1
