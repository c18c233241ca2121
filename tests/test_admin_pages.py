"""The admin's pages for one job and one batch: layout, buttons, links, escaping."""

import json

import pytest
from django.contrib.admin.models import LogEntry
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from django_jobprogress.models import Batch, JobRecord
from tests import jobs
from tests.factories import start
from tests.test_admin import ended, messages_of

pytestmark = pytest.mark.django_db

VIEWER = ["view_jobrecord"]
SCRIPT = "<script>alert(1)</script>"
IMG = '"><img src=x onerror=alert(1)>'


def change_url(record):
    return reverse("admin:django_jobprogress_jobrecord_change", args=[record.pk])


def cancel_url(record):
    return reverse("admin:django_jobprogress_jobrecord_cancel", args=[record.pk])


def retry_url(record):
    return reverse("admin:django_jobprogress_jobrecord_retry", args=[record.pk])


@pytest.fixture
def running_job(memory_queue):
    record = start(jobs.ZipExport.enqueue(["a", "b", "c", "d"]), host="w1", pid=42)
    record.save_progress({"stage": "zipping", "progress": 0.25, "current": 1, "total": 4})
    return record


# -- a job's page ---------------------------------------------------------------------


def test_job_page_shows_its_live_bar_first_and_its_fields_in_sections(
    client, make_user, running_job
):
    client.force_login(make_user(staff=True, perms=VIEWER))
    content = client.get(change_url(running_job)).content.decode()
    bar = content.index('data-jobprogress="job"')
    assert bar < content.index("<fieldset")
    assert 'aria-label="Job status"' in content and "django_jobprogress/admin.css" in content
    assert f'data-ws-path="/ws/jobs/{running_job.pk}/"' in content
    assert content.count("data-ws-path") == 1  # one socket for the page
    assert '<span class="jp-badge jp-badge--running" data-jp-badge>Running</span>' in content
    assert "25% (1 of 4)" in content
    assert "1 of 1" in content  # attempts
    assert "w1, pid 42" in content
    assert '<div class="readonly">None</div>' not in content  # nothing to show reads "-"
    for section in ("Outcome", "Timeline", "Run", "Limits", "Arguments"):
        assert f">{section}</" in content, section
    assert content.index(">Arguments</") > content.index(">Timeline</")


def test_job_page_preformats_result_error_and_traceback(client, make_user):
    failed = ended(status="failed")
    completed = ended(status="completed", task_name="tests.jobs.add")
    client.force_login(make_user(staff=True, perms=VIEWER))
    content = client.get(change_url(failed)).content.decode()
    assert '<pre class="jp-pre jp-pre--error">boom</pre>' in content
    traceback = "Traceback:\n  File &quot;x.py&quot;\n    raise ValueError"
    assert f'<pre class="jp-pre">{traceback}</pre>' in content
    content = client.get(change_url(completed)).content.decode()
    assert '<pre class="jp-pre">{\n  &quot;ok&quot;: true\n}</pre>' in content


def test_job_page_shows_a_timeline_with_who_asked_to_cancel(client, make_user, running_job):
    viewer = make_user(staff=True, perms=VIEWER, username="operator")
    running_job.request_cancel(by=viewer)
    client.force_login(viewer)
    content = client.get(change_url(running_job)).content.decode()
    timeline = content[content.index('<ol class="jp-timeline">') :]
    timeline = timeline[: timeline.index("</ol>")]
    whats = [part.split("</span>")[0] for part in timeline.split('jp-timeline__what">')[1:]]
    assert whats == ["created", "started", "last progress", "last heartbeat", "cancel requested"]
    assert "by operator" in timeline


def test_job_page_links_its_batch_the_job_it_retries_and_its_retries(
    client, make_user, memory_queue
):
    batch = Batch.objects.create(name="nightly import")
    failed = ended(status="failed", batch=batch)
    retry = failed.retry()
    client.force_login(make_user(staff=True, perms=[*VIEWER, "view_batch"]))
    content = client.get(change_url(failed)).content.decode()
    batch_url = reverse("admin:django_jobprogress_batch_change", args=[batch.pk])
    assert f'<a href="{batch_url}">nightly import</a>' in content
    assert f'<a href="{change_url(retry)}">Explode {str(retry.pk)[:8]}</a>' in content
    content = client.get(change_url(retry)).content.decode()
    assert f'<a href="{change_url(failed)}">Explode {str(failed.pk)[:8]}</a>' in content


