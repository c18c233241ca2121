import pytest
from django.urls import reverse

from django_jobprogress.models import JobRecord
from tests.factories import start

pytestmark = pytest.mark.django_db


@pytest.fixture
def job(make_user):
    owner = make_user(username="owner")
    record = JobRecord.objects.create(task_name="tests.jobs.add", owner=owner)
    start(record)
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


NOT_FOUND = {"error": "not found"}


@pytest.fixture
def pending_job(make_user):
    return JobRecord.objects.create(task_name="tests.jobs.add", owner=make_user())


@pytest.fixture
def open_batch(make_user, memory_queue):
    from django_jobprogress.models import Batch
    from tests import jobs

    with Batch.open("blast", owner=make_user()) as opened:
        jobs.add.enqueue(1, 2, batch=opened)
    return opened


def urls(obj):
    kind = "batch" if obj._meta.model_name == "batch" else "job"
    return (
        reverse(f"django_jobprogress:{kind}-detail", args=[obj.pk]),
        reverse(f"django_jobprogress:{kind}-cancel", args=[obj.pk]),
    )


@pytest.mark.parametrize("kind", ["pending_job", "open_batch"])
def test_unknown_hidden_and_malformed_ids_get_one_json_404(request, client, make_user, kind):
    obj = request.getfixturevalue(kind)
    path = "batches" if kind == "open_batch" else "jobs"
    unknown = f"/jp/{path}/00000000-0000-0000-0000-000000000000/"
    answers = [
        client.get(unknown),
        client.post(unknown + "cancel/"),
        client.get(f"/jp/{path}/not-a-uuid/"),
        client.post(f"/jp/{path}/not-a-uuid/cancel/"),
        client.get(urls(obj)[0]),  # anonymous
        client.post(urls(obj)[1]),
    ]
    client.force_login(make_user())  # a stranger
    answers += [client.get(urls(obj)[0]), client.post(urls(obj)[1])]
    for response in answers:
        assert response.status_code == 404
        assert response["Content-Type"] == "application/json"
        assert response.json() == NOT_FOUND
        assert "no-cache" in response["Cache-Control"]
    assert type(obj).objects.get(pk=obj.pk).cancel_requested_at is None


@pytest.mark.parametrize("kind", ["pending_job", "open_batch"])
def test_wrong_methods_get_a_json_405_that_names_the_allowed_one(request, client, kind):
    obj = request.getfixturevalue(kind)
    client.force_login(obj.owner)
    detail_url, cancel_url = urls(obj)
    for response, allowed in [
        (client.post(detail_url), "GET"),
        (client.put(detail_url), "GET"),
        (client.get(cancel_url), "POST"),
        (client.delete(cancel_url), "POST"),
    ]:
        assert response.status_code == 405
        assert response["Allow"] == allowed
        assert response.json() == {"error": "method not allowed", "allowed": [allowed]}
        assert "no-cache" in response["Cache-Control"]
    assert type(obj).objects.get(pk=obj.pk).cancel_requested_at is None


def test_staff_who_may_only_cancel_can_cancel_a_job_they_cannot_see(client, pending_job, make_user):
    client.force_login(make_user(staff=True, perms=["cancel_jobrecord"]))
    detail_url, cancel_url = urls(pending_job)
    assert client.get(detail_url).json() == NOT_FOUND
    response = client.post(cancel_url)
    assert response.status_code == 200
    assert response.json()["cancelled"] is True
    assert response.json()["snapshot"]["status"] == "cancelled"
    assert JobRecord.objects.get(pk=pending_job.pk).status == JobRecord.Status.CANCELLED


def test_staff_who_may_only_cancel_can_cancel_a_batch(client, open_batch, make_user):
    client.force_login(make_user(staff=True, perms=["cancel_batch"]))
    detail_url, cancel_url = urls(open_batch)
    assert client.get(detail_url).status_code == 404
    response = client.post(cancel_url)
    assert response.status_code == 200
    assert response.json()["cancelled"] is True
    assert response.json()["snapshot"]["id"] == str(open_batch.pk)
    member = JobRecord.objects.get(batch_id=open_batch.pk)
    assert member.status == JobRecord.Status.CANCELLED


def test_a_job_permission_does_not_cancel_a_batch(client, open_batch, make_user):
    client.force_login(make_user(staff=True, perms=["view_jobrecord", "cancel_jobrecord"]))
    assert client.post(urls(open_batch)[1]).json() == NOT_FOUND
    assert JobRecord.objects.get(batch_id=open_batch.pk).status == JobRecord.Status.PENDING


@pytest.mark.parametrize(
    ("kind", "perm"), [("pending_job", "view_jobrecord"), ("open_batch", "view_batch")]
)
def test_staff_who_may_only_view_get_403_on_cancel(request, client, make_user, kind, perm):
    obj = request.getfixturevalue(kind)
    client.force_login(make_user(staff=True, perms=[perm]))
    detail_url, cancel_url = urls(obj)
    assert client.get(detail_url).status_code == 200
    response = client.post(cancel_url)
    assert response.status_code == 403
    assert response.json() == {"cancelled": False, "reason": "not allowed"}
    assert type(obj).objects.get(pk=obj.pk).cancel_requested_at is None


GARBAGE_TOKENS = ["garbage", "a:b:c", ":", "x" * 5000, "é☃\x00", "..", "%ff"]


@pytest.mark.parametrize("kind", ["pending_job", "open_batch"])
@pytest.mark.parametrize("token", GARBAGE_TOKENS, ids=lambda t: repr(t[:12]))
def test_a_garbage_token_is_404_not_500(request, client, kind, token):
    obj = request.getfixturevalue(kind)
    detail_url, cancel_url = urls(obj)
    assert client.get(detail_url, {"token": token}).json() == NOT_FOUND
    assert client.post(cancel_url, {"token": token}).json() == NOT_FOUND
    assert type(obj).objects.get(pk=obj.pk).cancel_requested_at is None


def test_a_token_for_another_object_is_404(client, pending_job, open_batch):
    for url, token in [
        (urls(pending_job)[0], open_batch.access_token()),
        (urls(open_batch)[0], pending_job.access_token()),
    ]:
        response = client.get(url, {"token": token})
        assert (response.status_code, response.json()) == (404, NOT_FOUND)


def test_a_form_body_that_cannot_be_parsed_is_a_json_400(client, pending_job):
    response = client.post(
        urls(pending_job)[1], data=b"garbage", content_type="multipart/form-data"
    )
    assert response.status_code == 400
    assert response.json() == {"error": "bad request"}
    assert JobRecord.objects.get(pk=pending_job.pk).status == JobRecord.Status.PENDING
