import pytest
from django.urls import reverse

from django_jobprogress.models import JobRecord

pytestmark = pytest.mark.django_db


@pytest.fixture
def job(make_user):
    owner = make_user(username="owner")
    record = JobRecord.objects.create(task_name="tests.jobs.add", owner=owner)
    record.claim(host="h", pid=1)
    return record


def detail(record):
    return reverse("django_jobprogress:job-detail", args=[record.pk])


def cancel(record):
    return reverse("django_jobprogress:job-cancel", args=[record.pk])


def test_owner_reads_the_snapshot(client, job):
    client.force_login(job.owner)
    response = client.get(detail(job))
    assert response.status_code == 200
    assert response.json() == JobRecord.objects.get(pk=job.pk).snapshot()
    assert "no-cache" in response["Cache-Control"]


def test_stranger_and_anonymous_get_404(client, job, make_user):
    assert client.get(detail(job)).status_code == 404
    client.force_login(make_user())
    assert client.get(detail(job)).status_code == 404
    assert client.post(cancel(job)).status_code == 404
    assert JobRecord.objects.get(pk=job.pk).cancel_requested_at is None


def test_token_holder_reads_and_cancels(client, job):
    token = job.access_token()
    response = client.get(detail(job), {"token": token})
    assert response.status_code == 200 and response.json()["id"] == str(job.pk)
    response = client.post(cancel(job) + f"?token={token}")
    assert response.status_code == 200 and response.json()["cancelled"] is True
    assert client.get(detail(job), {"token": "forged"}).status_code == 404


def test_staff_need_the_model_permissions(client, job, make_user):
    client.force_login(make_user(staff=True))
    assert client.get(detail(job)).status_code == 404
    client.force_login(make_user(staff=True, perms=["view_jobrecord"]))
    assert client.get(detail(job)).status_code == 200
    assert client.post(cancel(job)).status_code == 403
    client.force_login(make_user(staff=True, perms=["view_jobrecord", "cancel_jobrecord"]))
    assert client.post(cancel(job)).status_code == 200


def test_cancel_refused_is_409_with_the_reason(client, job):
    JobRecord.objects.get(pk=job.pk).complete("done")
    client.force_login(job.owner)
    response = client.post(cancel(job))
    assert response.status_code == 409
    assert response.json()["reason"] == "already finished"
    assert response.json()["snapshot"]["status"] == "completed"


def test_bad_ids_are_404_and_wrong_methods_405(client, job):
    client.force_login(job.owner)
    assert client.get("/jp/jobs/not-a-uuid/").status_code == 404
    assert client.get("/jp/jobs/00000000-0000-0000-0000-000000000000/").status_code == 404
    assert client.post(detail(job)).status_code == 405
    assert client.get(cancel(job)).status_code == 405


@pytest.fixture
def batch(make_user):
    from django_jobprogress.models import Batch

    with Batch.open("blast", owner=make_user(username="batch-owner")) as opened:
        pass
    return opened


def test_batch_snapshot_follows_the_same_rules(client, batch, make_user):
    url = reverse("django_jobprogress:batch-detail", args=[batch.pk])
    assert client.get(url).status_code == 404
    client.force_login(make_user())
    assert client.get(url).status_code == 404
    assert client.get(url, {"token": batch.access_token()}).json()["id"] == str(batch.pk)
    client.force_login(batch.owner)
    body = client.get(url).json()
    assert (body["kind"], body["status"], body["total"]) == ("batch", "completed", 0)
    cancel = reverse("django_jobprogress:batch-cancel", args=[batch.pk])
    assert client.post(cancel).status_code == 409  # already finished
