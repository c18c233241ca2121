"""Schedule entries as the project writes them: what is refused (naming the entry),
and the slot times they give, across DST changes in Europe/Paris and America/New_York."""

import itertools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from django_jobprogress.schedules import ScheduleError, load, parse, problems

PARIS = ZoneInfo("Europe/Paris")
NEW_YORK = ZoneInfo("America/New_York")
TASK = "tests.jobs.add"


def cron(expression, zone):
    return parse("report", {"task": TASK, "cron": expression, "timezone": zone})


def slots(spec, start, count):
    """The next ``count`` slots after ``start``, as ISO text with their offsets."""
    found, moment = [], start
    for _ in range(count):
        moment = spec.slot_after(moment)
        found.append(moment.isoformat())
    return found


# -- DST ---------------------------------------------------------------------------


def test_paris_spring_forward_a_skipped_wall_time_runs_once_when_the_gap_ends():
    # 29 March 2026: 02:00 CET jumps to 03:00 CEST; 02:30 does not exist that day.
    spec = cron("30 2 * * *", "Europe/Paris")
    assert slots(spec, datetime(2026, 3, 28, 12, tzinfo=PARIS), 3) == [
        "2026-03-29T03:00:00+02:00",
        "2026-03-30T02:30:00+02:00",
        "2026-03-31T02:30:00+02:00",
    ]


def test_paris_fall_back_a_repeated_wall_time_runs_once_at_its_first_occurrence():
    # 25 October 2026: 03:00 CEST falls back to 02:00 CET; 02:30 happens twice.
    spec = cron("30 2 * * *", "Europe/Paris")
    assert slots(spec, datetime(2026, 10, 24, 12, tzinfo=PARIS), 2) == [
        "2026-10-25T02:30:00+02:00",
        "2026-10-26T02:30:00+01:00",
    ]


def test_paris_a_step_in_the_hour_field_runs_by_real_time_through_the_repeated_hour():
    spec = cron("*/30 * * * *", "Europe/Paris")
    found = slots(spec, datetime(2026, 10, 25, 1, 10, tzinfo=PARIS), 6)
    assert found == [
        "2026-10-25T01:30:00+02:00",
        "2026-10-25T02:00:00+02:00",
        "2026-10-25T02:30:00+02:00",
        "2026-10-25T02:00:00+01:00",
        "2026-10-25T02:30:00+01:00",
        "2026-10-25T03:00:00+01:00",
    ]
    in_utc = [datetime.fromisoformat(text).astimezone(UTC) for text in found]
    assert {b - a for a, b in itertools.pairwise(in_utc)} == {timedelta(minutes=30)}


def test_paris_the_night_of_spring_forward_is_23_hours_long():
    spec = cron("0 3 * * *", "Europe/Paris")
    first, second = (
        datetime.fromisoformat(text)
        for text in slots(spec, datetime(2026, 3, 28, 12, tzinfo=PARIS), 2)
    )
    assert first.isoformat() == "2026-03-29T03:00:00+02:00"
    assert second - first == timedelta(days=1)  # wall time: the next day at 03:00
    assert first.astimezone(UTC) - datetime(2026, 3, 28, 2, tzinfo=UTC) == timedelta(hours=23)


def test_new_york_spring_forward():
    # 8 March 2026: 02:00 EST jumps to 03:00 EDT.
    spec = cron("0 2 * * *", "America/New_York")
    assert slots(spec, datetime(2026, 3, 7, 23, tzinfo=NEW_YORK), 2) == [
        "2026-03-08T03:00:00-04:00",
        "2026-03-09T02:00:00-04:00",
    ]


def test_new_york_fall_back_named_hours_once_every_hour_twice():
    # 1 November 2026: 02:00 EDT falls back to 01:00 EST; 01:00-01:59 happens twice.
    start = datetime(2026, 10, 31, 23, 10, tzinfo=NEW_YORK)
    assert slots(cron("0,30 1 * * *", "America/New_York"), start, 3) == [
        "2026-11-01T01:00:00-04:00",
        "2026-11-01T01:30:00-04:00",
        "2026-11-02T01:00:00-05:00",
    ]
    assert slots(cron("0 * * * *", "America/New_York"), start, 4) == [
        "2026-11-01T00:00:00-04:00",
        "2026-11-01T01:00:00-04:00",
        "2026-11-01T01:00:00-05:00",
        "2026-11-01T02:00:00-05:00",
    ]


def test_cron_is_read_in_time_zone_when_the_entry_names_none(settings):
    settings.TIME_ZONE = "America/New_York"
    spec = parse("report", {"task": TASK, "cron": "0 9 * * *"})
    assert spec.timezone == "America/New_York"
    # 12:00 UTC is 08:00 EDT: the slot is 09:00 EDT the same day, 13:00 UTC.
    assert spec.slot_after(datetime(2026, 7, 1, 12, tzinfo=UTC)) == datetime(
        2026, 7, 1, 13, tzinfo=UTC
    )


