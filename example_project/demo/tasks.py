"""The example site's jobs, one per use case the seeds describe.

The sleeps stand in for real work, so that a person (or the browser test) can
watch the bar move; ``pace`` scales them (``DEMO_PACE`` in the settings).
"""

import io
import time
import zipfile

from django.contrib.auth import get_user_model
from django.urls import reverse

from django_jobprogress import JobProgressMixin, progress_task
from django_jobprogress.models import JobRecord
from example_project.demo.models import Notice


def export_file_names(count):
    """The files a zip export of ``count`` files contains."""
    return [f"report-{number:03d}.csv" for number in range(1, count + 1)]


def add_export_file(archive, name):
    """Write one generated file into ``archive`` (a ``zipfile.ZipFile``)."""
    rows = "".join(f"{name},{row},{row * row}\n" for row in range(1, 51))
    archive.writestr(name, "file,row,square\n" + rows)


def build_export(names):
    """The whole archive of ``names`` as bytes (what the download view serves)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in names:
            add_export_file(archive, name)
    return buffer.getvalue()


class ZipExport(JobProgressMixin):
    """Oban's guide: zip many files, reporting progress per file.

    Cancellable until three quarters of the files are in the archive.
    """

    cancellable = True
    cancel_threshold = 0.75

    def run(self, names, pace=1.0):
        self.progress.stage("zipping")
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for done, name in enumerate(names, 1):
                time.sleep(0.15 * pace)  # a real export would read the file from storage
                add_export_file(archive, name)
                self.progress.steps(done, len(names))
                self.progress.message(f"added {name}")
                self.checkpoint()
        self.progress.stage("done")
        size = len(buffer.getvalue())
        return {
            "url": reverse("demo:export-download", args=[self.job_id]),
            "label": f"Download export.zip ({len(names)} files, {size // 1024} KiB)",
            "files": len(names),
            "bytes": size,
        }


class StagedImport(JobProgressMixin):
    """laravel-job-progress: an import in three stages, each given its own slice
    of the bar with ``steps(completed, total, base, max)``: the slice starts at
    ``base`` and is ``max`` wide (``base + max * completed / total``).

    It may be cancelled while validating and importing; from 90 % on (indexing
    the imported rows) it can no longer be stopped.
    """

    cancellable = True
    cancel_threshold = 0.9

    STAGES = (
        # stage, rows, seconds per row, base, max (the stage's share of the bar)
        ("validating", 20, 0.05, 0.0, 0.2),  # 0-20 %
        ("importing", 50, 0.08, 0.2, 0.7),  # 20-90 %
        ("indexing", 10, 0.1, 0.9, 0.1),  # 90-100 %
    )

    def run(self, pace=1.0):
        for stage, rows, seconds, base, share in self.STAGES:
            self.progress.stage(stage)
            for done in range(1, rows + 1):
                time.sleep(seconds * pace)
                self.progress.steps(done, rows, base, share)
                self.progress.message(f"{stage}: row {done} of {rows}")
                self.checkpoint()
        return {"imported": self.STAGES[1][1]}


@progress_task
def send_newsletter(job, emails, pace=1.0):
    """activejob-status: ``total``, ``increment`` and a free-form ``step`` field."""
    job.progress.total = len(emails)
    for email in emails:
        job.progress.set(step=f"sending to {email}", last_recipient=email)
        time.sleep(0.2 * pace)  # delivering one message
        job.progress.increment()
        job.checkpoint()
    job.progress.set(step="all sent")
    job.progress.finish()
    return {"sent": len(emails)}


@progress_task
def broken_report(job, pace=1.0):
    """Collects for a while, then fails on purpose to show how an error is reported."""
    job.progress.stage("collecting")
    for done in range(1, 9):
        time.sleep(0.25 * pace)
        job.progress.steps(done, 20)
        job.progress.message(f"read source {done}")
        job.checkpoint()
    raise RuntimeError("the report source is unavailable")


# -- Oban's batching guide: the weekly email blast -------------------------------------

BOUNCE_EVERY = 50  # one address in fifty bounces: 300 recipients, 6 bounced


class Bounced(Exception):
    """The (simulated) mail server refused the address."""


def blast_recipients(count):
    """The addresses a blast to ``count`` recipients goes to."""
    return [f"subscriber{number}@example.com" for number in range(1, count + 1)]


def bounces(address):
    """Whether ``address`` bounces: deterministic, so every run shows the same failures."""
    number = int(address.split("@", 1)[0].removeprefix("subscriber"))
    return number % BOUNCE_EVERY == 0


@progress_task(max_attempts=1)
def deliver_email(job, address, pace=1.0):
    """One email of the blast, one job of its batch. A bounce raises: the job
    fails, for good (one attempt), and the batch counts it as failed."""
    time.sleep(0.1 * pace)  # talking to the mail server
    if bounces(address):
        raise Bounced(f"550 {address}: mailbox unavailable")
    return {"delivered": address}


def blast_summary(batch):
    """ "Weekly blast finished: 294 delivered, 6 bounced" from a batch snapshot."""
    line = f"Weekly blast finished: {batch['succeeded']} delivered, {batch['failed']} bounced"
    if batch["cancelled"]:
        line += f", {batch['cancelled']} cancelled"
    return line


@progress_task
def blast_finished(job, batch, user_id=None):
    """The blast's on_complete callback, run once after its last email: writes the
    admin notification. ``batch`` is the batch's final snapshot."""
    text = blast_summary(batch)
    user = get_user_model()._default_manager.filter(pk=user_id).first() if user_id else None
    notice = Notice.objects.create(user=user, batch_id=batch["id"], text=text)
    return {"notice": notice.pk, "text": text}


