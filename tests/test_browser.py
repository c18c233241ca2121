"""The example site in a real browser: Chromium (driven by Playwright) against
daphne and a django-q2 cluster, both subprocesses on the live test database.

Each test logs in, starts a job (or a batch of jobs) from its page and watches
the bar the way a person would: every value the bar's ``aria-valuenow`` takes is
recorded by a MutationObserver installed before the page's own scripts run, so a bar
that never updates (socket and polling both broken) fails the test. Nothing
sleeps blindly: every wait is a condition with a deadline.

The stack runs twice: on the embedded default (ORM broker, in-memory channel
layer, so sockets watch the database) and on Redis (Redis broker,
channels-redis pub/sub layer, so updates are pushed).

The tests are async so that the Playwright event loop and Django's ORM, which
the tests reach through ``sync_to_async``, never share a thread.
"""

import contextlib
import importlib.util
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path
from urllib.parse import urlparse

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import MD5PasswordHasher
from django.db import connection, connections

from django_jobprogress.models import Batch, JobRecord
from tests.conftest import clear_run_keys, service_missing
from tests.workers import require_postgres, require_redis

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("JOBPROGRESS_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-gpu"]
TIMEOUT_MS = 30_000
PASSWORD = "correct horse"
ASGI_APP = "example_project.asgi:application"

# Runs in every page before its scripts: records each value the bar shows.
RECORD_BAR = """
window.__bar = { values: [], statuses: [] };
new MutationObserver(function (mutations) {
  mutations.forEach(function (m) {
    if (m.type === "attributes" && m.attributeName === "aria-valuenow") {
      window.__bar.values.push(Number(m.target.getAttribute("aria-valuenow")));
    } else if (m.target.parentElement && m.target.parentElement.matches('[data-field="status"]')) {
      window.__bar.statuses.push(m.target.parentElement.textContent);
    } else if (m.target.matches && m.target.matches('[data-field="status"]')) {
      window.__bar.statuses.push(m.target.textContent);
    }
  });
}).observe(document, {
  subtree: true, attributes: true, attributeFilter: ["aria-valuenow"],
  childList: true, characterData: true
});
"""
BAR = '[role="progressbar"]'
STATUS = '[data-field="status"]'


# -- the stack: daphne + qcluster -----------------------------------------------


@pytest.fixture(scope="session", autouse=True)
def _require_browser_services():
    """Before the test database is set up: skip (fail in CI) without the tools."""
    require_postgres()
    if importlib.util.find_spec("playwright") is None:
        service_missing("the playwright package is not installed (pip install -e '.[test]')")
    if not os.access(CHROMIUM, os.X_OK):
        service_missing(f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    if importlib.util.find_spec("daphne") is None:
        service_missing("daphne is not installed (pip install -e '.[test]')")


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Process:
    """A subprocess in its own process group, its output in a log file."""

    def __init__(self, name, argv, env, log_path):
        self.name = name
        self.log_path = log_path
        with open(log_path, "wb") as log:
            self.popen = subprocess.Popen(
                argv,
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def log_tail(self, lines=40):
        text = self.log_path.read_text(errors="replace")
        return f"--- {self.name} log ---\n" + "\n".join(text.splitlines()[-lines:])

    def assert_alive(self):
        code = self.popen.poll()
        if code is not None:
            pytest.fail(f"{self.name} exited with {code}:\n{self.log_tail()}")

    def stop(self, grace=10.0):
        """SIGTERM to the main process (qcluster stops its own workers), then
        SIGKILL whatever is left in its group."""
        if self.popen.poll() is None:
            self.popen.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout=grace)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait(timeout=grace)


class Stack:
    def __init__(self, layer, web, worker, url, env):
        self.layer = layer
        self.web = web
        self.worker = worker
        self.url = url
        self.env = env  # what daphne and the qcluster run with

    def assert_alive(self):
        self.web.assert_alive()
        self.worker.assert_alive()

    def logs(self):
        return f"{self.web.log_tail()}\n{self.worker.log_tail()}"

    def wait_until_serving(self, timeout=30.0):
        deadline = time.monotonic() + timeout
        while True:
            self.assert_alive()
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(self.url + "/login/", timeout=2) as response,
            ):
                if response.status == 200:
                    return
            if time.monotonic() > deadline:
                pytest.fail(f"daphne did not serve {self.url} within {timeout:g} s\n{self.logs()}")
            time.sleep(0.1)


