"""The example's recurring job ("Simple Recurring Jobs in Phoenix Apps"): the schedule
its settings declare, the heartbeat task it runs (every third run crashes on its
first attempt and is retried on the same record), and the page that shows the
schedule, its next run and its last runs with their bars."""

import re
from datetime import timedelta
from io import StringIO

import pytest
from django.utils import timezone

from django_jobprogress import scheduler, schedules
from django_jobprogress.models import JobRecord, Schedule
from tests.example.conftest import HEARTBEAT

pytestmark = pytest.mark.django_db

TASK = "example_project.demo.tasks.heartbeat"
NAME = "demo-heartbeat"


@pytest.fixture
def run_slot(memory_queue, django_capture_on_commit_callbacks):
    """``run_slot(now)``: make the heartbeat due at ``now``, let the scheduler start its
    run and the queue run it (retries included); return the run, read again."""

    def run(now):
        Schedule.objects.filter(name=NAME).update(next_run_at=now)
        with django_capture_on_commit_callbacks(execute=True):
            report = scheduler.run_due(now)
        assert report.started == [NAME], report
        memory_queue.run_pending()
        return JobRecord.objects.get(key=NAME, scheduled_for=now)

    return run


def make_run(slot, status=JobRecord.Status.COMPLETED, **fields):
    return JobRecord.objects.create(
        task_name=TASK,
        key=NAME,
        scheduled_for=slot,
        status=status,
        max_attempts=3,
        attempts=1,
        **fields,
    )


def run_ids(html):
    return re.findall(r'<li data-run-id="([0-9a-f-]{36})">', html)


# -- the schedule and its task ------------------------------------------------------


def test_the_settings_declare_a_heartbeat_every_20_s_with_three_attempts(demo):
    spec = schedules.parse(NAME, HEARTBEAT)
    assert (spec.task, spec.every, spec.max_attempts) == (TASK, 20.0, 3)
    assert spec.task == demo.tasks.heartbeat.get_task_name()
    assert demo.use_cases.when_in_words(spec) == "every 20 seconds"


@pytest.mark.parametrize(
    ("seconds", "words"),
    [(1, "every second"), (20, "every 20 seconds"), (90, "every 90 seconds"),
     (600, "every 10 minutes"), (3600, "every hour"), (86400, "every day"),
     (1.5, "every 1.5 seconds")],
)  # fmt: skip
def test_intervals_are_said_in_words(demo, seconds, words):
    assert demo.use_cases.interval_in_words(seconds) == words


def test_cron_schedules_are_said_with_their_zone(demo):
    spec = schedules.ScheduleSpec(name="n", task=TASK, cron="0 3 * * *", timezone="Europe/Paris")
    assert demo.use_cases.when_in_words(spec) == (
        "at the times of the cron expression 0 3 * * * (Europe/Paris time)"
    )


def test_each_run_checks_the_services_and_every_third_is_retried_on_the_same_record(
    heartbeat, run_slot
):
    start = timezone.now()
    runs = [run_slot(start + timedelta(seconds=20 * n)) for n in range(6)]

    assert [run.status for run in runs] == ["completed"] * 6
    assert [run.attempts for run in runs] == [1, 1, 2, 1, 1, 2]
    assert [run.result for run in runs] == [
        {"run": n, "attempt": attempts, "checked": 6}
        for n, attempts in zip(range(1, 7), [1, 1, 2, 1, 1, 2], strict=True)
    ]
    third = runs[2]
    assert (third.progress, third.current, third.total) == (1.0, 6, 6)
    assert third.fields == {"run": 3, "attempt": 2}
    assert (third.stage, third.message) == ("done", "all 6 services are up")
    assert third.error == ""  # the retry succeeded: the crash no longer describes it
    assert third.owner is None and third.max_attempts == 3
    assert JobRecord.objects.filter(key=NAME).count() == 6  # retries make no new rows
    assert JobRecord.for_key(TASK, NAME) == runs[-1]


