"""One recurring schedule, two real clusters on one database (each with its own
sweeper, so both race for every slot): one run per slot, never two unfinished runs,
a run longer than its interval makes the next slots skip, and a run killed with its
worker is closed by the sweep and the next slot runs."""

import itertools

import pytest

from django_jobprogress import scheduler
from django_jobprogress.models import WORKER_LOST, JobRecord
from tests.faults.conftest import wait_until
from tests.faults.jobs import runs

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

SLOTS = 6


@pytest.fixture
def two_clusters(clusters, settings, tmp_path):
    """``two_clusters(schedule)``: sync ``{"tick": schedule}`` and start two clusters,
    named apart so that each elects its own sweeper."""

    def start(schedule):
        schedules = {"tick": schedule}
        settings.JOBPROGRESS = {**settings.JOBPROGRESS, "SCHEDULES": schedules}
        scheduler.sync()
        run_id = settings.RUN_ID
        return [
            clusters(side, jobprogress={"SCHEDULES": schedules}, name=f"sched-{side}-{run_id}")
            for side in ("a", "b")
        ]

    return start


def tick_runs():
    return list(JobRecord.objects.filter(key="tick").order_by("scheduled_for"))


def finished_runs(count):
    return (
        JobRecord.objects.filter(
            key="tick", status__in=["completed", "failed", "cancelled"]
        ).count()
        >= count
    )


def assert_never_overlapping(records):
    """Each run was created after the one before it finished: never two unfinished."""
    for before, after in itertools.pairwise(records):
        assert before.finished_at is not None, before
        assert after.created_at >= before.finished_at, (before, after)


def test_two_clusters_start_exactly_one_run_per_slot(two_clusters, log, report):
    both = two_clusters({"task": "tests.faults.jobs.quick", "every": 1, "args": [log]})
    wait_until(both, lambda: finished_runs(SLOTS), f"{SLOTS} runs of the schedule", timeout=60)
    for cluster in both:
        cluster.stop()

    records = tick_runs()
    slots = [r.scheduled_for for r in records]
    assert len(slots) == len(set(slots)), slots  # no slot ran twice
    steps = {(b - a).total_seconds() for a, b in itertools.pairwise(slots)}
    assert all(step >= 1 and step % 1 == 0 for step in steps), steps  # on the 1 s grid
    assert_never_overlapping([r for r in records if r.is_finished])
    assert all(count == 1 for count in runs(log).values())
    report([r for r in records if r.is_finished], log)


def test_a_run_longer_than_its_interval_makes_the_next_slots_skip(two_clusters, log, report):
    # Each run takes 2.5 s; a slot comes every second.
    both = two_clusters(
        {"task": "tests.faults.jobs.quick", "every": 1, "args": [log], "kwargs": {"seconds": 2.5}}
    )
    wait_until(both, lambda: finished_runs(3), "3 long runs", timeout=60)
    for cluster in both:
        cluster.stop()

    records = [r for r in tick_runs() if r.is_finished]
    assert_never_overlapping(records)
    skipped = sum(
        cluster.log_path.read_text().count("skipped, its previous run") for cluster in both
    )
    assert skipped >= 2 * (len(records) - 1), skipped  # about 2 slots skipped per run
    report(records, log, expected=["completed"] * len(records))


def test_a_run_killed_with_its_worker_is_closed_by_the_sweep_and_the_next_slot_runs(
    two_clusters, log, report
):
    both = two_clusters(
        {"task": "tests.faults.jobs.killed_on_first_run", "every": 1, "args": [log]}
    )
    wait_until(
        both,
        lambda: JobRecord.objects.filter(key="tick", status="completed").exists(),
        "a run after the killed one to complete",
        timeout=60,
    )
    for cluster in both:
        cluster.stop()

    records = [r for r in tick_runs() if r.is_finished]
    killed, after = records[0], records[1]
    assert (killed.status, killed.error, killed.attempts) == ("failed", WORKER_LOST, 1)
    assert (after.status, after.scheduled_for > killed.scheduled_for) == ("completed", True)
    assert_never_overlapping(records)
    # Recovery: from the killed run's start to the next run's start.
    report(records, log, recovery_s=(after.created_at - killed.started_at).total_seconds())
