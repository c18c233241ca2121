"""The recurring job of ``python manage.py demo``, as a newcomer sees it: the
schedule from the example's settings, synced by the demo's ``migrate``, runs
within a minute in the cluster the demo starts, and the "Recurring job" page
shows its runs; in a browser, a new run appears on the open page by itself and
its bar follows it to the end (embedded default: SQLite, ORM broker, no Redis).
"""

import contextlib
import importlib.util
import os
import re
import sqlite3
import time
import uuid
from types import SimpleNamespace

import pytest

from tests.conftest import service_missing
from tests.example.running import RUNNING, RunningDemo, demo_environment, free_port, log_in

CHROMIUM = os.environ.get("JOBPROGRESS_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-gpu"]
FIRST_RUN_WITHIN = 60.0  # seconds from the demo's start: the schedule runs every 20 s

# Runs in the page before its scripts: records each value every bar shows, by job.
RECORD_BARS = """
window.__values = [];
new MutationObserver(function (mutations) {
  mutations.forEach(function (m) {
    var bar = m.target.closest && m.target.closest("[data-job-id]");
    if (bar) {
      window.__values.push([bar.dataset.jobId, Number(m.target.getAttribute("aria-valuenow"))]);
    }
  });
}).observe(document, { subtree: true, attributes: true, attributeFilter: ["aria-valuenow"] });
"""


@pytest.fixture(scope="module")
def running_demo(tmp_path_factory):
    """One ``manage.py demo`` on a fresh database for the tests of this module."""
    database = tmp_path_factory.mktemp("demo-recurring") / "demo.sqlite3"
    started = time.monotonic()
    running = RunningDemo(demo_environment(database), free_port())
    try:
        url = running.read_until(RUNNING, timeout=60).group(1)
        running.read_until(r"^  Admin ", timeout=5)
        yield SimpleNamespace(url=url, database=database, running=running, started=started)
    finally:
        running.stop()


def heartbeat_runs(database):
    """(id, status, attempts) of the schedule's runs, oldest slot first."""
    with contextlib.closing(sqlite3.connect(database, timeout=10)) as db:
        rows = db.execute(
            "SELECT id, status, attempts FROM django_jobprogress_jobrecord "
            "WHERE key = 'demo-heartbeat' AND scheduled_for IS NOT NULL ORDER BY scheduled_for"
        ).fetchall()
    return [(str(uuid.UUID(pk)), status, attempts) for pk, status, attempts in rows]


def wait_for_a_completed_run(demo):
    deadline = demo.started + FIRST_RUN_WITHIN
    while time.monotonic() < deadline:
        done = [run for run in heartbeat_runs(demo.database) if run[1] == "completed"]
        if done:
            return done[0]
        assert demo.running.process.poll() is None, demo.running.text()
        time.sleep(0.5)
    pytest.fail(
        f"no completed run of demo-heartbeat within {FIRST_RUN_WITHIN:g} s of the demo's "
        f"start; runs: {heartbeat_runs(demo.database)}\n{demo.running.text()}"
    )


def test_a_new_run_appears_on_the_open_page_and_its_bar_follows_it(running_demo):
    if importlib.util.find_spec("playwright") is None:
        service_missing("the playwright package is not installed (pip install -e '.[test]')")
    if not os.access(CHROMIUM, os.X_OK):
        service_missing(f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    url = running_demo.url
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        try:
            page = browser.new_page()
            page.set_default_timeout(30_000)
            errors = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.add_init_script(RECORD_BARS)
            page.goto(url + "login/")
            page.fill("#id_username", "demo")
            page.fill("#id_password", "demo")
            page.click("main button[type=submit]")
            page.wait_for_url(url)
            page.click('main a[href="/recurring/"]')
            page.wait_for_url(url + "recurring/")

            known = page.eval_on_selector_all(
                "[data-recurring-runs] > li", "items => items.map(item => item.dataset.runId)"
            )
            countdown = page.inner_text("[data-recurring-countdown]")
            assert re.fullmatch(r"in \d+ s", countdown), countdown
            page.wait_for_function(
                "before => document.querySelector('[data-recurring-countdown]')"
                ".textContent !== before",
                arg=countdown,
            )  # it counts down by itself

            # No reload: the page's script brings the new run in at its slot.
            new_run = page.wait_for_function(
                """known => {
                  const items = [...document.querySelectorAll("[data-recurring-runs] > li")];
                  const fresh = items.find(item => !known.includes(item.dataset.runId));
                  return fresh ? fresh.dataset.runId : null;
                }""",
                arg=known,
                timeout=FIRST_RUN_WITHIN * 1000,
            ).json_value()
            item = f'[data-run-id="{new_run}"]'
            page.wait_for_function(
                "item => document.querySelector(item + ' [data-field=\"status\"]')"
                ".textContent === 'completed'",
                arg=item,
            )

            assert page.inner_text(f"{item} [data-field=percent]") == "100%"
            assert page.inner_text(f"{item} [data-field=message]") == "all 6 services are up"
            assert page.inner_text(f"{item} .jobprogress__label").startswith("Slot ")
            assert re.fullmatch(
                r"run \d+ · attempt [12] of 3", page.inner_text(f"{item} .run__attempts")
            )
            first = page.eval_on_selector("[data-recurring-runs] > li", "li => li.dataset.runId")
            assert first == new_run  # newest first
            assert page.is_hidden("[data-recurring-empty]")
            assert re.fullmatch(r"in \d+ s", page.inner_text("[data-recurring-countdown]"))
            values = [value for job, value in page.evaluate("window.__values") if job == new_run]
            assert any(0 < value < 100 for value in values), values  # it moved, live
            assert errors == []
        finally:
            browser.close()


def test_the_schedule_runs_within_a_minute_and_its_page_shows_the_runs(running_demo):
    pk, _status, _attempts = wait_for_a_completed_run(running_demo)
    url = running_demo.url
    opener = log_in(url)

    with opener.open(url + "recurring/", timeout=10) as response:
        html = response.read().decode()

    assert "Schedule <code>demo-heartbeat</code>" in html
    assert "<dd data-recurring-when>every 20 seconds</dd>" in html
    assert "<dt>max attempts</dt><dd>3</dd>" in html
    assert re.search(r"<span data-recurring-countdown>(in \d+ s|due now[^<]*)</span>", html)
    assert f'<li data-run-id="{pk}">' in html
    assert f'data-job-id="{pk}"' in html and "not available to you" not in html
    with opener.open(url + "recurring/runs/", timeout=10) as response:
        assert f'<li data-run-id="{pk}">' in response.read().decode()
    text = running_demo.running.text()
    assert "processing heartbeat:" in text and "Processed 'django_jobprogress" in text