# -- "Simple Recurring Jobs in Phoenix Apps": the heartbeat ----------------------------

HEARTBEAT_SERVICES = ("database", "broker", "cache", "mail relay", "file storage", "search")
HICCUP_EVERY = 3  # the first attempt of every third run crashes half-way
HICCUP_AT = 3  # ... while checking the third service


class Hiccup(Exception):
    """The (simulated) crash of a heartbeat's attempt."""


def run_number(record):
    """Which run of its schedule ``record`` is, counting the runs still kept (1, 2, ...):
    the runs of one schedule share its name as their key. A retry keeps its number."""
    earlier = JobRecord.objects.filter(
        task_name=record.task_name, key=record.key, created_at__lt=record.created_at
    )
    return earlier.count() + 1


def hiccups(run, attempt):
    """Whether attempt ``attempt`` of run ``run`` crashes: deterministic, so the page
    always shows the same pattern (runs 3, 6, 9... need a second attempt)."""
    return run % HICCUP_EVERY == 0 and attempt == 1


@progress_task
def heartbeat(job, pace=1.0):
    """The recurring job: checks the site's services one after the other, each time
    its schedule (``demo-heartbeat`` in the settings) fires.

    The first attempt of every third run raises half-way, as a crash would; with
    attempts left (the schedule allows three) the same record goes back to pending
    and its next attempt starts over from 0 %.
    """
    record = job.record
    run, attempt = run_number(record), record.attempts
    job.progress.set(run=run, attempt=attempt)
    job.progress.stage("checking")
    for done, service in enumerate(HEARTBEAT_SERVICES, 1):
        time.sleep(0.5 * pace)  # asking the service whether it is up
        if done == HICCUP_AT and hiccups(run, attempt):
            raise Hiccup(f"lost the connection while checking the {service} (attempt {attempt})")
        job.progress.steps(done, len(HEARTBEAT_SERVICES))
        job.progress.message(f"{service}: up")
        job.checkpoint()
    job.progress.stage("done")
    job.progress.message(f"all {len(HEARTBEAT_SERVICES)} services are up")
    return {"run": run, "attempt": attempt, "checked": len(HEARTBEAT_SERVICES)}