def test_a_pruned_original_is_named_not_linked(client, make_user, memory_queue):
    failed = ended(status="failed")
    retry = failed.retry()
    original_id = failed.pk
    failed.delete()
    client.force_login(make_user(staff=True, perms=VIEWER))
    content = client.get(change_url(retry)).content.decode()
    assert f"<code>{original_id}</code> (deleted)" in content


def test_unfinished_jobs_offer_no_delete(client, make_user, running_job):
    done = ended(status="completed", task_name="tests.jobs.add")
    client.force_login(make_user(staff=True, perms=[*VIEWER, "delete_jobrecord"]))
    assert b"deletelink" not in client.get(change_url(running_job)).content
    delete = reverse("admin:django_jobprogress_jobrecord_delete", args=[running_job.pk])
    assert client.post(delete, {"post": "yes"}).status_code == 403
    assert JobRecord.objects.filter(pk=running_job.pk).exists()
    assert b"deletelink" in client.get(change_url(done)).content


# -- the Cancel and Retry buttons ---------------------------------------------------------


def test_cancel_button_is_shown_only_with_the_permission(client, make_user, running_job):
    client.force_login(make_user(staff=True, perms=VIEWER))
    content = client.get(change_url(running_job)).content.decode()
    assert cancel_url(running_job) not in content
    assert client.post(cancel_url(running_job)).status_code == 403
    assert JobRecord.objects.get(pk=running_job.pk).cancel_requested_at is None

    client.force_login(make_user(staff=True, perms=[*VIEWER, "cancel_jobrecord"]))
    content = client.get(change_url(running_job)).content.decode()
    assert f'<form method="post" action="{cancel_url(running_job)}">' in content
    assert "Cancel job" in content


def test_cancel_button_asks_the_job_to_stop_and_writes_the_history(client, make_user, running_job):
    user = make_user(staff=True, perms=[*VIEWER, "cancel_jobrecord"])
    client.force_login(user)
    response = client.post(cancel_url(running_job))
    assert response.status_code == 302 and response["Location"] == change_url(running_job)
    stored = JobRecord.objects.get(pk=running_job.pk)
    assert stored.cancel_requested_at is not None and stored.cancel_requested_by == user
    label = f"ZipExport {str(running_job.pk)[:8]}"
    assert messages_of(response) == [f"{label} asked to stop; it stops at its next checkpoint."]
    entry = LogEntry.objects.get(user=user)
    assert entry.is_change() and entry.object_id == str(running_job.pk)
    assert entry.change_message == f"{label} asked to stop; it stops at its next checkpoint."
    # Asked once: the page no longer offers the button.
    assert cancel_url(running_job) not in client.get(change_url(running_job)).content.decode()


def test_cancel_button_refuses_a_job_past_its_threshold(client, make_user, running_job):
    running_job.save_progress({"progress": 0.8})  # ZipExport: uncancellable from 0.75
    client.force_login(make_user(staff=True, perms=[*VIEWER, "cancel_jobrecord"]))
    assert cancel_url(running_job) not in client.get(change_url(running_job)).content.decode()
    response = client.post(cancel_url(running_job))
    assert messages_of(response) == [
        f"ZipExport {str(running_job.pk)[:8]} was not cancelled: "
        "it is past its cancel threshold (75%)."
    ]
    assert not LogEntry.objects.exists()


def test_buttons_take_only_post_with_a_csrf_token(make_user, running_job):
    client = Client(enforce_csrf_checks=True)
    client.force_login(make_user(staff=True, perms=[*VIEWER, "cancel_jobrecord"]))
    assert client.get(cancel_url(running_job)).status_code == 405
    assert client.post(cancel_url(running_job)).status_code == 403
    assert JobRecord.objects.get(pk=running_job.pk).cancel_requested_at is None


def test_buttons_for_an_unknown_job_go_back_to_the_list(client, make_user):
    client.force_login(make_user(staff=True, perms=[*VIEWER, "cancel_jobrecord"]))
    missing = JobRecord(task_name="tests.jobs.add")
    response = client.post(cancel_url(missing))
    assert response["Location"] == reverse("admin:django_jobprogress_jobrecord_changelist")


