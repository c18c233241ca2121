"""The example site's jobs, one per use case the seeds describe."""

import time

from django_jobprogress import JobProgressMixin, progress_task


class ZipExport(JobProgressMixin):
    """Oban's guide: zip many files, reporting progress per file; cancellable."""

    cancellable = True
    cancel_threshold = 0.75

    def run(self, paths, delay=0.05):
        self.progress.stage("zipping")
        for i, path in enumerate(paths, 1):
            time.sleep(delay)  # stands in for adding one file to the archive
            self.progress.steps(i, len(paths))
            self.progress.message(f"added {path}")
            self.checkpoint()
        return {"path": f"/exports/{len(paths)}-files.zip", "files": len(paths)}


@progress_task(queue=None)
def send_newsletter(job, emails, delay=0.01):
    """activejob-status style: total, increment and a free-form step field."""
    job.progress.total = len(emails)
    for email in emails:
        job.progress.set(step=f"sending to {email}")
        time.sleep(delay)
        job.progress.increment()
    return {"sent": len(emails)}


@progress_task
def broken_report(job):
    """Fails on purpose, to show how an error is reported."""
    job.progress.stage("collecting")
    job.progress.update(0.3)
    raise RuntimeError("the report source is unavailable")
