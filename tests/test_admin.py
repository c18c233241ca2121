"""The admin's job list: what it shows, what it costs at scale, and its actions."""

import json
import re
import uuid

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.messages import get_messages
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from django_jobprogress import admin as jobs_admin
from django_jobprogress import scheduler
from django_jobprogress.admin import actions, paginators
from django_jobprogress.models import Batch, JobRecord
from tests.factories import start

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:django_jobprogress_jobrecord_changelist"
LIVE = "admin:django_jobprogress_jobrecord_live"
VIEWER = ["view_jobrecord"]


def ended(task_name="tests.jobs.Explode", status="failed", **fields):
    """A job that ran and ended ``status``, through the model's own transitions."""
    record = start(JobRecord.objects.create(task_name=task_name, **fields))
    if status == "failed":
        record.fail("boom", traceback='Traceback:\n  File "x.py"\n    raise ValueError')
    elif status == "completed":
        record.complete({"ok": True})
    else:
        record.request_cancel()
        record.mark_cancelled()
    record.refresh_from_db()
    return record


def messages_of(response):
    return [str(message) for message in get_messages(response.wsgi_request)]


@pytest.fixture
def running_job():
    record = JobRecord.objects.create(task_name="tests.jobs.add")
    start(record)
    record.save_progress({"stage": "copying", "progress": 0.4})
    return record


@pytest.fixture
def viewer(client, make_user):
    client.force_login(make_user(staff=True, perms=VIEWER))
    return client


# -- what the list shows ---------------------------------------------------------


def test_changelist_lists_jobs_with_their_progress(viewer, running_job):
    response = viewer.get(reverse(CHANGELIST), {"status__exact": "running"})
    assert response.status_code == 200
    assert b"copying" in response.content


def test_task_column_shows_the_short_name_with_the_full_path_on_hover(viewer, running_job):
    content = viewer.get(reverse(CHANGELIST)).content.decode()
    assert '<span title="tests.jobs.add">add</span>' in content
    assert ">tests.jobs.add<" not in content


def test_statuses_are_badges_with_their_human_label(viewer, running_job):
    ended(status="failed")
    content = viewer.get(reverse(CHANGELIST)).content.decode()
    assert '<span class="jp-badge jp-badge--running" data-jp-badge>Running</span>' in content
    assert '<span class="jp-badge jp-badge--failed" data-jp-badge>Failed</span>' in content
    assert "django_jobprogress/admin.css" in content


def test_a_cancel_request_shows_in_the_badge(viewer, running_job):
    running_job.request_cancel()
    content = viewer.get(reverse(CHANGELIST)).content.decode()
    assert ">Running, cancel requested</span>" in content


def test_unfinished_rows_get_a_bar_that_follows_them_over_the_shared_socket(viewer, running_job):
    finished = ended(status="completed")
    content = viewer.get(reverse(CHANGELIST)).content.decode()
    assert f'data-jp-live="{running_job.pk}"' in content
    assert f'data-jp-live="{finished.pk}"' not in content
    assert 'role="progressbar"' in content and 'aria-valuenow="40"' in content
    # The scripts come from the admin's Media; the page holds only a data island.
    assert "django_jobprogress/progress.js" in content
    assert "django_jobprogress/admin.js" in content
    island = re.search(
        r'<script id="jp-live-config" type="application/json">(.*?)</script>', content
    )
    config = json.loads(island.group(1))
    assert config["watch"] == "/ws/watch/"
    assert config["url"] == reverse(LIVE)
    assert config["labels"]["running"] == "Running"
    assert config["cancel_requested"] == "%(status)s, cancel requested"
    assert not re.search(r"<script>(?!</script>)", content)  # no inline script body
    # No per-row socket: the list does not render the progress_bar tag.
    assert "data-ws-path" not in content