@pytest.fixture(scope="module")
def stack(request, django_db_setup, tmp_path_factory):
    """daphne serving example_project and a qcluster, on the live test database."""
    layer = request.param
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="tests.example.settings",
        JOBPROGRESS_TEST_DB_NAME=str(connection.settings_dict["NAME"]),
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])),
        PYTHONUNBUFFERED="1",
    )
    for name in ("JOBPROGRESS_TEST_BROKER", "JOBPROGRESS_TEST_LAYER", "DJANGO_ALLOW_ASYNC_UNSAFE"):
        env.pop(name, None)  # the stack's own choices, never inherited
    if layer == "redis":
        clear_run_keys(require_redis())
        env.update(JOBPROGRESS_TEST_BROKER="redis", JOBPROGRESS_TEST_LAYER="redis")
    logs = tmp_path_factory.mktemp(f"stack-{layer}")
    port = _free_port()
    worker = Process(
        f"qcluster ({layer})",
        [sys.executable, "-m", "django", "qcluster"],
        env,
        logs / "qcluster.log",
    )
    web = Process(
        f"daphne ({layer})",
        [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), ASGI_APP],
        env,
        logs / "daphne.log",
    )
    running = Stack(layer, web, worker, f"http://127.0.0.1:{port}", env)
    try:
        running.wait_until_serving()
        yield running
    finally:
        web.stop()
        worker.stop()
        if layer == "redis":
            clear_run_keys(require_redis())


both_layers = pytest.mark.parametrize("stack", ["embedded", "redis"], indirect=True)
embedded_only = pytest.mark.parametrize("stack", ["embedded"], indirect=True)


# -- the browser ---------------------------------------------------------------------


@pytest.fixture(autouse=True)
async def close_executor_connections():
    """``sync_to_async`` keeps its thread's connection open; close it so the test
    database can be dropped."""
    yield
    await sync_to_async(connections.close_all)()


@pytest.fixture
async def browser():
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield chromium
        finally:
            await chromium.close()


class Visitor:
    """One signed-in browser context: its page, what the bar showed, what the
    socket delivered, and the page's script errors."""

    def __init__(self, stack, context, page):
        self.stack = stack
        self.context = context
        self.page = page
        self.frames = []
        self.sockets = []  # the path of each WebSocket the page opened
        self.errors = []
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        page.on("websocket", self._watch_socket)

    def _watch_socket(self, websocket):
        self.sockets.append(urlparse(websocket.url).path)
        websocket.on("framereceived", lambda payload: self.frames.append(json.loads(payload)))

    async def log_in(self, username):
        page = self.page
        await page.goto(self.stack.url + "/")
        assert "/login/" in page.url, "the site asks who you are first"
        await page.fill("#id_username", username)
        await page.fill("#id_password", PASSWORD)
        await page.click("button[type=submit]")
        await page.wait_for_url(self.stack.url + "/")
        assert username in await page.inner_text("header.site")

    async def start(self, slug, count=None):
        """Start the use case's job from its page; return the job's id."""
        page = self.page
        await page.goto(f"{self.stack.url}/{slug}/")
        if count is not None:
            await page.fill("#id_count", str(count))
        await page.click('[data-action="start"]')
        await page.wait_for_url(re.compile(rf"/{slug}/[0-9a-f-]{{36}}/$"))
        return page.url.rstrip("/").rsplit("/", 1)[1]

    async def seen(self):
        return await self.page.evaluate("window.__bar")

    async def wait_for(self, expression, what, job_id, arg=None, row=None):
        """Wait until ``expression`` (JS) holds in the page; fail with what we know
        (``row(job_id)`` reads the job's row, or the batch's)."""
        from playwright.async_api import Error as PlaywrightError

        try:
            await self.page.wait_for_function(expression, arg=arg, timeout=TIMEOUT_MS, polling=50)
        except PlaywrightError as exc:
            self.stack.assert_alive()
            seen = await self.seen()
            found = await sync_to_async(row or job_row)(job_id)
            pytest.fail(
                f"timed out waiting for {what}: {exc}\nbar values seen: {seen}\n"
                f"socket frames: {len(self.frames)}\nrow: {found}\n{self.stack.logs()}"
            )


