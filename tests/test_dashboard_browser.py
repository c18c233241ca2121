"""The admin in Chromium: a running job's bar moves live on the dashboard and its
Cancel button stops it; the job list's running rows move over the page's one
shared socket (or, without sockets, one poll per page) and show how they end.
Same stack as ``tests/test_browser.py`` (daphne and a qcluster on the live test
database, the embedded layer); every wait is a condition with a deadline."""

import time

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import MD5PasswordHasher
from django.contrib.auth.models import Permission

from django_jobprogress.models import JobRecord
from tests import test_browser
from tests.test_browser import (
    BAR,
    PASSWORD,
    RECORD_BAR,
    TIMEOUT_MS,
    TWO_INTERMEDIATE_VALUES,
    Visitor,
    embedded_only,
    job_row,
)

# The stack and the browser of tests/test_browser.py (fixtures: found by name).
_require_browser_services = test_browser._require_browser_services
close_executor_connections = test_browser.close_executor_connections
stack = test_browser.stack
browser = test_browser.browser

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

DASHBOARD = "/admin/django_jobprogress/jobrecord/dashboard/"
CHANGELIST = "/admin/django_jobprogress/jobrecord/?status__exact=running"
ROW_BADGE_IS = (
    "([bar, label]) => bar.closest('tr').querySelector('[data-jp-badge]').textContent === label"
)


def make_staff(username):
    hasher = MD5PasswordHasher()
    user = get_user_model().objects.create(
        username=username, password=hasher.encode(PASSWORD, hasher.salt()), is_staff=True
    )
    user.user_permissions.set(
        Permission.objects.filter(
            content_type__app_label="django_jobprogress",
            codename__in=["view_jobrecord", "cancel_jobrecord"],
        )
    )
    return user


def request_cancel(job_id):
    assert JobRecord.objects.get(pk=job_id).request_cancel()


def wait_until_running(job_id, timeout=TIMEOUT_MS / 1000):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if JobRecord.objects.filter(pk=job_id, status="running", progress__gt=0).exists():
            return True
        time.sleep(0.05)
    return False


@embedded_only
async def test_a_running_job_moves_live_on_the_dashboard_and_cancels_from_it(stack, browser):
    await sync_to_async(make_staff)("olga")
    context = await browser.new_context()
    try:
        await context.add_init_script(RECORD_BAR)
        page = await context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        olga = Visitor(stack, context, page)
        await olga.log_in("olga")
        job_id = await olga.start("export", count=300)  # about 20 s of work
        assert await sync_to_async(wait_until_running)(job_id), await sync_to_async(job_row)(job_id)

        await page.goto(stack.url + DASHBOARD)
        assert await page.title() != "" and "Jobs dashboard" in await page.inner_text("h1")
        assert int(await page.inner_text('[data-count="running"]')) >= 1
        bar = page.locator(f'[data-job-id="{job_id}"]')
        assert await bar.locator(BAR).count() == 1
        await olga.wait_for(TWO_INTERMEDIATE_VALUES, "two values between 0 and 100", job_id)

        cancel = bar.locator('[data-action="cancel"]')
        assert await cancel.is_visible()
        await cancel.click()
        await olga.wait_for(
            '(id) => document.querySelector(`[data-job-id="${id}"] [data-field="status"]`)'
            ".textContent === 'cancelled'",
            "the job to be cancelled",
            job_id,
            arg=job_id,
        )
        row = await sync_to_async(job_row)(job_id)
        assert row["status"] == "cancelled"
        assert 0 < row["progress"] < 0.75
        assert int(await bar.locator(BAR).get_attribute("aria-valuenow")) < 75
        assert await cancel.is_hidden()
        assert not olga.errors
    finally:
        await context.close()


async def open_running_row(browser, stack, username, *init_scripts):
    """Sign ``username`` in, start an export, and open the job list on its running
    row; return the visitor, the job's id, and the row's bar."""
    await sync_to_async(make_staff)(username)
    context = await browser.new_context()
    await context.add_init_script(RECORD_BAR)
    page = await context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    visitor = Visitor(stack, context, page)
    await visitor.log_in(username)
    job_id = await visitor.start("export", count=300)  # about 20 s of work
    assert await sync_to_async(wait_until_running)(job_id), await sync_to_async(job_row)(job_id)
    for script in init_scripts:
        await context.add_init_script(script)
    await page.close()  # with its own socket: only the list's page is counted below
    page = await context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    visitor = Visitor(stack, context, page)
    await page.goto(stack.url + CHANGELIST)
    bar = page.locator(f'[data-jp-live="{job_id}"]')
    assert await bar.locator(BAR).count() == 1
    return visitor, job_id, await bar.element_handle()


async def cancel_and_see_the_row_end(visitor, job_id, bar):
    await sync_to_async(request_cancel)(job_id)
    await visitor.wait_for(
        ROW_BADGE_IS, "the row to show Cancelled", job_id, arg=[bar, "Cancelled"]
    )
    assert await bar.get_attribute("data-jp-live") is None  # nothing more to follow
    assert "jp-minibar--cancelled" in await bar.get_attribute("class")
    row = await sync_to_async(job_row)(job_id)
    assert row["status"] == "cancelled"


@embedded_only
async def test_running_rows_of_the_job_list_move_over_one_shared_socket(stack, browser):
    piotr, job_id, bar = await open_running_row(browser, stack, "piotr")
    try:
        await piotr.wait_for(TWO_INTERMEDIATE_VALUES, "the row's bar to move", job_id)
        assert piotr.sockets == ["/ws/watch/"], stack.logs()
        assert any(frame.get("id") == job_id for frame in piotr.frames)
        await cancel_and_see_the_row_end(piotr, job_id, bar)
        assert piotr.sockets == ["/ws/watch/"], stack.logs()  # never a second one
        assert not piotr.errors
    finally:
        await piotr.context.close()


@embedded_only
async def test_without_sockets_the_job_list_polls_once_per_page(stack, browser):
    rosa, job_id, bar = await open_running_row(browser, stack, "rosa", "delete window.WebSocket;")
    try:
        polls = []
        rosa.page.on(
            "request",
            lambda request: polls.append(request.url) if "/live/" in request.url else None,
        )
        await rosa.wait_for(TWO_INTERMEDIATE_VALUES, "the row's bar to move", job_id)
        assert rosa.sockets == [] and polls
        assert all(url.count("id=") == 1 for url in polls)  # the page's one row, one request
        await cancel_and_see_the_row_end(rosa, job_id, bar)
        assert not rosa.errors
    finally:
        await rosa.context.close()