def test_retry_button_is_shown_only_with_the_permission_on_a_retryable_job(
    client, make_user, memory_queue, running_job
):
    failed = ended(status="failed")
    client.force_login(make_user(staff=True, perms=VIEWER))
    assert retry_url(failed) not in client.get(change_url(failed)).content.decode()
    assert client.post(retry_url(failed)).status_code == 403
    assert not JobRecord.objects.filter(retry_of=failed.pk).exists()

    client.force_login(make_user(staff=True, perms=[*VIEWER, "retry_jobrecord"]))
    content = client.get(change_url(failed)).content.decode()
    assert f'<form method="post" action="{retry_url(failed)}">' in content
    assert "Retry job" in content
    assert retry_url(running_job) not in client.get(change_url(running_job)).content.decode()


def test_retry_button_enqueues_a_new_job_and_shows_it(client, make_user, memory_queue):
    failed = ended(status="failed")
    user = make_user(staff=True, perms=[*VIEWER, "retry_jobrecord"])
    client.force_login(user)
    response = client.post(retry_url(failed))
    retry = JobRecord.objects.get(retry_of=failed.pk)
    assert retry.status == "pending" and retry.owner is None
    assert response["Location"] == change_url(retry)
    label, new = f"Explode {str(failed.pk)[:8]}", f"Explode {str(retry.pk)[:8]}"
    assert messages_of(response) == [f"{label} retried as {new}."]
    assert LogEntry.objects.get(user=user, object_id=str(failed.pk)).is_change()
    assert LogEntry.objects.get(user=user, object_id=str(retry.pk)).is_addition()


def test_retry_button_refuses_a_completed_job(client, make_user, memory_queue):
    done = ended(status="completed", task_name="tests.jobs.add")
    client.force_login(make_user(staff=True, perms=[*VIEWER, "retry_jobrecord"]))
    response = client.post(retry_url(done))
    assert response["Location"] == change_url(done)
    assert messages_of(response) == [
        f"add {str(done.pk)[:8]} was not retried: its status is “Completed”; "
        "only failed or cancelled jobs can be retried."
    ]
    assert not JobRecord.objects.filter(retry_of=done.pk).exists()
    assert not LogEntry.objects.exists()


# -- a batch's page -------------------------------------------------------------------------


def test_batch_page_shows_twenty_members_and_links_to_the_rest(client, make_user):
    batch = Batch.objects.create(name="big", total=300, sealed=True, status="running")
    JobRecord.objects.bulk_create(
        [JobRecord(task_name="tests.jobs.add", batch=batch, stage=f"s{i}") for i in range(300)]
    )
    client.force_login(make_user(staff=True, perms=["view_batch", *VIEWER]))
    url = reverse("admin:django_jobprogress_batch_change", args=[batch.pk])
    with CaptureQueriesContext(connection) as queries:
        content = client.get(url).content.decode()
    job_queries = [q for q in queries.captured_queries if "jobrecord" in q["sql"]]
    assert len(job_queries) <= 3, [q["sql"] for q in job_queries]  # never one per member
    members = content[content.index("jp-members") :]
    assert members.count('<td><a href="/admin/django_jobprogress/jobrecord/') == 20
    listing = reverse("admin:django_jobprogress_jobrecord_changelist")
    link = f'href="{listing}?batch__id__exact={batch.pk}">'
    assert f"{link}All 300 members in the job list" in content
    assert 'data-jobprogress="batch"' in content
    # The head the job's page shares: the bar above the fields, the admin's stylesheet.
    assert 'aria-label="Batch status"' in content
    assert content.index('data-jobprogress="batch"') < content.index("<fieldset")
    assert "django_jobprogress/admin.css" in content
    assert f"?batch__id__exact={batch.pk}&amp;status__exact=pending" in content  # counters
    response = client.get(listing, {"batch__id__exact": str(batch.pk)})
    assert response.context["cl"].paginator.count == 300


def test_batch_page_without_the_job_permission_shows_no_members(client, make_user):
    batch = Batch.objects.create(name="big")
    JobRecord.objects.create(task_name="tests.jobs.add", batch=batch)
    client.force_login(make_user(staff=True, perms=["view_batch"]))
    url = reverse("admin:django_jobprogress_batch_change", args=[batch.pk])
    assert b"jp-members" not in client.get(url).content


