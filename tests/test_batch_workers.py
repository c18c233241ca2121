"""A 2,000-job batch run by two real qcluster processes: callbacks exactly once.

Two ``qcluster`` subprocesses (two workers each) share django-q2's ORM broker
on the live PostgreSQL test database, so four workers in two process trees
finish members of one batch at the same time, while this process cancels some
members. The batch must finish once, enqueue each due callback exactly once,
and its counters must equal the members' real final statuses, counted from the
rows. The scenario runs five times on the same clusters.

Nothing sleeps blindly: every wait polls the database until a condition holds
or a deadline passes (``tests.workers.wait_on_clusters``). The clusters run
with ``tests/batch_worker_settings.py``; a run takes 15-35 s on two shared cores.
"""

import contextlib
import logging
import time
from collections import Counter
from functools import partial

import pytest
from django.conf import settings as django_settings
from django.db import connection
from django.db.models import Count, Max

from django_jobprogress import progress_task
from django_jobprogress.models import Batch, JobRecord
from tests import jobs
from tests.workers import (
    DJANGO_Q2,
    Cluster,
    qcluster_env,
    require_postgres,
    row,
    wait_on_clusters,
)

if connection.vendor != "postgresql":
    pytest.skip("PostgreSQL-only: run with JOBPROGRESS_TEST_DB=postgres", allow_module_level=True)

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

Status = JobRecord.Status
CLUSTERS = 2
MEMBERS = 2000
RUNNING_CANCELS = 2  # members cancelled while a worker runs them (stop at a checkpoint)
# A django-q2 queue no cluster serves: members enqueued there stay PENDING until
# this test cancels them, so "cancelled while pending" is certain, not a race.
PARKED = f"parked-{django_settings.RUN_ID}"
# Also in tests/batch_worker_settings.py, which must not be imported here: it changes
# the DATABASES dict of tests.settings, which is this process's too.
SYNCHRONOUS_COMMIT_OFF = "-c synchronous_commit=off"
BATCH_DEADLINE = 180.0  # seconds for one batch to finish


# -- the callbacks and the one member task of this module (found by the workers) --------


def _report(kind, batch, run):
    return {"kind": kind, "batch": batch["id"], "status": batch["status"], "run": run}


@progress_task
def on_complete_callback(job, batch, run=0):
    return _report("complete", batch, run)


@progress_task
def on_success_callback(job, batch, run=0):
    return _report("success", batch, run)


@progress_task
def on_failure_callback(job, batch, run=0):
    return _report("failure", batch, run)


CALLBACKS = {
    "on_complete": on_complete_callback,
    "on_success": on_success_callback,
    "on_failure": on_failure_callback,
}


@progress_task
def wait_for_cancel(job, limit=30.0):
    """Runs until cancelled (checkpoint every 20 ms), at most ``limit`` seconds."""
    job.progress.update(0.1)
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        job.checkpoint()
        time.sleep(0.02)
    return "never cancelled"


def member_kind(index):
    """What member ``index`` does: ``add`` succeeds, ``explode`` raises, ``parked``
    waits in an unserved queue until cancelled."""
    if index % 20 == 7:
        return "parked"
    if index % 10 == 3:
        return "explode"
    return "add"


# -- the clusters --------------------------------------------------------------------------


@pytest.fixture(scope="session", autouse=True)
def _require_postgres():
    """Runs before the test database is set up, so a missing server skips cleanly."""
    require_postgres()


@pytest.fixture(scope="module")
def clusters(django_db_setup, tmp_path_factory):
    """Two qcluster processes on the ORM broker of the live test database."""
    # tests.settings tuned for throughput (persistent connections, ...): see there.
    env = qcluster_env("tests.batch_worker_settings")  # the ORM broker, shared by both
    logs = tmp_path_factory.mktemp("qclusters")
    with contextlib.ExitStack() as running:
        yield [
            running.enter_context(Cluster(f"orm #{number}", env, logs / f"qcluster-{number}.log"))
            for number in range(1, CLUSTERS + 1)
        ]


