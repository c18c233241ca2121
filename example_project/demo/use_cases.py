"""The demo's use cases: what each page says, which task it starts and with what."""

import math
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from django_jobprogress import Call
from django_jobprogress.models import Batch, JobRecord, Schedule
from example_project.demo import tasks


def pace() -> float:
    """Multiplier of the demo jobs' simulated work (``DEMO_PACE``; 1 is watchable)."""
    return float(getattr(settings, "DEMO_PACE", 1.0))


@dataclass(frozen=True)
class UseCase:
    slug: str
    title: str
    source: str
    summary: str
    task: Any
    count_label: str = ""
    count_default: int = 0
    count_max: int = 0
    shows_fields: bool = False

    @property
    def task_name(self) -> str:
        return self.task.get_task_name()

    def enqueue(self, user: Any, count: int):
        """Start this use case's job for ``user``; returns its ``JobRecord``."""
        if self.slug == "export":
            return self.task.enqueue(tasks.export_file_names(count), pace=pace(), owner=user)
        if self.slug == "newsletter":
            emails = [f"reader{number}@example.com" for number in range(1, count + 1)]
            return self.task.enqueue(emails, pace=pace(), owner=user)
        return self.task.enqueue(pace=pace(), owner=user)


USE_CASES = {
    case.slug: case
    for case in (
        UseCase(
            slug="export",
            title="Zip export",
            source="Oban guide: Reporting Job Progress",
            summary=(
                "Zips many generated files, reporting progress after each file. When it "
                "completes, the bar shows a link to download the archive. It can be "
                "cancelled until 75 % of the files are in."
            ),
            task=tasks.ZipExport,
            count_label="Files",
            count_default=40,
            count_max=500,
        ),
        UseCase(
            slug="import",
            title="Multi-stage import",
            source="laravel-job-progress",
            summary=(
                "Validates (0-20 %), imports (20-90 %) and indexes (90-100 %) rows, each "
                "stage reported with steps(completed, total, base, max), where base is "
                "where the stage starts and max its share of the bar. Cancel stops it "
                "at its next checkpoint; from 90 % on it can no longer be cancelled, so "
                "the button disappears."
            ),
            task=tasks.StagedImport,
        ),
        UseCase(
            slug="newsletter",
            title="Newsletter",
            source="activejob-status",
            summary=(
                "Sets progress.total to the number of recipients, calls increment() "
                "after each message and keeps a free-form step field up to date with "
                "set(step=...). The fields below follow the job live."
            ),
            task=tasks.send_newsletter,
            count_label="Recipients",
            count_default=30,
            count_max=1000,
            shows_fields=True,
        ),
        UseCase(
            slug="report",
            title="Failing report",
            source="laravel-job-progress: exceptions mark the job failed",
            summary=(
                "Collects for a couple of seconds, then raises. The job ends failed "
                "and the bar shows the error."
            ),
            task=tasks.broken_report,
        ),
    )
}

BY_TASK_NAME = {case.task_name: case for case in USE_CASES.values()}


# -- Oban's batching guide: the weekly email blast -------------------------------------

BLAST_SOURCE = "Oban guide: Batching Jobs for Monitoring"
BLAST_DEFAULT = 300
BLAST_MAX = 2000


def blasts(user):
    """The email blasts ``user`` started (batches whose callback is the blast's)."""
    return Batch.objects.filter(owner=user, on_complete=tasks.blast_finished.get_task_name())


def start_blast(user, count):
    """Send the weekly email to ``count`` subscribers: one ``deliver_email`` job per
    address, all in one batch owned by ``user``; its ``on_complete`` callback writes
    the admin notification once the last email is done. Returns the ``Batch``.

    The jobs are written with ``enqueue_many``: one INSERT and one broker round
    trip per 500 jobs instead of one of each per job.

    Bounces are expected in a mailing, so they do not fail the batch
    (``allow_failures``): it ends ``completed`` and counts them as failed. One
    transaction writes the batch and its jobs, so the jobs start together once it
    commits and a failure half-way leaves nothing behind.
    """
    with (
        transaction.atomic(),
        Batch.open(
            f"Weekly email blast to {count} subscribers",
            on_complete=tasks.blast_finished,
            owner=user,
            allow_failures=True,
            callback_kwargs={"user_id": user.pk},
        ) as batch,
    ):
        calls = [Call(address, pace=pace()) for address in tasks.blast_recipients(count)]
        tasks.deliver_email.enqueue_many(calls, batch=batch)
    return batch


# -- "Simple Recurring Jobs in Phoenix Apps": the heartbeat schedule -------------------

RECURRING_SOURCE = "Simple Recurring Jobs in Phoenix Apps"
HEARTBEAT = "demo-heartbeat"  # its entry in JOBPROGRESS["SCHEDULES"]
RECURRING_RUNS = 10

UNITS = (("week", 604800), ("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1))


def interval_in_words(seconds):
    """ "every 20 seconds", "every minute", "every 90 seconds": whole units only."""
    for unit, size in UNITS:
        if seconds >= size and seconds % size == 0:
            count = int(seconds // size)
            return f"every {unit}" if count == 1 else f"every {count} {unit}s"
    return f"every {seconds:g} seconds"


def when_in_words(spec):
    """When a schedule (a ``ScheduleSpec``) runs, for a person."""
    if spec.every is not None:
        return interval_in_words(spec.every)
    return f"at the times of the cron expression {spec.cron} ({spec.timezone} time)"


@dataclass(frozen=True)
class Recurring:
    """What the recurring job's page shows: the synced schedule (None if the table
    has no such row), its definition read back, and its latest runs, newest first."""

    name: str
    schedule: Any
    spec: Any
    runs: list
    limit: int = RECURRING_RUNS

    @property
    def when(self):
        return when_in_words(self.spec) if self.spec is not None else ""

    @property
    def next_in(self):
        """Whole seconds until the next slot (0 once it is due), or None."""
        if self.schedule is None:
            return None
        left = (self.schedule.next_run_at - timezone.now()).total_seconds()
        return max(math.ceil(left), 0)

    @property
    def countdown(self):
        """ "in 17 s", "in 5 min", or what a due slot waits for (recurring.js says the same)."""
        seconds = self.next_in
        if not seconds:
            return "due now: it starts as soon as a django-q2 cluster runs"
        if seconds < 120:
            return f"in {seconds} s"
        if seconds < 7200:
            return f"in {round(seconds / 60)} min"
        return f"in {round(seconds / 3600)} h"


def recurring(name=HEARTBEAT, limit=RECURRING_RUNS):
    """The schedule ``name`` as the scheduler's table holds it, and its last runs.

    Each run is a ``JobRecord`` whose key is the schedule's name and whose
    ``scheduled_for`` is the slot it ran for. Scheduled runs have no owner, so
    each carries an access token for the page's bars: every signed-in visitor of
    the demo may follow them (staff could without one).
    """
    schedule = Schedule.objects.filter(name=name).first()
    if schedule is None:
        return Recurring(name, None, None, [], limit)
    try:
        spec = schedule.spec
    except (TypeError, ValueError):  # stored by another version: a sync rewrites it
        spec = None
    runs = list(
        JobRecord.objects.filter(
            task_name=schedule.task_name, key=name, scheduled_for__isnull=False
        ).order_by("-scheduled_for", "-created_at")[:limit]
    )
    for run in runs:
        run.token = run.access_token()
        run.label = f"Slot {timezone.localtime(run.scheduled_for):%Y-%m-%d %H:%M:%S %Z}"
    return Recurring(name, schedule, spec, runs, limit)
