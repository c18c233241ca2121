"""``manage.py prune_jobs``: what it keeps, what it deletes, and what it refuses."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db.models.deletion import Collector
from django.utils import timezone

from django_jobprogress.models import Batch, JobRecord
from django_jobprogress.pruning import prune

# Transactional: prune counts the ends first, and on PostgreSQL a count leaves its mark
# for the next only from a transaction of its own.
pytestmark = pytest.mark.django_db(transaction=True)

Status = JobRecord.Status
OLD = timedelta(days=30)


@pytest.fixture
def make_job():
    def make(status=Status.COMPLETED, age=OLD, **fields):
        finished = timezone.now() - age if status not in JobRecord.UNFINISHED else None
        return JobRecord.objects.create(
            task_name=fields.pop("task_name", "tests.jobs.add"),
            status=status,
            created_at=timezone.now() - age - timedelta(minutes=1),
            finished_at=finished,
            **fields,
        )

    return make


def batch(status, age=OLD):
    finished = timezone.now() - age if status not in Batch.UNFINISHED else None
    return Batch.objects.create(name="b", status=status, sealed=True, finished_at=finished)


def run(*args):
    out = StringIO()
    call_command("prune_jobs", *args, stdout=out)
    return out.getvalue()


def left():
    return set(JobRecord.objects.values_list("pk", flat=True))


def test_old_finished_jobs_go_and_everything_else_stays(make_job):
    gone = [make_job(status) for status in (Status.COMPLETED, Status.FAILED, Status.CANCELLED)]
    kept = [
        make_job(Status.PENDING),  # unfinished, however old
        make_job(Status.RUNNING),
        make_job(age=timedelta(days=1)),  # finished, but recently
        make_job(batch=batch(Batch.Status.RUNNING)),  # its batch still needs it
        make_job(batch=batch(Batch.Status.OPEN)),
    ]

    out = run("--older-than", "7d")

    assert left() == {r.pk for r in kept}
    assert "deleted 1 completed jobs" in out and "deleted 1 failed jobs" in out
    assert not JobRecord.objects.filter(pk__in=[r.pk for r in gone]).exists()


def test_a_finished_batch_goes_with_its_last_member(make_job):
    finished = batch(Batch.Status.COMPLETED)
    member = make_job(batch=finished)
    recent_member = make_job(batch=finished, age=timedelta(hours=1))

    run("--older-than", "7d")
    assert left() == {recent_member.pk}  # the old member went; the batch stays with the other
    assert Batch.objects.filter(pk=finished.pk).exists()

    run("--older-than", "30m")
    assert left() == set()
    assert not Batch.objects.filter(pk=finished.pk).exists()
    assert member.pk not in left()


def test_an_unfinished_batch_is_never_deleted(make_job):
    running = batch(Batch.Status.RUNNING)
    run("--older-than", "1")
    assert Batch.objects.filter(pk=running.pk).exists()


def test_dry_run_counts_and_deletes_nothing(make_job):
    for _ in range(3):
        make_job(Status.FAILED)
    before = left()
    out = run("--older-than", "2w", "--status", "failed", "--dry-run")
    assert "would delete 3 failed jobs" in out
    assert left() == before


def test_default_cutoff_is_prune_after(make_job, settings):
    fresh, stale = make_job(age=timedelta(days=10)), make_job(age=timedelta(days=15))
    run()  # PRUNE_AFTER: 14 days
    assert left() == {fresh.pk}
    settings.JOBPROGRESS = {**settings.JOBPROGRESS, "PRUNE_AFTER": 3600}
    run()
    assert left() == set()
    assert stale.pk not in left()


def test_status_and_task_narrow_what_goes(make_job):
    completed = make_job(Status.COMPLETED)
    failed = make_job(Status.FAILED)
    other_task = make_job(Status.FAILED, task_name="tests.jobs.Explode")
    run("--status", "failed", "--task", "tests.jobs.add")
    assert left() == {completed.pk, other_task.pk}
    assert failed.pk not in left()


def test_deletes_in_chunks_of_the_given_size(make_job):
    for _ in range(5):
        make_job()
    report = prune(timezone.now(), chunk_size=2)
    assert (report.jobs["completed"], report.chunks) == (5, 3)
    assert left() == set()


def test_jobs_keep_djangos_fast_delete_path():
    # Nothing cascades from a job and nobody listens to its deletion: one DELETE a chunk.
    assert Collector(using="default").can_fast_delete(JobRecord.objects.all())


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--older-than", "banana"], "'banana'"),
        (["--older-than=-3d"], "'-3d'"),
        (["--status", "running"], "'running'"),
        (["--chunk-size", "0"], "got 0"),
        (["--time-limit", "0"], "got 0"),
        (["--task", "no.such.Task"], "'no.such.Task'"),
    ],
)
def test_bad_arguments_are_a_command_error_naming_them_and_delete_nothing(make_job, args, named):
    make_job()
    before = left()
    with pytest.raises(CommandError, match=named.replace(".", r"\.")):
        run(*args)
    assert left() == before
