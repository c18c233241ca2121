"""Jobs run by the fault suite's real clusters. Each run appends a line to a log
file named by its first argument, so a test counts how often each job really ran."""

import math
import os
import signal
import time

from django_jobprogress import JobProgressMixin, progress_task

HOLD = 30.0  # the longest a held attempt waits for the test to kill its worker


def note_run(log, record, what="run"):
    with open(log, "a") as out:  # one short O_APPEND write per line: never interleaved
        out.write(f"{what} {record.pk} {record.attempts} {os.getpid()}\n")


def runs(log, what="run"):
    """How many times each job id ran, from the log."""
    counts = {}
    if os.path.exists(log):
        with open(log) as lines:
            for line in lines:
                kind, job_id, *_ = line.split()
                if kind == what:
                    counts[job_id] = counts.get(job_id, 0) + 1
    return counts


class Holder(JobProgressMixin):
    """Holds its attempts before ``finish_on`` (heartbeats going) until its worker is
    killed; the attempt ``finish_on`` returns at once."""

    def run(self, log, finish_on=2):
        note_run(log, self.record)
        self.progress.message(f"attempt {self.record.attempts} started")
        deadline = time.monotonic() + HOLD
        while self.record.attempts < finish_on and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.record.attempts


class RetriedHolder(Holder):
    max_attempts = 3


@progress_task
def quick(job, log, seconds=0.0):
    note_run(log, job.record)
    time.sleep(seconds)
    return job.record.attempts


@progress_task
def batch_done(job, snapshot, log):
    note_run(log, job.record, what="callback")


def _huge_total(job):
    job.progress.total = 2**63


HOSTILE = {
    "stage with NUL": lambda job: job.progress.stage("zip\x00ping"),
    "message with a lone surrogate": lambda job: job.progress.message("half \ud800"),
    "NaN in a field": lambda job: job.progress.set(ratio=math.nan),
    "Infinity nested in a field": lambda job: job.progress.set(stats={"r": [1, math.inf]}),
    "2**63 in a field": lambda job: job.progress.set(rows=2**63),
    "total of 2**63": _huge_total,
    "update(10**400)": lambda job: job.progress.update(10**400),
    "result with NaN": lambda job: {"ratio": math.nan},
    "exception text with NUL": lambda job: (_ for _ in ()).throw(ValueError("bad\x00row")),
}


@progress_task
def hostile(job, case):
    return HOSTILE[case](job)


class GatedWriter(JobProgressMixin):
    """Reports progress every 50 ms until the file ``gate`` exists, then returns."""

    max_attempts = 3

    def run(self, log, gate):
        note_run(log, self.record)
        self.progress.message(f"attempt {self.record.attempts} started")
        deadline = time.monotonic() + HOLD
        while not os.path.exists(gate) and time.monotonic() < deadline:
            self.progress.increment()
            time.sleep(0.05)
        return self.record.attempts


@progress_task
def killed_on_first_run(job, log):
    """Kills its own worker with SIGKILL the first time it runs; returns after that."""
    note_run(log, job.record)
    marker = f"{log}.killed"
    if not os.path.exists(marker):
        open(marker, "w").close()
        os.kill(os.getpid(), signal.SIGKILL)
    return job.record.attempts
