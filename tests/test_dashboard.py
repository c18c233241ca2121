"""The admin dashboard: counts, the chart, running jobs live, recent failures, per-task
figures and open batches, for staff with ``view_jobrecord``, escaped, and in a
number of queries that does not grow with the jobs table."""

import re
from datetime import timedelta
from html import escape

import pytest
from django.db import connection
from django.db.models import F
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from django_jobprogress import charts, dashboard, rollups
from django_jobprogress.models import Batch, JobMinute, JobRecord
from tests.factories import start

pytestmark = pytest.mark.django_db

DASHBOARD = "admin:jobprogress_dashboard"
TASK = "tests.jobs.add"
SCRIPT = "<script>alert(1)</script>"
BREAKOUT = '"><img src=x onerror=alert(1)>'
HOSTILE = (SCRIPT, BREAKOUT)


@pytest.fixture
def staff(client, make_user):
    """Signed in with the view permissions (jobs and batches)."""
    user = make_user(staff=True, perms=["view_jobrecord", "view_batch"])
    client.force_login(user)
    return user


def running(task=TASK, **progress):
    record = start(JobRecord.objects.create(task_name=task))
    if progress:
        record.save_progress(progress)
    return record


def finished(outcome, task=TASK, seconds=None, **values):
    """A job that ran (for ``seconds``, when given) and ended with ``outcome``."""
    record = running(task)
    if seconds is not None:
        earlier = timezone.now() - timedelta(seconds=seconds)
        JobRecord.objects.filter(pk=record.pk).update(started_at=earlier)
        record.refresh_from_db()
    if outcome == "completed":
        assert record.complete(values.pop("result", None), **values)
    elif outcome == "failed":
        assert record.fail(values.pop("error", "boom"), **values)
    else:
        assert record.request_cancel() and record.mark_cancelled(**values)
    return record


def get(client, **params):
    response = client.get(reverse(DASHBOARD), params)
    assert response.status_code == 200
    return response


def count_shown(content, status):
    found = re.search(rf'data-count="{status}">([\d,.\s]+)<'.encode(), content)
    assert found, f"no count for {status}"
    return int(re.sub(rb"\D", b"", found.group(1)))


def test_staff_with_the_permission_see_counts_chart_failures_and_bars(client, staff):
    for _ in range(2):
        JobRecord.objects.create(task_name=TASK)
    live = running(stage="copying", message="file 3 of 9")
    for _ in range(3):
        finished("completed")
    failed = finished("failed", error="ValueError: bad input\n  raised in line 3")
    finished("cancelled")

    response = get(client)
    content = response.content
    assert {s: count_shown(content, s) for s in JobRecord.Status.values} == {
        "pending": 2,
        "running": 1,
        "completed": 3,
        "failed": 1,
        "cancelled": 1,
    }
    # The chart: an inline SVG, its totals in its text alternative and its table.
    svg = content.split(b'<svg class="jp-chart__svg"', 1)[1].split(b"</svg>", 1)[0]
    assert b'role="img"' in svg and b"<title" in svg and b"<desc" in svg
    assert b"3 completed, 1 failed, 1 cancelled" in svg
    assert response.context["chart_totals"] == {"completed": 3, "failed": 1, "cancelled": 1}
    assert sum(row["total"] for row in response.context["chart_rows"]) == 5
    for outcome in ("completed", "failed", "cancelled"):
        assert f'class="jp-chart__{outcome}"'.encode() in svg
    # The recent failure: the first line of its error and a link to the job.
    change = reverse("admin:django_jobprogress_jobrecord_change", args=[failed.pk])
    assert b"ValueError: bad input" in content and b"raised in line 3" not in content
    assert f'href="{change}"'.encode() in content
    # The running job's live bar.
    assert f'data-job-id="{live.pk}"'.encode() in content
    assert b'role="progressbar"' in content and b"copying" in content
    assert b"file 3 of 9" in content
    # The per-task row: 5 runs, one failure in five.
    [task] = response.context["tasks"]
    assert (task.runs.name, task.runs.runs, task.failure_rate) == (TASK, 5, "20.0 %")


def test_the_page_extends_the_admin_and_uses_its_theme(client, staff):
    content = get(client).content.decode()
    assert 'id="site-name"' in content  # admin/base_site.html
    assert "django_jobprogress/dashboard.css" in content
    assert "https://" not in content.split("<body", 1)[1]  # no CDN


def test_staff_without_the_permission_are_refused(client, make_user):
    client.force_login(make_user(staff=True))
    assert client.get(reverse(DASHBOARD)).status_code == 403


def test_anonymous_visitors_and_non_staff_are_sent_to_log_in(client, make_user):
    url = reverse(DASHBOARD)
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))
    client.force_login(make_user(perms=["view_jobrecord"]))  # not staff
    assert client.get(url)["Location"].startswith(reverse("admin:login"))