@pytest.fixture(autouse=True)
def enqueue_to_clusters(clusters, settings, monkeypatch):
    """This process enqueues through django-q2 onto the clusters' ORM broker.

    django-q2's ORM broker closes "old" connections before each enqueue, so with the
    test settings' ``CONN_MAX_AGE = 0`` every enqueue would connect twice (~20 ms);
    this test keeps its one connection instead (it starts no threads), with the
    clusters' ``synchronous_commit = off`` (see ``tests/batch_worker_settings.py``).
    """
    from django_q.conf import Conf

    settings.JOBPROGRESS = {**settings.JOBPROGRESS, "QUEUE_ADAPTER": DJANGO_Q2}
    monkeypatch.setattr(Conf, "ORM", "default")
    monkeypatch.setattr(Conf, "REDIS", None)
    monkeypatch.setitem(connection.settings_dict, "CONN_MAX_AGE", None)
    options = {**connection.settings_dict["OPTIONS"], "options": SYNCHRONOUS_COMMIT_OFF}
    monkeypatch.setitem(connection.settings_dict, "OPTIONS", options)
    connection.close()  # the next connection is persistent
    for cluster in clusters:
        cluster.assert_alive()
    # django-q2 logs one INFO line per enqueue: 2,000 lines in a failure's report.
    q_logger = logging.getLogger("django-q")
    level = q_logger.level
    q_logger.setLevel(logging.WARNING)
    yield clusters
    q_logger.setLevel(level)
    connection.close()  # and the one after the test is not


# Four workers share 2,000 jobs: a minute per wait, and 30 log lines of each cluster.
wait = partial(wait_on_clusters, timeout=60.0, log_lines=30)


def member_counts(batch):
    rows = JobRecord.objects.filter(batch=batch).values("status").annotate(n=Count("pk"))
    return Counter({r["status"]: r["n"] for r in rows})


def callback_records(batch):
    """Callback kind -> the callback jobs enqueued for ``batch`` (its snapshot is arg 0)."""
    return {
        kind: list(
            JobRecord.objects.filter(task_name=task.get_task_name(), args__0__id=str(batch.pk))
        )
        for kind, task in CALLBACKS.items()
    }


def batch_state(batch):
    return (
        Batch.objects.filter(pk=batch.pk)
        .values("status", "total", "succeeded", "failed", "cancelled", "finished_at")
        .first(),
        dict(member_counts(batch)),
    )


# -- the test ------------------------------------------------------------------------------


def enqueue_members(batch, bulk):
    """The members past the two stoppable ones, one by one or with ``enqueue_many``
    (one list per task and queue); returns the parked ones."""
    indexes = {"add": [], "explode": [], "parked": []}
    for index in range(MEMBERS - RUNNING_CANCELS):
        indexes[member_kind(index)].append(index)
    if bulk:
        jobs.add.enqueue_many([(i, 1) for i in indexes["add"]], batch=batch)
        jobs.Explode.enqueue_many([(f"member {i}",) for i in indexes["explode"]], batch=batch)
        return jobs.add.enqueue_many([(i, 1) for i in indexes["parked"]], batch=batch, queue=PARKED)
    parked = []
    for index in range(MEMBERS - RUNNING_CANCELS):
        kind = member_kind(index)
        if kind == "add":
            jobs.add.enqueue(index, 1, batch=batch)
        elif kind == "explode":
            jobs.Explode.enqueue(f"member {index}", batch=batch)
        else:
            parked.append(jobs.add.enqueue(index, 1, batch=batch, queue=PARKED))
    return parked