def test_live_fallback_reports_the_jobs_asked_for_in_snapshot_keys(viewer, running_job):
    finished = ended(status="failed")
    running_job.request_cancel()
    ids = [str(running_job.pk), str(finished.pk), "not-a-uuid", str(uuid.uuid4())]
    with CaptureQueriesContext(connection) as queries:
        body = viewer.get(reverse(LIVE), {"id": ids}).json()
    assert body["jobs"] == {
        str(running_job.pk): {
            "id": str(running_job.pk),
            "status": "running",
            "progress": 0.4,
            "stage": "copying",
            "cancel_requested": True,
        },
        str(finished.pk): {
            "id": str(finished.pk),
            "status": "failed",
            "progress": 0.0,
            "stage": "",
            "cancel_requested": False,
        },
    }
    snapshot = running_job.snapshot()
    assert {key: snapshot[key] for key in body["jobs"][str(running_job.pk)]} == body["jobs"][
        str(running_job.pk)
    ]
    job_queries = [q["sql"] for q in queries.captured_queries if "jobrecord" in q["sql"]]
    assert len(job_queries) == 1


def test_live_fallback_needs_the_view_permission(client, make_user, running_job):
    client.force_login(make_user(staff=True))
    assert client.get(reverse(LIVE), {"id": str(running_job.pk)}).status_code == 403
    client.logout()
    assert client.get(reverse(LIVE), {"id": str(running_job.pk)}).status_code == 302


def test_changelist_links_to_the_dashboard(viewer):
    content = viewer.get(reverse(CHANGELIST)).content.decode()
    assert f'href="{reverse("admin:jobprogress_dashboard")}"' in content


def test_user_text_is_escaped_in_the_admin(viewer):
    JobRecord.objects.create(task_name="tests.jobs.add", stage="<script>alert(1)</script>")
    content = viewer.get(reverse(CHANGELIST)).content
    assert b"<script>alert(1)</script>" not in content
    assert b"&lt;script&gt;alert(1)&lt;/script&gt;" in content


# -- cheap at a million rows --------------------------------------------------------


def test_id_search_finds_the_job_through_its_primary_key(viewer, running_job):
    other = JobRecord.objects.create(task_name="tests.jobs.add")
    with CaptureQueriesContext(connection) as queries:
        response = viewer.get(reverse(CHANGELIST), {"q": f" {running_job.pk} "})
    assert list(response.context["cl"].result_list) == [running_job]
    assert str(other.pk) not in response.content.decode()
    job_queries = [q["sql"] for q in queries.captured_queries if "jobrecord" in q["sql"]]
    by_pk = [sql for sql in job_queries if '"django_jobprogress_jobrecord"."id" = ' in sql]
    assert by_pk, job_queries
    for sql in job_queries:
        assert "LIKE" not in sql.upper() and "UPPER(" not in sql.upper(), sql
        assert "::text" not in sql and "CAST(" not in sql.upper(), sql


def test_search_finds_an_exact_key_and_tasks_by_part_of_their_name(viewer):
    keyed = JobRecord.objects.create(task_name="tests.jobs.add", key="product-42")
    zipping = JobRecord.objects.create(task_name="tests.jobs.ZipExport")
    JobRecord.objects.create(task_name="tests.jobs.echo", stage="product-42 zipexport")

    def found(term):
        response = viewer.get(reverse(CHANGELIST), {"q": term})
        return set(response.context["cl"].result_list)

    assert found("product-42") == {keyed}
    assert found("zipexp") == {zipping}
    assert found("product") == set()  # keys are matched exactly, stage is not searched
    with CaptureQueriesContext(connection) as queries:
        found("zipexp")
    assert not any("LIKE" in q["sql"].upper() for q in queries.captured_queries)


def test_no_page_counts_the_whole_table(viewer, running_job):
    ended(status="failed")
    pages = [{}, {"status__exact": "failed"}, {"task_name__exact": "tests.jobs.add"}, {"q": "add"}]
    for params in pages:
        with CaptureQueriesContext(connection) as queries:
            assert viewer.get(reverse(CHANGELIST), params).status_code == 200
        counts = [q["sql"] for q in queries.captured_queries if "COUNT(" in q["sql"].upper()]
        assert len(counts) <= 1, counts
        for sql in counts:  # at most COUNT_CAP + 1 rows are ever counted
            assert re.search(rf"LIMIT {paginators.COUNT_CAP + 1}\b", sql), sql