def test_every_user_text_is_escaped(client, staff):
    for hostile in HOSTILE:
        running(task=f"tests.{hostile}", stage=hostile, message=hostile)
        finished("failed", task=f"tests.{hostile}", error=hostile, result=hostile)
        finished("completed", task=f"tests.{hostile}", result={"label": hostile})
        with Batch.open(hostile) as batch:
            JobRecord.objects.create_pending(task_name=TASK, batch=batch)

    content = get(client).content.decode()
    assert "<script>alert" not in content
    assert "<img src=x" not in content
    for hostile in HOSTILE:
        assert hostile not in content
        assert escape(hostile) in content  # shown, as text


def test_the_range_selects_the_bins_and_the_finished_counts(client, staff):
    finished("completed")
    finished("failed", task="tests.jobs.earlier")  # its own row, moved 3 hours back
    earlier = JobRecord.objects.filter(task_name="tests.jobs.earlier")  # not counted yet
    assert earlier.update(finished_at=F("finished_at") - timedelta(hours=3)) == 1

    bars = {}
    for key in ("1h", "6h", "24h", "7d"):
        response = get(client, range=key)
        assert response.context["range"].key == key
        bars[key] = len(response.context["chart"].columns)
        counts = (count_shown(response.content, s) for s in ("completed", "failed"))
        assert tuple(counts) == ((1, 0) if key == "1h" else (1, 1))
    assert bars == {"1h": 60, "6h": 72, "24h": 96, "7d": 168}
    assert b'aria-current="page"' in response.content


@pytest.mark.parametrize("bad", ["", "2h", "1H", "<script>", "7d;drop"])
def test_an_unknown_range_falls_back_to_one_hour(client, staff, bad):
    response = get(client, range=bad)
    assert response.context["range"].key == "1h"
    assert len(response.context["chart"].columns) == 60


def test_percentiles_and_failure_rate_from_known_run_times(client, staff):
    # Eight runs of about half a second (bucket "<= 640 ms"), two of 30 s ("<= 41 s").
    for i in range(8):
        finished("failed" if i < 2 else "completed", seconds=0.5)
    for _ in range(2):
        finished("completed", seconds=30)
    finished("cancelled", task="tests.jobs.other")

    [task, other] = get(client).context["tasks"]
    assert (task.runs.runs, task.runs.completed, task.runs.failed) == (10, 8, 2)
    assert task.failure_rate == "20.0 %"
    assert task.p50 == "≤ 640 ms"
    assert task.p95 == "≤ 41.0 s"
    # (8 x 0.5 + 2 x 30) / 10, give or take the milliseconds each run took to end
    assert task.mean.endswith(" s") and float(task.mean[:-2]) == pytest.approx(6.4, abs=0.02)
    assert (other.runs.runs, other.failure_rate) == (1, "0.0 %")


def test_percentile_is_the_nearest_rank_bucket_bound():
    histogram = {1: 50, 8: 45, 12: 5}
    assert dashboard.percentile(histogram, 0.5) == "≤ 10 ms"
    assert dashboard.percentile(histogram, 0.51) == "≤ 1.28 s"
    assert dashboard.percentile(histogram, 0.95) == "≤ 1.28 s"
    assert dashboard.percentile(histogram, 0.96) == "≤ 20.5 s"
    assert dashboard.percentile({24: 1}, 0.5) == "> 11.7 h"
    assert dashboard.percentile({}, 0.5) == ""


def test_running_jobs_are_capped_with_a_link_to_the_rest(client, staff):
    for _ in range(dashboard.RUNNING_SHOWN + 5):
        running()
    content = get(client).content.decode()
    assert content.count('data-jobprogress="job"') == dashboard.RUNNING_SHOWN
    changelist = reverse("admin:django_jobprogress_jobrecord_changelist")
    assert f'href="{changelist}?status__exact=running">and 5 more running jobs' in content


def test_cancel_buttons_only_for_those_who_may_cancel(client, make_user, staff):
    running()
    assert b'data-action="cancel"' not in get(client).content
    client.force_login(make_user(staff=True, perms=["view_jobrecord", "cancel_jobrecord"]))
    assert b'data-action="cancel"' in get(client).content


def test_open_batches_with_their_bars_and_counters(client, make_user, staff):
    with Batch.open("weekly blast") as batch:
        members = [
            JobRecord.objects.create_pending(task_name=TASK, batch=batch)[0] for _ in range(4)
        ]
    start(members[0]).complete()
    start(members[1]).fail("bounced")
    start(members[2])
    with Batch.open("done") as done:
        pass  # empty: finished at once, not shown

    response = get(client)
    [shown] = response.context["batches"]
    assert shown["batch"].pk == batch.pk
    assert (shown["pending"], shown["running"]) == (1, 1)
    assert (shown["batch"].succeeded, shown["batch"].failed) == (1, 1)
    assert f'data-job-id="{batch.pk}"'.encode() in response.content
    assert f'data-job-id="{done.pk}"'.encode() not in response.content
    assert b"2 of 4 done, 1 failed" in response.content

    client.force_login(make_user(staff=True, perms=["view_jobrecord"]))
    response = get(client)
    assert response.context["batches"] == []
    assert b"weekly blast" not in response.content