def job_row(job_id):
    return (
        JobRecord.objects.filter(pk=job_id)
        .values("status", "progress", "current", "total", "error", "owner__username", "result")
        .first()
    )


def make_user(username):
    """A user whose password daphne checks fast (its settings hash with MD5)."""
    hasher = MD5PasswordHasher()
    password = hasher.encode(PASSWORD, hasher.salt())
    return get_user_model().objects.create(username=username, password=password)


@pytest.fixture
async def visit(stack, browser):
    """``await visit(username)``: a new signed-in browser context on the stack."""
    contexts = []

    async def make(username):
        await sync_to_async(make_user)(username)
        context = await browser.new_context()
        contexts.append(context)
        await context.add_init_script(RECORD_BAR)
        page = await context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        visitor = Visitor(stack, context, page)
        await visitor.log_in(username)
        return visitor

    yield make
    for context in contexts:
        await context.close()
    stack.assert_alive()


def intermediate(values):
    return sorted({value for value in values if 0 < value < 100})


TWO_INTERMEDIATE_VALUES = (
    "() => new Set(window.__bar.values.filter(v => v > 0 && v < 100)).size >= 2"
)
STATUS_IS = "(status) => document.querySelector('[data-field=\"status\"]').textContent === status"


# -- the tests -------------------------------------------------------------------------