def test_a_long_list_is_shown_as_more_than_the_cap(viewer, monkeypatch):
    monkeypatch.setattr(paginators, "COUNT_CAP", 3)
    monkeypatch.setattr(paginators, "planned_rows", lambda queryset: None)
    for _ in range(5):
        JobRecord.objects.create(task_name="tests.jobs.add")
    content = viewer.get(reverse(CHANGELIST)).content.decode()
    assert re.search(r"\b3\+\s+jobs", content)
    content = viewer.get(reverse(CHANGELIST), {"q": "add"}).content.decode()
    assert "3+ results" in content


def test_a_list_the_planner_finds_long_shows_its_estimate_without_counting(viewer, monkeypatch):
    monkeypatch.setattr(paginators, "planned_rows", lambda queryset: 1_234_567)
    JobRecord.objects.create(task_name="tests.jobs.add")
    with CaptureQueriesContext(connection) as queries:
        content = viewer.get(reverse(CHANGELIST)).content.decode()
    assert re.search(r"about 1,235,000\s+jobs", content)
    assert not any("COUNT(" in q["sql"].upper() for q in queries.captured_queries)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's planner")
def test_planned_rows_reads_the_planners_estimate():
    JobRecord.objects.create(task_name="tests.jobs.add")
    planned = jobs_admin.planned_rows(JobRecord.objects.filter(status="pending"))
    assert isinstance(planned, int) and planned >= 0


def test_list_is_ordered_along_an_index_and_has_no_date_drilldown(viewer, running_job):
    response = viewer.get(reverse(CHANGELIST))
    cl = response.context["cl"]
    assert cl.date_hierarchy is None
    assert [str(o) for o in cl.get_ordering(response.wsgi_request, cl.root_queryset)] == [
        "-created_at",
        "-pk",
    ]
    index = next(i for i in JobRecord._meta.indexes if i.name == "jobprogress_created")
    assert index.fields == ["-created_at", "-id"]
    assert cl.model_admin.sortable_by == ("created_at",)


def test_list_leaves_large_columns_out(viewer, running_job):
    with CaptureQueriesContext(connection) as queries:
        viewer.get(reverse(CHANGELIST))
    listing = next(
        q["sql"]
        for q in queries.captured_queries
        if "ORDER BY" in q["sql"] and "jobrecord" in q["sql"]
    )
    for column in ("traceback", "result", "args", "kwargs"):
        assert f'"django_jobprogress_jobrecord"."{column}"' not in listing


# -- filters --------------------------------------------------------------------------


def test_task_and_queue_filters_offer_what_the_table_holds(viewer):
    JobRecord.objects.create(task_name="tests.jobs.add")
    JobRecord.objects.create(task_name="tests.jobs.send_newsletter", queue="mail")
    JobRecord.objects.create(task_name="other.place.add")
    content = viewer.get(reverse(CHANGELIST)).content.decode()
    assert "?task_name__exact=tests.jobs.send_newsletter" in content
    assert '<span title="tests.jobs.send_newsletter">send_newsletter</span>' in content
    # Two tasks named "add": the filter tells them apart by their full paths.
    assert ">tests.jobs.add</a>" in content and ">other.place.add</a>" in content
    assert "?queue__exact=mail" in content and "?queue__exact=" in content
    response = viewer.get(reverse(CHANGELIST), {"queue__exact": "mail"})
    assert [r.task_name for r in response.context["cl"].result_list] == [
        "tests.jobs.send_newsletter"
    ]


