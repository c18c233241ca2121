import json
import re

import pytest
from django.contrib.auth.models import AnonymousUser
from django.template import Context, Template, TemplateSyntaxError
from django.test import RequestFactory
from django.urls import set_script_prefix
from django.utils import translation

from django_jobprogress.models import JobRecord
from django_jobprogress.templatetags import jobprogress as tag
from tests.factories import start

pytestmark = pytest.mark.django_db


def render(source, user=None, **context):
    request = RequestFactory().get("/")
    request.user = user
    template = Template("{% load jobprogress %}" + source)
    return template.render(Context({"request": request, "csrf_token": "tok", **context}))


@pytest.fixture
def job(make_user):
    record = JobRecord.objects.create(task_name="tests.jobs.ZipExport", owner=make_user())
    start(record)
    record.save_progress({"progress": 0.42, "stage": "zipping", "message": "file 4"})
    return record


def test_renders_an_accessible_bar_with_the_snapshot(job):
    html = render("{% progress_bar job %}", user=job.owner, job=job)
    assert 'role="progressbar"' in html
    assert 'aria-valuenow="42"' in html and "42%" in html
    assert "zipping" in html and "file 4" in html
    assert f'data-ws-path="/ws/jobs/{job.pk}/"' in html
    assert f'data-json-url="/jp/jobs/{job.pk}/"' in html
    assert 'data-action="cancel"' in html
    embedded = re.search(r'<script type="application/json"[^>]*>(.*?)</script>', html, re.S)
    assert json.loads(embedded.group(1))["id"] == str(job.pk)


def test_a_site_served_under_a_prefix_gets_its_socket_under_it_too(job):
    set_script_prefix("/app/")
    try:
        html = render("{% progress_bar job %}", user=job.owner, job=job)
    finally:
        set_script_prefix("/")
    assert f'data-ws-path="/app/ws/jobs/{job.pk}/"' in html
    assert f'data-json-url="/app/jp/jobs/{job.pk}/"' in html


def test_accepts_the_job_id_and_options(job):
    html = render(
        '{% progress_bar job_id size="lg" label="Export" %}', user=job.owner, job_id=str(job.pk)
    )
    assert "jobprogress--lg" in html and ">Export<" in html


def test_no_cancel_button_for_a_viewer_who_may_not_cancel(job, make_user):
    viewer = make_user(staff=True, perms=["view_jobrecord"])
    html = render("{% progress_bar job %}", user=viewer, job=job)
    assert 'role="progressbar"' in html and "file 4" in html
    assert 'data-action="cancel"' not in html


@pytest.mark.parametrize("who", ["stranger", "anonymous", "staff without the permission"])
def test_a_viewer_who_may_not_see_the_job_learns_nothing_about_it(job, make_user, who):
    user = {
        "stranger": make_user(),
        "anonymous": AnonymousUser(),
        "staff without the permission": make_user(staff=True),
    }[who]
    html = render("{% progress_bar job %}", user=user, job=job)
    assert "not available to you" in html
    for secret in (str(job.pk), "zipping", "file 4", "42", "ZipExport", "/ws/"):
        assert secret not in html
    # The same for a wrong token.
    html = render("{% progress_bar job token=t %}", user=user, job=job, t="forged")
    assert "not available to you" in html and str(job.pk) not in html


def test_token_lets_a_viewer_without_a_session_follow_and_cancel(job):
    token = job.access_token()  # once: a token made a second later differs
    html = render("{% progress_bar job token=t %}", user=AnonymousUser(), job=job, t=token)
    assert 'role="progressbar"' in html and "file 4" in html
    assert 'data-action="cancel"' in html and token in html


def test_user_text_is_escaped(make_user):
    record = JobRecord.objects.create(task_name="tests.jobs.add", owner=make_user())
    start(record)
    record.save_progress({"stage": "<img src=x onerror=alert(1)>", "message": "</script><b>"})
    html = render("{% progress_bar job %}", user=record.owner, job=record)
    assert "<img src=x" not in html and "</script><b>" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html


def test_bad_size_is_named():
    with pytest.raises(TemplateSyntaxError, match="size must be one of sm, md, lg, got 'xl'"):
        render('{% progress_bar "00000000-0000-0000-0000-000000000000" size="xl" %}')


@pytest.fixture
def batch(make_user, memory_queue):
    from django_jobprogress.models import Batch
    from tests import jobs

    with Batch.open("weekly blast", owner=make_user()) as opened:
        jobs.add.enqueue(1, 2, batch=opened)
    return opened


NOT_IDS = [
    "00000000-0000-0000-0000-000000000000",  # well formed, names nothing
    "not-a-uuid",
    "0b5c6a8e-2f0a-4c61-9a59",  # cut short
    "'; DROP TABLE jobs; --",
    42,
    None,
    "",
]