def seed(jobs, batches=12):
    """``jobs`` jobs in every state (every fifth one finished each way), a few in
    open batches, and ``batches`` open batches."""
    groups = [Batch.objects.create(name=f"batch {i}") for i in range(batches)]
    for i in range(jobs):
        batch = groups[i % batches] if i % 7 == 0 else None
        record = JobRecord.objects.create(task_name=f"tests.jobs.task{i % 4}", batch=batch)
        kind = i % 5
        if kind == 0:
            continue  # pending
        start(record)
        if kind == 2:
            record.complete(i)
        elif kind == 3:
            record.fail(f"error {i}")
        elif kind == 4:
            record.request_cancel()
            record.mark_cancelled()


def queries_of_one_page(client):
    with CaptureQueriesContext(connection) as captured:
        get(client, range="24h")
    return [query["sql"] for query in captured.captured_queries]


def test_queries_are_bounded_and_do_not_grow_with_the_jobs(
    client, make_user, django_assert_max_num_queries
):
    client.force_login(
        make_user(staff=True, perms=["view_jobrecord", "view_batch", "cancel_jobrecord"])
    )
    seed(50)
    with django_assert_max_num_queries(25):
        get(client)
    few = queries_of_one_page(client)

    seed(450)
    assert JobRecord.objects.count() == 500
    many = queries_of_one_page(client)
    assert len(many) == len(few)
    # No query reads the jobs table without a condition on an indexed column.
    jobs_table = JobRecord._meta.db_table
    for sql in many:
        if f'FROM "{jobs_table}"' in sql:
            where = sql.split("WHERE", 1)[1] if "WHERE" in sql else ""
            assert '"status"' in where or '"batch_id"' in where or '"id"' in where, sql


def open_batches_with_members(n):
    """``n`` open batches of two members each, one of them running half done."""
    for i in range(n):
        with Batch.open(f"blast {i}") as batch:
            first = JobRecord.objects.create_pending(task_name=TASK, batch=batch)[0]
            JobRecord.objects.create_pending(task_name=TASK, batch=batch)
        start(first).save_progress({"progress": 0.5})


def test_open_batch_bars_cost_no_query_each(client, staff):
    open_batches_with_members(2)
    few = queries_of_one_page(client)
    open_batches_with_members(dashboard.BATCHES_SHOWN - 2)
    many = queries_of_one_page(client)
    assert len(many) == len(few), "\n".join(many)
    response = get(client)
    assert len(response.context["batches"]) == dashboard.BATCHES_SHOWN
    # Each bar shows what the batch's own snapshot says: a quarter done, one running.
    content = response.content.decode()
    assert content.count('data-jobprogress="batch"') == dashboard.BATCHES_SHOWN
    assert content.count('aria-valuenow="25"') == dashboard.BATCHES_SHOWN
    batch = response.context["batches"][0]["batch"]
    assert response.context["batches"][0]["counts"] == batch.live_counts()


def test_the_chart_geometry():
    chart = charts.stacked_bars(
        ["a", "b", "c"],
        [[0, 0, 0], [3, 1, 0], [6, 1, 1]],
        [("completed", "completed"), ("failed", "failed"), ("cancelled", "cancelled")],
        [(0, "a"), (2, "c")],
    )
    assert [column.total for column in chart.drawn] == [4, 8]
    tallest = chart.drawn[-1]
    assert [s.series for s in tallest.segments] == ["completed", "failed", "cancelled"]
    assert tallest.segments[-1].y == chart.top  # 8 reaches the top of a 0-8 axis
    assert sum(s.height for s in tallest.segments) == pytest.approx(chart.bottom - chart.top)
    assert [tick.label for tick in chart.y_ticks] == ["0", "2", "4", "6", "8"]
    assert [tick.label for tick in chart.x_ticks] == ["a", "c"]
    assert all(chart.left <= c.x and c.x + c.width <= chart.right for c in chart.columns)


@pytest.mark.parametrize("before_postgres_14", [False, True])
def test_the_database_adds_up_each_bin_from_the_range_start(before_postgres_14, monkeypatch):
    if before_postgres_14:
        if connection.vendor != "postgresql":
            pytest.skip("PostgreSQL before 14 (no date_bin) has its own SQL")
        monkeypatch.setattr(connection, "pg_version", 130000)
    start = dashboard.bin_start(timezone.now(), 30) - timedelta(hours=2)
    for offset, task, outcome in [
        (-1, "a", "completed"),  # before the range: left out
        (0, "a", "completed"),
        (29, "a", "failed"),
        (29, "b", "completed"),
        (30, "a", "cancelled"),
        (119, "a", "completed"),
        (120, "a", "completed"),  # the end of the range: left out
    ]:
        JobMinute.objects.create(
            minute=start + timedelta(minutes=offset),
            task_name=task,
            bucket=1,
            shard=0,
            **{outcome: 1},
        )
    assert rollups.finished_per_bin(start, 4, 30) == [[2, 1, 0], [0, 0, 1], [0, 0, 0], [1, 0, 0]]
    assert [
        (t.name, t.runs, t.histogram)
        for t in rollups.runs_per_task(start, start + timedelta(hours=2))
    ] == [("a", 4, {1: 4}), ("b", 1, {1: 1})]
