"""``manage.py jobprogress_schedules``: sync, ``--dry-run``, ``--list`` and bad entries."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from django_jobprogress.models import JobRecord, Schedule

pytestmark = pytest.mark.django_db

TICK = {"task": "tests.jobs.add", "every": "10m", "args": [1, 2]}
NIGHTLY = {"task": "tests.jobs.add", "cron": "0 3 * * *", "timezone": "Europe/Paris"}


@pytest.fixture
def declare(settings):
    def set_schedules(**entries):
        settings.JOBPROGRESS = {**settings.JOBPROGRESS, "SCHEDULES": entries}

    return set_schedules


def run(*args):
    out = StringIO()
    call_command("jobprogress_schedules", *args, stdout=out)
    return out.getvalue()


def names():
    return sorted(Schedule.objects.values_list("name", flat=True))


def test_sync_adds_updates_and_removes_and_says_so(declare):
    declare(tick=TICK, nightly=NIGHTLY)
    assert run().splitlines() == [
        "added schedule 'tick'",
        "added schedule 'nightly'",
        "done: 0 schedules unchanged",
    ]
    declare(tick={**TICK, "every": "5m"})
    assert run().splitlines() == [
        "updated schedule 'tick'",
        "removed schedule 'nightly'",
        "done: 0 schedules unchanged",
    ]
    assert names() == ["tick"]
    assert run().splitlines() == ["no change: 1 schedule unchanged"]


def test_dry_run_shows_the_changes_and_makes_none(declare):
    declare(tick=TICK)
    run()
    declare(nightly=NIGHTLY)
    assert run("--dry-run").splitlines() == [
        "would add schedule 'nightly'",
        "would remove schedule 'tick'",
        "done: 0 schedules unchanged",
    ]
    assert names() == ["tick"]


def test_list_shows_each_schedule_with_its_next_and_last_run(declare, settings):
    settings.TIME_ZONE = "Europe/Paris"
    declare(tick=TICK, nightly=NIGHTLY)
    run()
    last = JobRecord.objects.create(task_name="tests.jobs.add", key="tick", status="completed")
    tick = Schedule.objects.get(name="tick")
    nightly = Schedule.objects.get(name="nightly")

    lines = run("--list").splitlines()

    def local(moment):
        return f"{timezone.localtime(moment):%Y-%m-%d %H:%M:%S %Z}"

    assert lines == [
        "nightly: tests.jobs.add, cron 0 3 * * * (Europe/Paris)",
        f"  next run {local(nightly.next_run_at)}; last run never",
        "tick: tests.jobs.add, every 10m",
        f"  next run {local(tick.next_run_at)}; last run completed "
        f"{timezone.localtime(last.created_at):%Y-%m-%d %H:%M:%S} (job {last.pk})",
    ]
    assert local(nightly.next_run_at).endswith("03:00:00 CET")


def test_list_with_nothing_synced_says_how_schedules_arrive():
    assert run("--list") == 'no schedules (JOBPROGRESS["SCHEDULES"] is synced on migrate)\n'


def test_a_bad_entry_is_a_command_error_naming_it_and_nothing_changes(declare):
    declare(tick=TICK)
    run()
    declare(tick=TICK, nightly={**NIGHTLY, "cron": "0 3 * *"})
    with pytest.raises(CommandError) as raised:
        run()
    assert str(raised.value) == (
        "schedule 'nightly': 'cron' must be a five-field cron expression such as "
        "'0 3 * * *', got '0 3 * *'"
    )
    assert names() == ["tick"]


def test_list_and_dry_run_together_are_refused():
    with pytest.raises(CommandError, match="--list and --dry-run cannot be used together"):
        run("--list", "--dry-run")