@pytest.mark.parametrize("kind", ["job", "batch"])
@pytest.mark.parametrize("value", NOT_IDS, ids=repr)
def test_an_id_that_names_nothing_renders_the_placeholder(request, kind, value):
    owned = request.getfixturevalue(kind)
    html = render("{% progress_bar value %}", user=owned.owner, value=value)
    # The very placeholder a viewer who may not see a real job or batch gets.
    assert html == render("{% progress_bar owned %}", user=AnonymousUser(), owned=owned)
    assert "not available to you" in html
    for secret in (str(owned.pk), "/ws/", "/jp/", 'role="progressbar"', "data-action"):
        assert secret not in html


def test_a_missing_variable_renders_the_placeholder(job):
    html = render("{% progress_bar no_such_variable %}", user=job.owner)
    assert "not available to you" in html and 'role="progressbar"' not in html


@pytest.mark.parametrize("kind", ["job", "batch"])
def test_a_valid_id_string_or_uuid_still_renders_the_bar(request, kind):
    owned = request.getfixturevalue(kind)
    path = {"job": "jobs", "batch": "batches"}[kind]
    for value in (str(owned.pk), owned.pk):
        html = render("{% progress_bar value %}", user=owned.owner, value=value)
        assert 'role="progressbar"' in html
        assert f'data-ws-path="/ws/{path}/{owned.pk}/"' in html
    # Still guarded: the id alone shows nothing to someone who may not see it.
    html = render("{% progress_bar value %}", user=AnonymousUser(), value=str(owned.pk))
    assert "not available to you" in html and str(owned.pk) not in html


@pytest.mark.parametrize("token", [42, "", None, "not-a-token", "a:b:c"], ids=repr)
def test_a_token_that_is_not_one_renders_the_placeholder(job, token):
    html = render("{% progress_bar job token=t %}", user=AnonymousUser(), job=job, t=token)
    assert "not available to you" in html and str(job.pk) not in html


def test_staff_who_may_only_cancel_see_the_placeholder(job, make_user):
    """The bar shows the job, so it needs the view permission; cancelling alone
    does not show it (see docs/http.rst, "Who may see or cancel")."""
    html = render(
        "{% progress_bar job %}", user=make_user(staff=True, perms=["cancel_jobrecord"]), job=job
    )
    assert "not available to you" in html and str(job.pk) not in html
    both = make_user(staff=True, perms=["view_jobrecord", "cancel_jobrecord"])
    html = render("{% progress_bar job %}", user=both, job=job)
    assert 'role="progressbar"' in html and 'data-action="cancel"' in html


def test_renders_a_batch_with_its_counts(make_user, memory_queue):
    from django_jobprogress.models import Batch
    from tests import jobs

    owner = make_user()
    with Batch.open("weekly blast", owner=owner) as batch:
        for n in range(3):
            jobs.add.enqueue(n, n, batch=batch)
    html = render("{% progress_bar batch %}", user=owner, batch=batch)
    assert f'data-ws-path="/ws/batches/{batch.pk}/"' in html
    assert "weekly blast" in html and "0 of 3 done" in html
    assert 'data-action="cancel"' in html


def test_a_batch_given_its_counts_reads_nothing_and_shows_the_same(
    make_user, memory_queue, django_assert_num_queries
):
    from django_jobprogress.models import Batch
    from tests import jobs

    owner = make_user()
    with Batch.open("weekly blast", owner=owner) as batch:
        first = jobs.add.enqueue(1, 1, batch=batch)
        jobs.add.enqueue(2, 2, batch=batch)
    start(first).save_progress({"progress": 0.5})
    counts = batch.live_counts()
    assert counts == {"pending": 1, "running": 1, "running_progress": 0.5}
    source = "{% progress_bar batch counts=counts %}"
    with django_assert_num_queries(0):
        given = render(source, user=owner, batch=batch, counts=counts)
    read = render("{% progress_bar batch %}", user=owner, batch=batch)
    assert 'aria-valuenow="25"' in given
    updated = re.compile(r'&quot;updated&quot;: &quot;[^&]*&quot;|"updated": "[^"]*"')
    assert updated.sub("", given) == updated.sub("", read)


def test_the_bar_s_texts_come_translated_for_the_script(job, monkeypatch):
    # A stand-in catalog that shouts: every text of the bar must come through it.
    translation.gettext("")  # let Django pick its translation backend first
    monkeypatch.setattr(translation._trans, "gettext", lambda message: message.upper())
    monkeypatch.setattr(translation._trans, "pgettext", lambda context, message: message.upper())
    html = render("{% progress_bar job %}", user=job.owner, job=job)
    found = re.search(r'data-labels="([^"]*)"', html)
    labels = json.loads(found.group(1).replace("&quot;", '"'))
    assert labels["running"] == "RUNNING" and labels["eta_s"] == "ABOUT %(N)S S LEFT"
    assert '<span data-field="status" aria-live="polite">RUNNING</span>' in html
    assert ">CANCEL</button>" in html
    assert set(labels) == set(tag.LABELS)