def test_distinct_values_reads_each_value_once_in_order():
    for name in ["b.task", "a.task", "b.task", "c.task"]:
        JobRecord.objects.create(task_name=name)
    assert jobs_admin.distinct_values(JobRecord, "task_name", 100) == ["a.task", "b.task", "c.task"]
    assert jobs_admin.distinct_values(JobRecord, "task_name", 2) == ["a.task", "b.task"]
    assert jobs_admin.distinct_values(JobRecord, "queue", 100) == [""]


def test_batch_filter_comes_from_links_and_never_lists_every_batch(viewer):
    batches = [Batch.objects.create(name=f"import {i}") for i in range(3)]
    member = JobRecord.objects.create(task_name="tests.jobs.add", batch=batches[1])
    JobRecord.objects.create(task_name="tests.jobs.add", batch=batches[0])
    content = viewer.get(reverse(CHANGELIST)).content.decode()
    assert "batch__id__exact" not in content and "import 0" not in content
    response = viewer.get(reverse(CHANGELIST), {"batch__id__exact": str(batches[1].pk)})
    assert list(response.context["cl"].result_list) == [member]
    content = response.content.decode()
    assert "import 1" in content and "import 0" not in content and "Clear all filters" in content
    bad = viewer.get(reverse(CHANGELIST), {"batch__id__exact": "nope"})
    assert bad.status_code == 302 and "e=1" in bad["Location"]


def test_filters_never_count_their_choices(viewer, running_job):
    response = viewer.get(reverse(CHANGELIST), {"_facets": "True"})
    assert response.status_code == 200
    assert not response.context["cl"].add_facets


# -- actions --------------------------------------------------------------------------


def test_cancel_action_needs_the_cancel_permission(client, make_user, running_job):
    client.force_login(make_user(staff=True, perms=VIEWER))
    response = client.get(reverse(CHANGELIST))
    assert b"cancel_jobs" not in response.content
    client.post(
        reverse(CHANGELIST), {"action": "cancel_jobs", "_selected_action": [running_job.pk]}
    )
    assert JobRecord.objects.get(pk=running_job.pk).cancel_requested_at is None

    canceller = make_user(staff=True, perms=[*VIEWER, "cancel_jobrecord"])
    client.force_login(canceller)
    assert b"cancel_jobs" in client.get(reverse(CHANGELIST)).content
    client.post(
        reverse(CHANGELIST), {"action": "cancel_jobs", "_selected_action": [running_job.pk]}
    )
    stored = JobRecord.objects.get(pk=running_job.pk)
    assert stored.cancel_requested_at is not None
    assert stored.cancel_requested_by == canceller


def test_cancel_action_reports_refusals_and_writes_the_history(client, make_user, running_job):
    done = ended(status="completed")
    pending = JobRecord.objects.create(task_name="tests.jobs.add")
    user = make_user(staff=True, perms=[*VIEWER, "cancel_jobrecord"])
    client.force_login(user)
    selected = [running_job.pk, done.pk, pending.pk]
    response = client.post(
        reverse(CHANGELIST), {"action": "cancel_jobs", "_selected_action": selected}
    )
    (text,) = messages_of(response)
    assert text.startswith("2 jobs cancelled or asked to stop.")
    assert "was not cancelled: it has already ended (Completed)." in text
    assert JobRecord.objects.get(pk=pending.pk).status == "cancelled"
    logged = LogEntry.objects.filter(user=user).values_list("object_id", "change_message")
    assert dict(logged) == {
        str(running_job.pk): f"add {str(running_job.pk)[:8]} asked to stop; "
        "it stops at its next checkpoint.",
        str(pending.pk): f"add {str(pending.pk)[:8]} cancelled.",
    }


def test_retry_action_needs_the_retry_permission(client, make_user, memory_queue):
    failed = ended(status="failed")
    client.force_login(make_user(staff=True, perms=VIEWER))
    assert b"retry_jobs" not in client.get(reverse(CHANGELIST)).content
    client.post(reverse(CHANGELIST), {"action": "retry_jobs", "_selected_action": [failed.pk]})
    assert not JobRecord.objects.filter(retry_of=failed.pk).exists()
    assert not LogEntry.objects.exists()


