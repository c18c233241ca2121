"""The jobs the benchmarks run (module level, so the worker finds them by name)."""

import os
from time import perf_counter, sleep

from django.utils import timezone

from django_jobprogress import JobProgressMixin
from django_jobprogress.models import JobRecord
from django_jobprogress.models import stats as stats_module

try:  # Django's own task framework (Django >= 6.0), else its backport, else none
    from django.tasks import task
except ImportError:
    try:
        from django_tasks import task
    except ImportError:
        task = None


def _end_without_count(self, changes, guard):
    """A job's end as it was before the dashboard's count: ``finished_at`` from the
    worker's clock, in the plain guarded UPDATE."""
    changes["finished_at"] = timezone.now()
    return self._set(changes, **guard)


def uncount_ends():
    """Leave the dashboard's count out, in this process: the end's stamp by the
    database's clock, and the sweep's count of the ends."""
    JobRecord._stamp_end = _end_without_count
    stats_module.count_ends = lambda *args, **kwargs: 0


if os.environ.get("BENCH_COUNT_ENDS") == "0":  # throughput.py --uncounted, in the cluster
    uncount_ends()


def noop():
    """The bare django-q2 job."""
    return None


class Noop(JobProgressMixin):
    """The tracked job: a progress task that does nothing."""

    def run(self):
        return None


if task is not None:

    @task
    def noop_task():
        """The tracked job as a ``django.tasks`` task (bench/settings.py's ``TASKS``)."""
        return None


class Count(JobProgressMixin):
    """``n`` calls of ``progress.increment()``; returns the time spent in the loop."""

    last_handle = None  # the progress handle of the latest run, for its ``writes`` counter

    def run(self, n, pause_every=0, pause=0.0):
        progress = type(self).last_handle = self.progress
        progress.total = n
        if pause_every:
            return self.run_with_pauses(progress, n, pause_every, pause)
        started = perf_counter()
        for _ in range(n):
            progress.increment()
        return {"loop_seconds": perf_counter() - started}

    def run_with_pauses(self, progress, n, pause_every, pause):
        """Sleep ``pause`` s after every ``pause_every`` calls, so the ticker thread has
        idle stretches in which it must make the trailing write; sleeps are not timed."""
        slept = 0.0
        started = perf_counter()
        for done in range(0, n, pause_every):
            for _ in range(min(pause_every, n - done)):
                progress.increment()
            before = perf_counter()
            sleep(pause)
            slept += perf_counter() - before
        return {"loop_seconds": perf_counter() - started - slept}


def bare_count(n):
    """The same loop doing only the counting, for the baseline."""
    x = 0
    started = perf_counter()
    for _ in range(n):
        x += 1
    return perf_counter() - started, x


class _Counter:
    def increment(self, n=1):
        pass


def call_count(n):
    """The same loop calling an empty method: the Python call overhead alone."""
    counter = _Counter()
    started = perf_counter()
    for _ in range(n):
        counter.increment()
    return perf_counter() - started