def test_batch_page_shows_its_callbacks_and_the_job_they_became(client, make_user, memory_queue):
    with Batch.open("empty", on_complete=jobs.batch_callback) as batch:
        pass  # sealed with no members: finished at once, its callback enqueued
    batch.refresh_from_db()
    callback = JobRecord.objects.get(task_name="tests.jobs.batch_callback")
    client.force_login(make_user(staff=True, perms=["view_batch", *VIEWER]))
    content = client.get(reverse("admin:django_jobprogress_batch_change", args=[batch.pk]))
    content = content.content.decode()
    callbacks = content[content.index('<table class="jp-callbacks">') :]
    callbacks = callbacks[: callbacks.index("</table>")]
    assert "on complete" in callbacks
    assert '<span title="tests.jobs.batch_callback">batch_callback</span>' in callbacks
    assert f'href="{change_url(callback)}">batch_callback {str(callback.pk)[:8]}</a>' in callbacks


def test_unfinished_batches_offer_no_delete(client, make_user):
    batch = Batch.objects.create(name="open one")
    client.force_login(make_user(staff=True, perms=["view_batch", "delete_batch"]))
    url = reverse("admin:django_jobprogress_batch_change", args=[batch.pk])
    assert b"deletelink" not in client.get(url).content


def test_batch_search_by_id_uses_the_primary_key(client, make_user):
    wanted = Batch.objects.create(name="a")
    Batch.objects.create(name="b")
    client.force_login(make_user(staff=True, perms=["view_batch"]))
    response = client.get(reverse("admin:django_jobprogress_batch_changelist"), {"q": wanted.pk})
    assert list(response.context["cl"].result_list) == [wanted]


# -- escaping -------------------------------------------------------------------------------


@pytest.fixture
def hostile_job():
    batch = Batch.objects.create(name=f"{SCRIPT}{IMG}")
    record = JobRecord.objects.create(
        task_name=f"tests.jobs.{IMG}{SCRIPT}",
        args=[SCRIPT, IMG],
        kwargs={IMG: SCRIPT},
        key=f"{SCRIPT}{IMG}",
        queue=IMG,
        batch=batch,
    )
    start(record, host=SCRIPT)
    record.save_progress(
        {"stage": f"{SCRIPT}{IMG}", "message": f"{IMG}{SCRIPT}", "fields": {IMG: SCRIPT}}
    )
    record.fail(f"{SCRIPT}{IMG}", traceback=f"{IMG}\n  {SCRIPT}")
    JobRecord.objects.filter(pk=record.pk).update(result={"html": SCRIPT, IMG: IMG})
    record.refresh_from_db()
    return record


def test_every_user_text_is_inert_on_the_admin_pages(client, make_user, hostile_job):
    client.force_login(make_user(staff=True, perms=[*VIEWER, "view_batch", "retry_jobrecord"]))
    batch_url = reverse("admin:django_jobprogress_batch_change", args=[hostile_job.batch_id])
    changelist = reverse("admin:django_jobprogress_jobrecord_changelist")
    pages = {
        "list": client.get(changelist),
        "filtered": client.get(changelist, {"batch__id__exact": str(hostile_job.batch_id)}),
        "search": client.get(changelist, {"q": SCRIPT}),
        "job": client.get(change_url(hostile_job)),
        "batch": client.get(batch_url),
        "batches": client.get(reverse("admin:django_jobprogress_batch_changelist")),
    }
    for name, response in pages.items():
        assert response.status_code == 200, name
        content = response.content.decode()
        assert SCRIPT not in content, name
        assert "<img src=x" not in content, name
    job_page = pages["job"].content.decode()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in job_page
    assert "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;" in job_page


def test_messages_about_a_hostile_job_are_escaped(client, make_user, hostile_job):
    client.force_login(make_user(staff=True, perms=[*VIEWER, "retry_jobrecord"]))
    response = client.post(retry_url(hostile_job), follow=True)  # its task cannot be loaded
    content = response.content.decode()
    assert "was not retried: its task" in content
    assert SCRIPT not in content and "<img src=x" not in content


def test_live_endpoint_sends_text_as_json_data(client, make_user, hostile_job):
    client.force_login(make_user(staff=True, perms=VIEWER))
    response = client.get(
        reverse("admin:django_jobprogress_jobrecord_live"), {"id": str(hostile_job.pk)}
    )
    assert response["Content-Type"] == "application/json"
    assert json.loads(response.content)["jobs"][str(hostile_job.pk)]["stage"] == f"{SCRIPT}{IMG}"