@both_layers
async def test_zip_export_bar_moves_live_to_the_download_link(visit, stack):
    alice = await visit("alice")
    page = alice.page
    job_id = await alice.start("export", count=40)

    await alice.wait_for(TWO_INTERMEDIATE_VALUES, "two values between 0 and 100", job_id)
    await alice.wait_for(STATUS_IS, "the job to complete", job_id, arg="completed")
    link = page.locator('[data-field="result"] a')
    await link.wait_for(state="visible")

    bar = page.locator(BAR)
    assert await bar.get_attribute("aria-valuenow") == "100"
    assert await page.inner_text('[data-field="percent"]') == "100%"
    seen = await alice.seen()
    assert len(intermediate(seen["values"])) >= 2, seen
    assert seen["values"] == sorted(seen["values"]), "the bar never moves backwards"
    assert seen["values"][-1] == 100
    assert "completed" in seen["statuses"]
    assert await page.locator('[data-action="cancel"]').is_hidden()
    # The updates came over the socket, each one a snapshot of this job.
    running = [f for f in alice.frames if f["status"] == "running" and 0 < f["progress"] < 1]
    assert len({f["progress"] for f in running}) >= 2, alice.frames
    assert {f["id"] for f in alice.frames} == {job_id}
    assert alice.frames[-1]["status"] == "completed"
    assert alice.sockets == ["/ws/watch/"]  # the page's one shared socket

    # The result link downloads the archive, to its owner.
    assert (await link.inner_text()).startswith("Download export.zip (40 files")
    href = await link.get_attribute("href")
    assert href == f"{stack.url}/export/{job_id}/download/"
    response = await page.request.get(href)
    assert response.status == 200
    assert response.headers["content-type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(await response.body()))
    assert len(archive.namelist()) == 40
    assert archive.namelist()[0] == "report-001.csv"

    row = await sync_to_async(job_row)(job_id)
    assert row["status"] == "completed"
    assert row["owner__username"] == "alice"
    assert (row["progress"], row["current"], row["total"]) == (1.0, 40, 40)
    assert stack.url + row["result"]["url"] == href
    assert not alice.errors


@both_layers
async def test_cancel_stops_the_import_before_it_ends(visit):
    bob = await visit("bob")
    page = bob.page
    job_id = await bob.start("import")

    # Cancel once it is running and moving, well below its 90 % threshold.
    await bob.wait_for(
        f"() => Number(document.querySelector('{BAR}').getAttribute('aria-valuenow')) > 0",
        "the import to make progress",
        job_id,
    )
    cancel = page.locator('[data-action="cancel"]')
    assert await cancel.is_visible()
    await cancel.click()
    await bob.wait_for(STATUS_IS, "the job to be cancelled", job_id, arg="cancelled")

    percent = int(await page.locator(BAR).get_attribute("aria-valuenow"))
    assert 0 < percent < 90
    assert await cancel.is_hidden()
    assert await page.locator('[data-field="result"]').is_hidden()
    seen = await bob.seen()
    assert 100 not in seen["values"], seen
    assert seen["statuses"][-1] == "cancelled"

    row = await sync_to_async(job_row)(job_id)
    assert row["status"] == "cancelled"
    assert 0 < row["progress"] < 0.9
    assert row["result"] is None
    record = await sync_to_async(JobRecord.objects.select_related("cancel_requested_by").get)(
        pk=job_id
    )
    assert record.cancel_requested_by.username == "bob"
    assert record.started_at is not None  # it was stopped while running, not while queued
    assert not bob.errors


@both_layers
async def test_failing_report_shows_its_error(visit):
    carol = await visit("carol")
    job_id = await carol.start("report")

    await carol.wait_for(STATUS_IS, "the job to fail", job_id, arg="failed")
    error = carol.page.locator('[data-field="error"]')
    assert await error.is_visible()
    assert await error.inner_text() == "RuntimeError: the report source is unavailable"
    assert await error.get_attribute("role") == "alert"
    assert 0 < int(await carol.page.locator(BAR).get_attribute("aria-valuenow")) < 100
    row = await sync_to_async(job_row)(job_id)
    assert row["status"] == "failed"
    assert row["error"] == "RuntimeError: the report source is unavailable"


@embedded_only
async def test_newsletter_fields_follow_the_job(visit):
    dave = await visit("dave")
    page = dave.page
    job_id = await dave.start("newsletter", count=20)

    step = page.locator('[data-demo-field="fields.step"]')
    current = page.locator('[data-demo-field="current"]')
    await dave.wait_for(
        "() => /^sending to reader\\d+@example\\.com$/.test("
        "document.querySelector('[data-demo-field=\"fields.step\"]').textContent)"
        " && Number(document.querySelector('[data-demo-field=\"current\"]').textContent) > 0",
        "the step field while sending",
        job_id,
    )
    assert await page.inner_text('[data-demo-field="total"]') == "20"
    await dave.wait_for(STATUS_IS, "the newsletter to complete", job_id, arg="completed")
    assert await step.inner_text() == "all sent"
    assert await current.inner_text() == "20"
    assert len(intermediate((await dave.seen())["values"])) >= 2


@embedded_only
async def test_polling_keeps_the_bar_live_without_websockets(visit):
    erin = await visit("erin")
    await erin.context.add_init_script("delete window.WebSocket;")
    job_id = await erin.start("export", count=60)

    await erin.wait_for(TWO_INTERMEDIATE_VALUES, "two values between 0 and 100", job_id)
    await erin.wait_for(STATUS_IS, "the job to complete", job_id, arg="completed")
    assert await erin.page.locator('[data-field="result"] a').is_visible()
    assert erin.frames == []  # no socket at all: the JSON view did it


@embedded_only
async def test_a_bar_cut_off_from_updates_stays_where_it_was(visit):
    """The check above has teeth: with the socket and the JSON view both blocked,
    the job completes in the database but the bar shows none of it."""
    frank = await visit("frank")
    await frank.context.add_init_script("delete window.WebSocket;")
    await frank.context.route("**/jobprogress/jobs/**", lambda route: route.abort())
    job_id = await frank.start("export", count=20)

    def finished():
        deadline = time.monotonic() + TIMEOUT_MS / 1000
        while time.monotonic() < deadline:
            if JobRecord.objects.filter(pk=job_id, status="completed").exists():
                return True
            time.sleep(0.05)
        return False

    assert await sync_to_async(finished)(), await sync_to_async(job_row)(job_id)
    await frank.page.wait_for_timeout(1500)  # give a (broken) bar every chance to move
    seen = await frank.seen()
    assert intermediate(seen["values"]) == []
    assert await frank.page.locator(BAR).get_attribute("aria-valuenow") != "100"


async def assert_only_the_owner_sees(visit, browser, stack, stranger_name, pages, json_path):
    """Another user gets 404 from ``pages`` and ``json_path``; an anonymous visitor is
    sent to log in from the pages and gets 404 from the JSON view."""
    stranger = await visit(stranger_name)
    for path in (*pages, json_path):
        response = await stranger.page.request.get(stack.url + path)
        assert response.status == 404, path

    anonymous = await browser.new_context()
    try:
        for path in pages:
            response = await anonymous.request.get(stack.url + path)
            assert response.url == f"{stack.url}/login/?next={path}", path
        response = await anonymous.request.get(stack.url + json_path)
        assert response.status == 404
    finally:
        await anonymous.close()


@embedded_only
async def test_strangers_see_neither_the_job_nor_its_download(visit, stack, browser):
    owner = await visit("grace")
    job_id = await owner.start("export", count=5)
    await owner.wait_for(STATUS_IS, "the job to complete", job_id, arg="completed")
    pages = (f"/export/{job_id}/", f"/export/{job_id}/download/")
    await assert_only_the_owner_sees(
        visit, browser, stack, "heidi", pages, f"/jobprogress/jobs/{job_id}/"
    )


# -- the weekly email blast: a batch ----------------------------------------------------

# Runs in the blast's page before its scripts: records each value the counters show.
RECORD_COUNTS = """
window.__counts = [];
new MutationObserver(function (mutations) {
  mutations.forEach(function (m) {
    var node = m.target.nodeType === 1 ? m.target : m.target.parentElement;
    if (node && node.matches && node.matches("[data-blast-count]")) {
      window.__counts.push([node.getAttribute("data-blast-count"), node.textContent]);
    }
  });
}).observe(document, { subtree: true, childList: true, characterData: true });
"""
COUNTERS = ("pending", "running", "succeeded", "failed", "cancelled", "total")
BLAST_TASKS = "example_project.demo.tasks."


def migrate_demo(stack, *target):
    """Migrate the example's demo app in the live test database (``zero`` unapplies
    it): the test process's own settings do not install that app, so the test
    database has none of its tables."""
    argv = [sys.executable, "-m", "django", "migrate", "demo", *target, "--no-input", "-v", "0"]
    result = subprocess.run(
        argv, cwd=ROOT, env=stack.env, capture_output=True, text=True, timeout=120
    )
    if result.returncode:
        pytest.fail(f"{' '.join(argv[2:])} failed:\n{result.stdout}{result.stderr}")


@pytest.fixture
def demo_tables(stack, transactional_db):
    """The demo app's table (its ``Notice``) for one test, dropped before the test
    database is flushed, so its foreign key to the users never blocks the flush."""
    migrate_demo(stack)
    yield
    migrate_demo(stack, "zero")


def batch_row(batch_id):
    return (
        Batch.objects.filter(pk=batch_id)
        .values("status", "total", "succeeded", "failed", "cancelled", "owner__username")
        .first()
    )


def blast_records(batch_id):
    """The blast's rows, read with plain SQL where the test process has no model."""
    batch = Batch.objects.select_related("owner").get(pk=batch_id)
    members = JobRecord.objects.filter(batch_id=batch_id)
    callbacks = JobRecord.objects.filter(task_name=BLAST_TASKS + "blast_finished")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT n.text, u.username FROM demo_notice n LEFT JOIN auth_user u ON u.id = n.user_id"
        )
        notices = cursor.fetchall()
    return {
        "batch": batch,
        "owner": batch.owner.username,
        "members": sorted(members.values_list("status", flat=True)),
        "errors": list(members.filter(status="failed").values_list("error", flat=True)),
        "callbacks": list(callbacks.values_list("status", "owner__username", "args")),
        "notices": notices,
    }


