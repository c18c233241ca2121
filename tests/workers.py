"""Helpers for tests that run real worker processes: waiting with deadlines, a
qcluster subprocess and its environment, and service checks that skip locally and
fail in CI."""

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.db import connection

from django_jobprogress.models import JobRecord
from tests.conftest import service_missing

ROOT = Path(__file__).resolve().parent.parent
DJANGO_Q2 = "django_jobprogress.adapters.queue_django_q2.DjangoQ2Queue"

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


def qcluster_env(settings_module="tests.settings", **overrides):
    """This process's environment, pointed at the live test database and django-q2.

    The ORM broker unless ``overrides`` names another: an inherited
    ``JOBPROGRESS_TEST_BROKER`` must not choose it.
    """
    env = dict(os.environ)
    env.pop("JOBPROGRESS_TEST_BROKER", None)
    env.update(
        DJANGO_SETTINGS_MODULE=settings_module,
        JOBPROGRESS_TEST_DB_NAME=str(connection.settings_dict["NAME"]),
        JOBPROGRESS_TEST_ADAPTER="django_q2",
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])),
        PYTHONUNBUFFERED="1",
    )
    env.update(overrides)
    return env


def wait_on_clusters(clusters, condition, *, what, state=None, timeout=30.0, log_lines=60):
    """``wait_for`` that fails as soon as one of ``clusters`` dies, and shows their logs."""

    def all_alive():
        for cluster in clusters:
            cluster.assert_alive()

    return wait_for(
        condition,
        timeout=timeout,
        what=what,
        state=state,
        alive=all_alive,
        log=lambda: "\n".join(cluster.log_section(log_lines) for cluster in clusters),
    )


class Cluster:
    """A ``qcluster`` subprocess started with ``env``, its output in ``log_path``.

    Used as a context manager, it is stopped on the way out.
    """

    def __init__(self, name, env, log_path):
        self.name = name
        self.log_path = log_path
        with open(log_path, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "django", "qcluster"],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, so stop() reaches the workers
            )

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.stop()

    def log_tail(self, lines=60):
        text = self.log_path.read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def log_section(self, lines=60):
        """The log's tail under a heading, for a failure message that may show several."""
        return f"--- qcluster ({self.name}) log ---\n{self.log_tail(lines)}"

    def assert_alive(self):
        code = self.process.poll()
        if code is not None:
            pytest.fail(f"qcluster ({self.name}) exited with {code}:\n{self.log_tail()}")

    def wait_for(self, condition, *, what, state=None, timeout=30.0):
        return wait_on_clusters([self], condition, what=what, state=state, timeout=timeout)

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


def require_postgres():
    """Skip (fail in CI) when the PostgreSQL server of the test settings is unreachable."""
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


def require_redis():
    """A client of the test Redis; skip (fail in CI) when it is unreachable."""
    import redis

    client = redis.Redis.from_url(django_settings.REDIS_URL, socket_connect_timeout=3)
    try:
        client.ping()
    except redis.RedisError as exc:
        service_missing(f"Redis is not reachable at {django_settings.REDIS_URL}: {exc}")
    return client
