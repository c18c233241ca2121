"""Recurring schedules in one process: the sync from settings, one run per slot,
no overlap with an unfinished run, missed slots giving one run, and retries.
(Two real clusters sharing one schedule are in ``tests/test_schedule_clusters.py``.)"""

import logging
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from django.core.management import call_command
from django.utils import timezone

from django_jobprogress import scheduler
from django_jobprogress.models import JobRecord, Schedule
from tests.factories import start

pytestmark = pytest.mark.django_db

EVERY_MINUTE = {"task": "tests.jobs.add", "every": 60, "args": [2, 3]}


@pytest.fixture
def schedules(settings, memory_queue):
    """``schedules(**entries)``: declare ``entries`` in settings and sync them."""

    def declare(**entries):
        settings.JOBPROGRESS = {**settings.JOBPROGRESS, "SCHEDULES": entries}
        return scheduler.sync()

    return declare


def due(name, now):
    """Make schedule ``name`` due at ``now``; return the slot."""
    Schedule.objects.filter(name=name).update(next_run_at=now)
    return now


def runs(name="tick"):
    return list(JobRecord.objects.filter(key=name).order_by("created_at"))


def test_a_new_schedule_waits_for_its_first_slot(schedules):
    before = timezone.now()
    report = schedules(tick=EVERY_MINUTE)
    assert report.created == ["tick"]
    stored = Schedule.objects.get(name="tick")
    assert (
        before + timedelta(seconds=60)
        <= stored.next_run_at
        <= timezone.now() + timedelta(seconds=60)
    )
    assert scheduler.run_due().started == [] and runs() == []


def test_a_due_slot_starts_one_tracked_run_keyed_by_the_schedule_name(
    schedules, memory_queue, django_capture_on_commit_callbacks
):
    schedules(tick={**EVERY_MINUTE, "queue": "mail", "max_attempts": 3})
    now = timezone.now()
    slot = due("tick", now)

    with django_capture_on_commit_callbacks(execute=True):
        report = scheduler.run_due(now)
        again = scheduler.run_due(now)  # the slot is taken: nothing more

    assert (report.started, again.started) == (["tick"], [])
    [run] = runs()
    assert (run.task_name, run.key, run.args, run.queue) == (
        "tests.jobs.add",
        "tick",
        [2, 3],
        "mail",
    )
    assert (run.scheduled_for, run.max_attempts, run.status) == (slot, 3, "pending")
    assert memory_queue.queued == [str(run.pk)]  # handed off on commit
    assert Schedule.objects.get(name="tick").next_run_at == slot + timedelta(seconds=60)
    assert JobRecord.for_key("tests.jobs.add", "tick") == run

    memory_queue.run_pending()
    run.refresh_from_db()
    assert (run.status, run.result) == ("completed", 5)


def test_missed_slots_give_one_run_not_a_storm(schedules):
    schedules(tick=EVERY_MINUTE)
    slot = due("tick", timezone.now() - timedelta(hours=3))  # no cluster for 3 hours
    now = timezone.now()

    assert scheduler.run_due(now).started == ["tick"]
    assert scheduler.run_due(now).started == []

    assert [r.scheduled_for for r in runs()] == [slot]
    following = Schedule.objects.get(name="tick").next_run_at
    assert now < following <= now + timedelta(seconds=60)
    assert (following - slot).total_seconds() % 60 == 0  # still on the schedule's grid


def test_a_slot_that_finds_the_last_run_unfinished_is_skipped_and_logged(schedules, caplog):
    schedules(tick=EVERY_MINUTE)
    now = timezone.now()
    due("tick", now)
    scheduler.run_due(now)
    [first] = runs()
    start(first)  # still running when the next slot comes

    later = due("tick", now + timedelta(seconds=60))
    with caplog.at_level(logging.WARNING, logger="django_jobprogress.scheduler"):
        report = scheduler.run_due(later)

    assert (report.started, report.skipped) == ([], ["tick"])
    assert runs() == [first]
    assert (
        f"schedule 'tick': slot {later.isoformat()} skipped, its previous run {first.pk} "
        "is still running" in caplog.text
    )
    assert Schedule.objects.get(name="tick").next_run_at > later  # the slot is spent

    first.complete()
    after = due("tick", later + timedelta(seconds=60))
    assert scheduler.run_due(after).started == ["tick"]
    assert [r.scheduled_for for r in runs()] == [now, after]


def test_a_cron_schedule_runs_at_its_wall_clock_slot(schedules):
    schedules(
        nightly={
            "task": "tests.jobs.add",
            "cron": "0 3 * * *",
            "timezone": "Europe/Paris",
            "args": [1, 1],
        }
    )
    stored = Schedule.objects.get(name="nightly")
    paris = timezone.localtime(stored.next_run_at, timezone=ZoneInfo("Europe/Paris"))
    assert (paris.hour, paris.minute) == (3, 0)
    assert scheduler.run_due(stored.next_run_at).started == ["nightly"]
    assert runs("nightly")[0].scheduled_for == stored.next_run_at