@embedded_only
async def test_weekly_blast_counts_live_and_shows_the_callbacks_notice(
    visit, stack, browser, demo_tables
):
    ivan = await visit("ivan")
    page = ivan.page
    await ivan.context.add_init_script(RECORD_COUNTS)
    await page.goto(stack.url + "/")
    await page.click('main a[href="/blast/"]')
    assert await page.input_value("#id_count") == "300"
    await page.fill("#id_count", "60")
    await page.click('[data-action="start"]')
    await page.wait_for_url(re.compile(r"/blast/[0-9a-f-]{36}/$"))
    batch_id = page.url.rstrip("/").rsplit("/", 1)[1]

    def wait_for(expression, what, arg=None):
        return ivan.wait_for(expression, what, batch_id, arg=arg, row=batch_row)

    await wait_for(TWO_INTERMEDIATE_VALUES, "two values of the batch bar between 0 and 100")
    await wait_for(STATUS_IS, "the batch to complete", arg="completed")
    notice = "Weekly blast finished: 59 delivered, 1 bounced"
    await wait_for(
        "(text) => Array.from(document.querySelectorAll('[data-blast-notices] li'))"
        ".some(item => item.textContent === text)",
        "the on-complete callback's notification",
        arg=notice,
    )

    # The bar went through the batch to its end, never backwards.
    seen = await ivan.seen()
    assert len(intermediate(seen["values"])) >= 2, seen
    assert seen["values"] == sorted(seen["values"]), seen
    assert seen["values"][-1] == 100
    assert await page.inner_text('[data-field="message"]') == "60 of 60 done, 1 failed"

    # The counters moved with it and ended on the batch's own counters.
    shown = {name: await page.inner_text(f'[data-blast-count="{name}"]') for name in COUNTERS}
    assert shown == {
        "pending": "0",
        "running": "0",
        "succeeded": "59",
        "failed": "1",
        "cancelled": "0",
        "total": "60",
    }
    counts = await page.evaluate("window.__counts")
    delivered = {int(value) for name, value in counts if name == "succeeded"}
    assert any(0 < value < 59 for value in delivered), counts

    records = await sync_to_async(blast_records)(batch_id)
    batch = records["batch"]
    assert batch.status == "completed"  # bounces are allowed: they do not fail a blast
    assert records["owner"] == "ivan"
    assert {name: str(getattr(batch, name)) for name in COUNTERS[2:]} == {
        name: shown[name] for name in COUNTERS[2:]
    }
    assert records["members"] == ["completed"] * 59 + ["failed"]
    assert records["errors"] == ["Bounced: 550 subscriber50@example.com: mailbox unavailable"]
    # The callback ran once, as ivan's job, with the batch's final snapshot, and
    # wrote exactly one notification.
    assert batch.on_complete_enqueued_at is not None
    [(status, owner, args)] = records["callbacks"]
    assert (status, owner) == ("completed", "ivan")
    assert args[0]["id"] == batch_id
    assert (args[0]["succeeded"], args[0]["failed"]) == (59, 1)
    assert records["notices"] == [(notice, "ivan")]
    assert await page.locator("[data-blast-waiting]").is_hidden()
    assert not ivan.errors

    # Nobody else sees the blast, its notices or its batch.
    pages = (f"/blast/{batch_id}/", f"/blast/{batch_id}/notices/")
    await assert_only_the_owner_sees(
        visit, browser, stack, "judy", pages, f"/jobprogress/batches/{batch_id}/"
    )

    # Its owner finds it again, notification and all, in a fresh page.
    await page.goto(f"{stack.url}/blast/{batch_id}/")
    assert await page.inner_text("[data-blast-notices] li") == notice
    assert await page.inner_text('[data-blast-count="failed"]') == "1"
