import pytest
from django.urls import reverse

from django_jobprogress import scheduler
from django_jobprogress.models import JobRecord
from tests.factories import start

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:django_jobprogress_jobrecord_changelist"


@pytest.fixture
def running_job():
    record = JobRecord.objects.create(task_name="tests.jobs.add")
    start(record)
    record.save_progress({"stage": "copying"})
    return record


def test_changelist_lists_jobs_with_their_progress(client, make_user, running_job):
    client.force_login(make_user(staff=True, perms=["view_jobrecord"]))
    response = client.get(reverse(CHANGELIST), {"status__exact": "running"})
    assert response.status_code == 200
    assert b"tests.jobs.add" in response.content and b"copying" in response.content


def test_cancel_action_needs_the_cancel_permission(client, make_user, running_job):
    client.force_login(make_user(staff=True, perms=["view_jobrecord"]))
    response = client.get(reverse(CHANGELIST))
    assert b"cancel_jobs" not in response.content
    client.post(
        reverse(CHANGELIST), {"action": "cancel_jobs", "_selected_action": [running_job.pk]}
    )
    assert JobRecord.objects.get(pk=running_job.pk).cancel_requested_at is None

    canceller = make_user(staff=True, perms=["view_jobrecord", "cancel_jobrecord"])
    client.force_login(canceller)
    assert b"cancel_jobs" in client.get(reverse(CHANGELIST)).content
    client.post(
        reverse(CHANGELIST), {"action": "cancel_jobs", "_selected_action": [running_job.pk]}
    )
    stored = JobRecord.objects.get(pk=running_job.pk)
    assert stored.cancel_requested_at is not None
    assert stored.cancel_requested_by == canceller


def test_user_text_is_escaped_in_the_admin(client, make_user):
    JobRecord.objects.create(task_name="tests.jobs.add", stage="<script>alert(1)</script>")
    client.force_login(make_user(staff=True, perms=["view_jobrecord"]))
    content = client.get(reverse(CHANGELIST)).content
    assert b"<script>alert(1)</script>" not in content
    assert b"&lt;script&gt;alert(1)&lt;/script&gt;" in content


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
