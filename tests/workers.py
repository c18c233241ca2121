"""Helpers for tests that run real worker processes: waiting with deadlines, a
qcluster subprocess handle, and service checks that skip locally and fail in CI."""

import contextlib
import os
import signal
import subprocess
import time

import pytest
from django.conf import settings as django_settings

from django_jobprogress.models import JobRecord
from tests.conftest import service_missing

# -- waiting -----------------------------------------------------------------


def wait_for(condition, *, timeout=30.0, what="the condition", state=None, alive=None, log=None):
    """Poll ``condition`` every 50 ms until it is truthy; fail with the last state.

    ``alive`` is called on every round (it fails at once if the worker died);
    ``log`` adds the worker's output to a timeout message.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if alive is not None:
            alive()
        if time.monotonic() >= deadline:
            last = state() if state is not None else result
            message = f"timed out after {timeout:g} s waiting for {what}; last state: {last}"
            if log is not None:
                message += f"\n{log()}"
            pytest.fail(message)
        time.sleep(0.05)


def row(record):
    """What a user would look at: the stored state of ``record`` (None once deleted)."""
    return (
        JobRecord.objects.filter(pk=record.pk)
        .values("status", "progress", "current", "total", "message", "error", "worker_pid")
        .first()
    )


def reaped(pid):
    """True once process ``pid`` no longer exists (not even as a zombie)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


# -- the cluster ----------------------------------------------------------------


class Cluster:
    def __init__(self, broker, process, log_path):
        self.broker = broker
        self.process = process
        self.log_path = log_path

    def log_tail(self, lines=60):
        text = self.log_path.read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def assert_alive(self):
        code = self.process.poll()
        if code is not None:
            pytest.fail(f"qcluster ({self.broker}) exited with {code}:\n{self.log_tail()}")

    def wait_for(self, condition, *, what, state=None, timeout=30.0):
        return wait_for(
            condition,
            timeout=timeout,
            what=what,
            state=state,
            alive=self.assert_alive,
            log=lambda: f"--- qcluster ({self.broker}) log ---\n{self.log_tail()}",
        )

    def wait_for_status(self, record, *statuses, timeout=30.0):
        """Wait until ``record`` is in one of ``statuses``; return it refreshed."""
        self.wait_for(
            lambda: JobRecord.objects.filter(pk=record.pk, status__in=statuses).exists(),
            what=f"job {record.task_name} to be {'/'.join(statuses)}",
            state=lambda: row(record),
            timeout=timeout,
        )
        record.refresh_from_db()
        return record

    def stop(self, grace=10.0):
        """Stop the cluster; SIGKILL its whole process group after ``grace`` seconds.

        SIGTERM goes to the main process only: it stops its workers itself within a
        second. Sent to the whole group, the sentinel dies at once (django-q2 gives it
        the default SIGTERM action) and the main process hangs (still up after 15 s).
        """
        pgid = self.process.pid
        if self.process.poll() is None:
            self.process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=grace)
        # Anything left in the group (a stuck main process, orphaned workers) is killed.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
        self.process.wait(timeout=grace)


def _postgres_reachable():
    db = django_settings.DATABASES["default"]
    if db["ENGINE"] != "django.db.backends.postgresql":
        return
    import psycopg

    try:
        psycopg.connect(
            host=db["HOST"], port=db["PORT"], user=db["USER"], dbname="postgres", connect_timeout=3
        ).close()
    except psycopg.OperationalError as exc:
        service_missing(f"PostgreSQL is not reachable at {db['HOST']}:{db['PORT']}: {exc}")


def _redis_client():
    import redis

    client = redis.Redis.from_url(django_settings.REDIS_URL, socket_connect_timeout=3)
    try:
        client.ping()
    except redis.RedisError as exc:
        service_missing(f"Redis is not reachable at {django_settings.REDIS_URL}: {exc}")
    return client