def test_every_counts_real_seconds_across_dst():
    spec = parse("tick", {"task": TASK, "every": "1h"})
    slot = datetime(2026, 10, 25, 1, 30, tzinfo=PARIS)
    assert spec.slot_after(slot, previous=slot) - slot == timedelta(hours=1)


def test_missed_every_slots_give_the_next_slot_still_to_come_on_the_same_grid():
    spec = parse("tick", {"task": TASK, "every": 600})
    previous = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    # Down for 95 minutes: 9 slots were missed; the next is 12:40 + 1h = 13:40.
    now = previous + timedelta(minutes=95)
    assert spec.slot_after(now, previous=previous) == datetime(2026, 12, 1, 13, 40, tzinfo=UTC)


# -- entries --------------------------------------------------------------------------


def test_a_full_entry_is_read():
    spec = parse(
        "sweep-exports",
        {
            "task": TASK,
            "every": "10m",
            "args": [1, 2],
            "kwargs": {},
            "queue": "mail",
            "max_attempts": 3,
            "timezone": "Europe/Paris",
        },
    )
    assert (spec.every, spec.args, spec.queue, spec.max_attempts) == (600.0, [1, 2], "mail", 3)
    assert spec.describe() == "every 10m"
    assert cron(" 0  3 * * * ", "Europe/Paris").describe() == "cron 0 3 * * * (Europe/Paris)"


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"task": TASK}, "schedule 'bad' needs exactly one of 'cron' and 'every'"),
        (
            {"task": TASK, "cron": "* * * * *", "every": 60},
            "schedule 'bad' needs exactly one of 'cron' and 'every'",
        ),
        (
            {"task": "tests.jobs.nothing_here", "every": 60},
            "schedule 'bad': task 'tests.jobs.nothing_here' cannot be imported: "
            'Module "tests.jobs" does not define a "nothing_here" attribute/class',
        ),
        (
            {"task": "tests.jobs._nested", "every": 60},
            "schedule 'bad': 'tests.jobs._nested' is not a progress task",
        ),
        (
            {"task": TASK, "cron": "61 * * * *"},
            "schedule 'bad': 'cron' must be a five-field cron expression such as "
            "'0 3 * * *', got '61 * * * *'",
        ),
        (
            {"task": TASK, "cron": "0 3 * * * *"},
            "schedule 'bad': 'cron' must be a five-field cron expression such as "
            "'0 3 * * *', got '0 3 * * * *'",
        ),
        (
            {"task": TASK, "every": "banana"},
            "schedule 'bad': 'every' must be 30s, 10m, 12h, 7d, 2w or a number of "
            "seconds, got 'banana'",
        ),
        (
            {"task": TASK, "every": float("inf")},
            "schedule 'bad': 'every' must be 30s, 10m, 12h, 7d, 2w or a number of seconds, got inf",
        ),
        ({"task": TASK, "every": 0.5}, "schedule 'bad': 'every' must be at least 1 s, got 0.5"),
        (
            {"task": TASK, "every": 60, "when": "now"},
            "schedule 'bad' has unknown keys 'when' (known: task, cron, every, timezone, "
            "args, kwargs, queue, max_attempts)",
        ),
        (
            {"task": TASK, "cron": "0 3 * * *", "timezone": "Mars/Olympus"},
            "schedule 'bad': unknown 'timezone' 'Mars/Olympus'",
        ),
        (
            {"task": TASK, "every": 60, "args": [float("nan")]},
            "schedule 'bad': 'args'[0] must be a finite number, got nan",
        ),
        (
            {"task": TASK, "every": 60, "max_attempts": 0},
            "schedule 'bad': 'max_attempts' must be a whole number from 1 to 1000, got 0",
        ),
        (
            {"task": TASK, "every": 60, "queue": "a\x00b"},
            "schedule 'bad': 'queue' contains a NUL character",
        ),
        (
            "0 3 * * *",
            "schedule 'bad' must be a dict with 'task' and 'cron' or 'every', got '0 3 * * *'",
        ),
    ],
)
def test_a_bad_entry_is_refused_naming_it(entry, message):
    with pytest.raises(ScheduleError) as raised:
        parse("bad", entry)
    assert str(raised.value).startswith(message), str(raised.value)


def test_every_bad_entry_is_reported_and_the_good_ones_are_not():
    entries = {
        "ok": {"task": TASK, "every": 60},
        "no-task": {"every": 60},
        "": {"task": TASK, "every": 60},
    }
    assert problems(entries) == [
        "schedule 'no-task' needs 'task', the dotted path of a progress task, got None",
        "schedule name must be a non-empty string of at most 200 characters, got ''",
    ]
    with pytest.raises(ScheduleError, match="no-task"):
        load(entries)
    assert problems(["ok"]) == [
        "JOBPROGRESS[\"SCHEDULES\"] must be a dict of name -> schedule, got ['ok']"
    ]