def test_with_one_attempt_the_third_run_fails_for_good(declare, run_slot):
    declare(**{NAME: {**HEARTBEAT, "kwargs": {"pace": 0}, "max_attempts": 1}})
    start = timezone.now()
    runs = [run_slot(start + timedelta(seconds=n)) for n in range(3)]
    assert [run.status for run in runs] == ["completed", "completed", "failed"]
    failed = runs[2]
    assert failed.error == "Hiccup: lost the connection while checking the cache (attempt 1)"
    assert "raise Hiccup" in failed.traceback
    assert (failed.attempts, failed.progress, failed.fields) == (1, 2 / 6, {"run": 3, "attempt": 1})


def test_the_heartbeat_also_runs_without_a_schedule(demo, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):  # the ImmediateQueue runs it
        run = demo.tasks.heartbeat.enqueue(pace=0)
    run.refresh_from_db()
    assert (run.status, run.result) == ("completed", {"run": 1, "attempt": 1, "checked": 6})


def test_hiccups_are_the_first_attempts_of_every_third_run(demo):
    crashes = [(run, attempt) for run in range(1, 8) for attempt in (1, 2, 3)]
    assert [pair for pair in crashes if demo.tasks.hiccups(*pair)] == [(3, 1), (6, 1)]


# -- the page ------------------------------------------------------------------------


def test_the_page_shows_the_schedule_its_next_run_and_the_last_ten_runs_newest_first(
    client, demo_user, heartbeat
):
    now = timezone.now()
    made = [make_run(now - timedelta(seconds=20 * (12 - n)), fields={"run": n}) for n in range(12)]
    # Not runs of the schedule: the same key but started by hand, another task's key.
    JobRecord.objects.create(task_name=TASK, key=NAME, status="completed")
    JobRecord.objects.create(task_name="other.task", key=NAME, scheduled_for=now)
    client.force_login(demo_user)

    response = client.get("/recurring/")

    assert response.status_code == 200
    html = response.content.decode()
    assert "<h1>Recurring job</h1>" in html
    assert "Simple Recurring Jobs in Phoenix Apps" in html
    assert "Schedule <code>demo-heartbeat</code>" in html
    assert f"<dt>task</dt><dd>{TASK}</dd>" in html
    assert "<dd data-recurring-when>every 20 seconds</dd>" in html
    assert "<dt>max attempts</dt><dd>3</dd>" in html
    slot = heartbeat.next_run_at
    assert f'data-at="{slot.isoformat()}"' in html
    assert f"{slot:%Y-%m-%d %H:%M:%S} UTC" in html
    assert re.search(r"<span data-recurring-countdown>in (1\d|20) s</span>", html)
    assert run_ids(html) == [str(run.pk) for run in reversed(made[2:])]
    assert html.count('data-jobprogress="job"') == 10
    assert "not available to you" not in html
    assert "run 11 · </span>attempt <span data-run-attempts>1</span> of 3" in html
    newest = made[-1]
    assert f">Slot {newest.scheduled_for:%Y-%m-%d %H:%M:%S} UTC<" in html  # the bar's label
    assert "data-recurring-empty hidden" in html
    assert "<form" not in html.split("<main>", 1)[1]  # nothing starts it here


def test_the_bars_of_scheduled_runs_carry_a_token_so_any_signed_in_user_sees_them(
    client, make_user, heartbeat
):
    run = make_run(timezone.now(), message="database: up")
    client.force_login(make_user())  # not staff: the runs have no owner to match

    html = client.get("/recurring/").content.decode()

    token = re.search(r'data-token="([^"]+)"', html).group(1)
    assert run.check_access_token(token)
    assert "not available to you" not in html and "database: up" in html
    assert client.get(f"/jobprogress/jobs/{run.pk}/?token={token}").json()["id"] == str(run.pk)


def test_before_the_first_run_the_page_says_when_it_comes(client, demo_user, heartbeat):
    client.force_login(demo_user)
    html = client.get("/recurring/").content.decode()
    assert "<p data-recurring-empty>No runs yet: the first one starts at the next slot.</p>" in html
    assert run_ids(html) == []