def test_a_failed_run_retries_on_the_same_record_up_to_the_schedule_s_max_attempts(
    schedules, memory_queue, django_capture_on_commit_callbacks
):
    # Explode always raises, and asks for one attempt itself: the schedule gives it three.
    schedules(flaky={"task": "tests.jobs.Explode", "every": 60, "max_attempts": 3})
    now = timezone.now()
    due("flaky", now)
    with django_capture_on_commit_callbacks(execute=True):
        scheduler.run_due(now)
    memory_queue.run_pending()
    [run] = runs("flaky")
    assert (run.status, run.attempts, run.error) == ("failed", 3, "ValueError: boom")


def test_sync_updates_changed_schedules_and_removes_those_gone_from_settings(schedules):
    schedules(tick=EVERY_MINUTE, old={"task": "tests.jobs.add", "every": 3600})
    tick = Schedule.objects.get(name="tick")

    # Arguments change: the next slot stays. Timing changes: it is counted again.
    report = schedules(
        tick={**EVERY_MINUTE, "args": [7, 8]}, new={"task": "tests.jobs.add", "every": 5}
    )
    assert (report.created, report.updated, report.removed) == (["new"], ["tick"], ["old"])
    stored = Schedule.objects.get(name="tick")
    assert (stored.spec.args, stored.next_run_at) == ([7, 8], tick.next_run_at)
    assert sorted(Schedule.objects.values_list("name", flat=True)) == ["new", "tick"]

    report = schedules(tick={**EVERY_MINUTE, "args": [7, 8], "every": 120})
    assert (report.updated, report.removed) == (["tick"], ["new"])
    assert Schedule.objects.get(name="tick").next_run_at > tick.next_run_at

    assert not schedules(tick={**EVERY_MINUTE, "args": [7, 8], "every": 120})  # no change


def test_a_dry_run_changes_nothing(schedules, settings):
    schedules(tick=EVERY_MINUTE)
    settings.JOBPROGRESS = {**settings.JOBPROGRESS, "SCHEDULES": {}}
    report = scheduler.sync(dry_run=True)
    assert report.removed == ["tick"]
    assert Schedule.objects.filter(name="tick").exists()


def test_migrate_syncs_the_schedules(settings, memory_queue, capsys):
    settings.JOBPROGRESS = {**settings.JOBPROGRESS, "SCHEDULES": {"tick": EVERY_MINUTE}}
    call_command("migrate", verbosity=1, interactive=False)
    assert Schedule.objects.get(name="tick").task_name == "tests.jobs.add"
    assert "Schedule 'tick' created." in capsys.readouterr().out


def test_a_stored_schedule_whose_task_is_gone_spends_its_slot_and_says_why(schedules, caplog):
    schedules(tick=EVERY_MINUTE)
    Schedule.objects.filter(name="tick").update(
        definition={**Schedule.objects.get(name="tick").definition, "task": "tests.jobs.gone"}
    )
    now = due("tick", timezone.now())
    with caplog.at_level(logging.ERROR, logger="django_jobprogress.scheduler"):
        report = scheduler.run_due(now)
    assert report.failed == ["tick"] and runs() == []
    assert "schedule 'tick': slot" in caplog.text and "tests.jobs.gone" in caplog.text
    assert Schedule.objects.get(name="tick").next_run_at > now


def test_an_enqueue_that_fails_leaves_the_slot_due(schedules, monkeypatch):
    schedules(tick=EVERY_MINUTE)
    now = due("tick", timezone.now())

    def broken(*args, **kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(scheduler, "enqueue_or_find", broken)
    assert scheduler.run_due(now).failed == ["tick"]
    assert Schedule.objects.get(name="tick").next_run_at == now  # rolled back with it
    monkeypatch.undo()
    assert scheduler.run_due(now).started == ["tick"]


@pytest.mark.django_db(transaction=True)  # prune counts the ends, in transactions of its own
def test_the_shipped_prune_task_runs_as_a_schedule(
    schedules, memory_queue, django_capture_on_commit_callbacks
):
    old = timezone.now() - timedelta(days=30)
    JobRecord.objects.create(task_name="tests.jobs.add", status="completed", finished_at=old)
    kept = JobRecord.objects.create(
        task_name="tests.jobs.add", status="completed", finished_at=timezone.now()
    )
    schedules(prune={"task": "django_jobprogress.maintenance.prune_finished", "every": "1d"})
    now = due("prune", timezone.now())

    with django_capture_on_commit_callbacks(execute=True):
        scheduler.run_due(now)
    memory_queue.run_pending()

    [run] = runs("prune")
    assert (run.status, run.result["jobs"]) == (
        "completed",
        {"completed": 1, "failed": 0, "cancelled": 0},
    )
    assert set(JobRecord.objects.values_list("pk", flat=True)) == {kept.pk, run.pk}