@pytest.mark.parametrize(
    ("run", "allow_failures", "bulk"),
    [
        (1, False, False),
        (2, True, False),
        (3, False, False),
        (4, True, False),
        (5, False, False),
        # The same, with the members enqueued in bulk.
        (6, True, True),
        (7, False, True),
    ],
)
def test_two_clusters_finish_a_2000_job_batch_with_each_callback_once(
    clusters, run, allow_failures, bulk
):
    from django_q.models import OrmQ

    started = time.monotonic()
    kinds = Counter(member_kind(i) for i in range(MEMBERS - RUNNING_CANCELS))
    with Batch.open(
        f"run {run}",
        allow_failures=allow_failures,
        callback_kwargs={"run": run},
        **CALLBACKS,
    ) as batch:
        # Two members that run until cancelled: cancel them once a worker runs them.
        stoppable = [wait_for_cancel.enqueue(batch=batch) for _ in range(RUNNING_CANCELS)]
        for member in stoppable:
            wait(
                clusters,
                lambda m=member: JobRecord.objects.filter(pk=m.pk, status=Status.RUNNING).exists(),
                what="a worker to start the member that waits for its cancel",
                state=lambda m=member: row(m),
            )
            assert member.request_cancel() is True
        parked = enqueue_members(batch, bulk)
        assert Batch.objects.get(pk=batch.pk).status == Batch.Status.OPEN
    enqueued = time.monotonic()
    assert Batch.objects.get(pk=batch.pk).sealed

    # Cancel the parked members while the workers are still finishing the others.
    for member in parked:
        assert member.request_cancel() is True

    wait(
        clusters,
        lambda: Batch.objects.filter(pk=batch.pk, finished_at__isnull=False).exists(),
        what=f"batch {run} to finish",
        state=lambda: batch_state(batch),
        timeout=BATCH_DEADLINE,
    )
    finished = time.monotonic()
    done = Batch.objects.get(pk=batch.pk)

    # Which callbacks are due, by the batch's rules.
    expected_status = Batch.Status.COMPLETED if allow_failures else Batch.Status.FAILED
    due = {"on_complete": True, "on_success": allow_failures, "on_failure": True}

    wait(
        clusters,
        lambda: all(
            len(records) == int(due[kind]) and all(r.is_finished for r in records)
            for kind, records in callback_records(batch).items()
        ),
        what="the callbacks to run",
        state=lambda: {k: [r.status for r in v] for k, v in callback_records(batch).items()},
    )
    # Quiescent before the next run: every delivery on the served queue is acknowledged.
    wait(
        clusters,
        lambda: not OrmQ.objects.filter(key=django_settings.Q_CLUSTER["name"]).exists(),
        what="django-q2 to acknowledge every delivery",
        state=lambda: OrmQ.objects.count(),
    )

    # Every member finished, the way it was meant to.
    counts = member_counts(batch)
    assert sum(counts.values()) == MEMBERS
    assert counts == Counter(
        {
            Status.COMPLETED: kinds["add"],
            Status.FAILED: kinds["explode"],
            Status.CANCELLED: kinds["parked"] + RUNNING_CANCELS,
        }
    ), counts
    # The counters equal the members' real final statuses.
    assert (done.total, done.succeeded, done.failed, done.cancelled) == (
        MEMBERS,
        counts[Status.COMPLETED],
        counts[Status.FAILED],
        counts[Status.CANCELLED],
    )
    assert done.status == expected_status
    assert done.sealed and done.cancel_requested_at is None
    last_member = JobRecord.objects.filter(batch=batch).aggregate(last=Max("finished_at"))["last"]
    assert done.finished_at >= last_member
    # Nothing ran twice; parked members never ran at all.
    members = JobRecord.objects.filter(batch=batch)
    assert not members.filter(attempts__gt=1).exists()
    assert set(
        members.filter(queue=PARKED).values_list("status", "attempts", "started_at").distinct()
    ) == {(Status.CANCELLED, 0, None)}
    stopped = members.filter(pk__in=[m.pk for m in stoppable])
    assert {(m.status, m.attempts) for m in stopped} == {(Status.CANCELLED, 1)}

    # Each due callback was enqueued exactly once, ran, and saw the final batch.
    records = callback_records(batch)
    # Read again: on PostgreSQL the batch's end commits with its last member's, and its
    # callbacks are claimed just after (or by the sweep, if that process died).
    done = Batch.objects.get(pk=batch.pk)
    for kind, is_due in due.items():
        enqueued_at = getattr(done, f"{kind}_enqueued_at")
        if not is_due:
            assert records[kind] == [], kind
            assert enqueued_at is None, kind
            continue
        assert len(records[kind]) == 1, (kind, records[kind])
        [callback] = records[kind]
        assert enqueued_at is not None and enqueued_at >= last_member, kind
        assert callback.batch_id is None  # a callback is not a member of its batch
        assert callback.status == Status.COMPLETED, (kind, callback.error)
        assert callback.result == {
            "kind": kind.removeprefix("on_"),
            "batch": str(batch.pk),
            "status": expected_status,
            "run": run,
        }
        snapshot = callback.args[0]
        assert (snapshot["pending"], snapshot["running"]) == (0, 0)
        assert (snapshot["succeeded"], snapshot["failed"], snapshot["cancelled"]) == (
            done.succeeded,
            done.failed,
            done.cancelled,
        )
        assert snapshot["progress"] == 1.0
    # No other job of this run is a callback of this batch.
    assert JobRecord.objects.filter(args__0__id=str(batch.pk)).count() == sum(due.values())

    print(
        f"\nrun {run}: {MEMBERS} members enqueued in {enqueued - started:.1f} s, "
        f"batch finished after {finished - started:.1f} s "
        f"({MEMBERS / (finished - started):.0f} jobs/s overall)"
    )
