"""The demo's use cases: what each page says, which task it starts and with what."""

from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction

from django_jobprogress.models import Batch
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
        for address in tasks.blast_recipients(count):
            tasks.deliver_email.enqueue(address, pace=pace(), batch=batch)
    return batch