def test_a_slot_left_untaken_says_it_waits_for_a_cluster(client, demo_user, heartbeat):
    Schedule.objects.filter(pk=heartbeat.pk).update(
        next_run_at=timezone.now() - timedelta(minutes=5)
    )
    client.force_login(demo_user)
    html = client.get("/recurring/").content.decode()
    assert "due now: it starts as soon as a django-q2 cluster runs" in html


def test_without_the_schedule_the_page_says_how_to_sync_it(client, demo_user, site):
    client.force_login(demo_user)
    response = client.get("/recurring/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "No schedule named <code>demo-heartbeat</code> is in the" in html
    assert "python manage.py jobprogress_schedules" in html
    assert "data-recurring" not in html


def test_the_runs_fragment_is_what_the_page_script_merges(client, demo_user, heartbeat):
    run = make_run(timezone.now())
    client.force_login(demo_user)

    response = client.get("/recurring/runs/")

    assert response.status_code == 200
    assert "no-cache" in response["Cache-Control"]
    html = response.content.decode()
    assert "<html" not in html and "data-recurring-next" in html
    assert run_ids(html) == [str(run.pk)]


@pytest.mark.parametrize("path", ["/recurring/", "/recurring/runs/"])
def test_visitors_who_are_not_signed_in_are_sent_to_log_in(client, heartbeat, path):
    response = client.get(path)
    assert response.status_code == 302 and response["Location"] == f"/login/?next={path}"


def test_what_a_run_reports_is_escaped(client, demo_user, heartbeat):
    make_run(
        timezone.now(),
        status=JobRecord.Status.FAILED,
        message="<script>alert('message')</script>",
        error="<img src=x onerror=alert(1)>",
        fields={"run": "<b>7</b>"},
    )
    client.force_login(demo_user)
    html = client.get("/recurring/").content.decode()
    assert "<script>alert(" not in html and "<img src=x" not in html and "<b>7</b>" not in html
    assert "&lt;script&gt;alert(&#x27;message&#x27;)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "run &lt;b&gt;7&lt;/b&gt; · " in html


def test_a_stored_definition_that_cannot_be_read_is_named(client, demo_user, heartbeat):
    Schedule.objects.filter(pk=heartbeat.pk).update(definition={"nonsense": 1})
    client.force_login(demo_user)
    html = client.get("/recurring/").content.decode()
    assert "its stored definition cannot be read: run manage.py jobprogress_schedules" in html


# -- where the page is linked -----------------------------------------------------------


def test_the_home_page_lists_the_recurring_job_with_the_other_use_cases(client, demo_user, site):
    client.force_login(demo_user)
    html = client.get("/").content.decode()
    cases = html.split('<ul class="cases">', 1)[1].split("</ul>", 1)[0]
    assert '<h2><a href="/recurring/">Recurring job</a></h2>' in cases
    assert "Simple Recurring Jobs in Phoenix Apps" in cases
    nav = html.split('<nav aria-label="Use cases">', 1)[1].split("</nav>", 1)[0]
    assert '<a href="/recurring/">Recurring job</a>' in nav


def test_the_demo_command_lists_the_pages_and_the_schedule(demo, heartbeat):
    listed = {title: (path, note) for title, path, note in demo.command.pages()}
    assert listed["Recurring job"] == ("/recurring/", "  (demo-heartbeat: next run in 20 s)")
    assert [title for title in listed] == [
        "Zip export",
        "Multi-stage import",
        "Newsletter",
        "Failing report",
        "Weekly email blast",
        "Recurring job",
        "Admin",
    ]
    assert demo.command.schedules_text() == "demo-heartbeat (every 20s), started by the cluster"

    command = demo.command.Command(stdout=StringIO())
    command.credentials = ("demo", "demo")
    command.announce("127.0.0.1", 8000, {})
    out = command.stdout.getvalue()
    assert "The demo is running at http://127.0.0.1:8000/" in out
    assert "  Recurring job       http://127.0.0.1:8000/recurring/  (demo-heartbeat: next" in out


def test_the_demo_command_says_when_nothing_is_scheduled(demo):
    assert demo.command.schedules_text() == "none"
    listed = {title: (path, note) for title, path, note in demo.command.pages()}
    assert listed["Recurring job"] == ("/recurring/", "  (demo-heartbeat is not scheduled)")
