"""Sample progress tasks used across the tests (module level, so workers find them)."""

import os
import signal
import threading
import time

from django_jobprogress import JobProgressMixin, progress_task

# Tests that need to hold a job mid-run set these events (in-process runs only).
gates: dict[str, threading.Event] = {}


class ZipExport(JobProgressMixin):
    cancellable = True
    cancel_threshold = 0.75

    def run(self, paths):
        self.progress.stage("zipping")
        for i, _path in enumerate(paths, 1):
            self.progress.steps(i, len(paths))
            self.checkpoint()
        return {"path": "/tmp/export.zip", "files": len(paths)}


class Explode(JobProgressMixin):
    def run(self, message="boom"):
        self.progress.update(0.25)
        raise ValueError(message)


class Flaky(JobProgressMixin):
    """Fails until its attempt number reaches ``succeed_on``."""

    max_attempts = 3

    def run(self, succeed_on):
        attempt = self.record.attempts
        self.progress.stage(f"attempt {attempt}")
        self.progress.total = 5
        self.progress.increment(attempt)
        if attempt < succeed_on:
            raise RuntimeError(f"attempt {attempt} failed")
        return {"attempt": attempt}


class NotCancellable(JobProgressMixin):
    cancellable = False

    def run(self):
        self.checkpoint()
        return "done"


class TimesOut(JobProgressMixin):
    """Raises a SystemExit subclass, the way django-q2 signals a timeout."""

    def run(self):
        class TimeoutException(SystemExit):
            pass

        raise TimeoutException("Task exceeded maximum timeout value (1 seconds)")


class ReturnsObject(JobProgressMixin):
    def run(self):
        return object()


@progress_task(queue="mail")
def send_newsletter(job, emails):
    job.progress.total = len(emails)
    for email in emails:
        job.progress.set(step=f"sending to {email}")
        job.progress.increment()
    return {"sent": len(emails)}


@progress_task
def add(job, a, b):
    return a + b


@progress_task
def wait_for_gate(job, gate, fraction=0.5):
    """Reports ``fraction``, then waits until the test opens ``gates[gate]``."""
    job.progress.update(fraction)
    gates[gate].wait(10)
    job.checkpoint()
    return "released"


@progress_task
def slow_steps(job, count, delay):
    """For worker-process tests: ``count`` steps of ``delay`` seconds, checkpointed."""
    job.progress.stage("working")
    job.progress.total = count
    for _ in range(count):
        time.sleep(delay)
        job.progress.increment()
        job.checkpoint()
    return {"steps": count}


@progress_task
def kill_own_worker(job):
    """Reports progress, then SIGKILLs its own worker process (a lost worker)."""
    job.progress.update(0.4)
    job.progress.message("about to die")
    os.kill(os.getpid(), signal.SIGKILL)


@progress_task(progress_timeout=0.3, throttle=0)
def goes_silent(job, gate):
    job.progress.update(0.1)
    gates[gate].wait(10)
    job.progress.update(0.2)  # raises JobNotRunning: the job was failed meanwhile


@progress_task
def batch_callback(job, batch, tag=""):
    """A batch callback: returns what it was told, so tests can see it ran and how."""
    return {"batch": batch["id"], "status": batch["status"], "tag": tag}


def _nested(depth):
    value = 0
    for _ in range(depth):
        value = [value]
    return value


# Return values that no database stores faithfully, by name.
UNSTORABLE_RESULTS = {
    "nan": lambda: {"stats": {"ratio": float("nan")}},
    "nul": lambda: ["ok", "a\x00b"],
    "surrogate": lambda: {"caf\udce9": 1},
    "bigint": lambda: {"rows": [2**63]},
    "deep": lambda: _nested(10_000),
}


@progress_task
def returns_unstorable(job, kind):
    """Returns ``UNSTORABLE_RESULTS[kind]()``: the job must end failed, naming it."""
    return UNSTORABLE_RESULTS[kind]()


@progress_task
def echo(job, value, stage=""):
    """Stores ``value`` as a field and returns it, for round trips through the database."""
    job.progress.stage(stage)
    job.progress.message(stage)
    job.progress.set(echo=value)
    return value


@progress_task(cancellable=False)
def describe_context(job):
    """Returns what its job context is: the function form's job is an instance of its task."""
    return {
        "task": type(job).get_task_name(),
        "is_mixin": isinstance(job, JobProgressMixin),
        "job_id": str(job.job_id),
        "cancellable": job.cancellable,
    }