def test_retry_action_retries_failed_and_cancelled_jobs_and_refuses_the_rest(
    client, make_user, memory_queue, running_job
):
    failed = ended(status="failed")
    cancelled = ended(status="cancelled")
    completed = ended(status="completed", task_name="tests.jobs.add")
    user = make_user(staff=True, perms=[*VIEWER, "retry_jobrecord"])
    client.force_login(user)
    assert b"retry_jobs" in client.get(reverse(CHANGELIST)).content
    selected = [failed.pk, cancelled.pk, completed.pk, running_job.pk]
    response = client.post(
        reverse(CHANGELIST), {"action": "retry_jobs", "_selected_action": selected}
    )

    for original in (failed, cancelled):
        (retry,) = JobRecord.objects.filter(retry_of=original.pk)
        assert retry.status == "pending" and retry.task_name == original.task_name
    assert not JobRecord.objects.filter(retry_of__in=[completed.pk, running_job.pk]).exists()
    (text,) = messages_of(response)
    assert text.startswith("2 jobs retried.")
    assert (
        f"add {str(completed.pk)[:8]} was not retried: its status is “Completed”; "
        "only failed or cancelled jobs can be retried."
    ) in text
    assert f"add {str(running_job.pk)[:8]} was not retried: its status is “Running”" in text
    changed = LogEntry.objects.filter(user=user, object_id=str(failed.pk)).get()
    assert changed.is_change() and "retried as Explode" in changed.change_message
    retry = JobRecord.objects.get(retry_of=failed.pk)
    added = LogEntry.objects.filter(user=user, object_id=str(retry.pk)).get()
    assert added.is_addition() and added.change_message == f"Retry of Explode {str(failed.pk)[:8]}."


def test_retry_refuses_a_job_whose_key_is_held(client, make_user, memory_queue):
    failed = ended(status="failed", key="nightly")
    holder = JobRecord.objects.create(task_name="tests.jobs.Explode", key="nightly")
    client.force_login(make_user(staff=True, perms=[*VIEWER, "retry_jobrecord"]))
    response = client.post(
        reverse(CHANGELIST), {"action": "retry_jobs", "_selected_action": [failed.pk]}
    )
    (text,) = messages_of(response)
    assert f"job Explode {str(holder.pk)[:8]} holds its key “nightly”" in text
    assert not JobRecord.objects.filter(retry_of=failed.pk).exists()


def test_an_action_handles_at_most_its_limit(client, make_user, monkeypatch):
    monkeypatch.setattr(actions, "ACTION_LIMIT", 2)
    pending = [JobRecord.objects.create(task_name="tests.jobs.add") for _ in range(3)]
    client.force_login(make_user(staff=True, perms=[*VIEWER, "cancel_jobrecord"]))
    response = client.post(
        reverse(CHANGELIST),
        {"action": "cancel_jobs", "select_across": "1", "_selected_action": [pending[0].pk]},
    )
    (text,) = messages_of(response)
    assert text == (
        "2 jobs cancelled or asked to stop. Only the first 2 selected jobs were handled; "
        "run it again for the rest."
    )
    assert JobRecord.objects.filter(status="cancelled").count() == 2


def test_schedules_are_listed_read_only_with_when_they_run(client, make_user, settings):
    settings.JOBPROGRESS = {
        **settings.JOBPROGRESS,
        "SCHEDULES": {"nightly": {"task": "tests.jobs.add", "cron": "0 3 * * *"}},
    }
    scheduler.sync()
    client.force_login(make_user(staff=True, perms=["view_schedule"]))
    response = client.get(reverse("admin:django_jobprogress_schedule_changelist"))
    assert response.status_code == 200
    assert b"nightly" in response.content and b"cron 0 3 * * * (UTC)" in response.content
    assert b"addlink" not in response.content
