"""The fault suite's machinery: real ``qcluster`` processes with short limits, a Redis
server of its own on a spare port (never the shared one), and the report table.

Every scenario ends by checking the rows a user would look at: none stuck
unfinished, none run beyond its attempts, none lost, and how long recovery took.
"""

import contextlib
import json
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass

import pytest
from django.conf import settings as django_settings

from django_jobprogress.models import JobRecord
from tests.conftest import service_missing
from tests.faults.jobs import runs
from tests.workers import (
    DJANGO_Q2,
    Cluster,
    qcluster_env,
    require_postgres,
    wait_on_clusters,
)

pytestmark = pytest.mark.services

# Short limits, so a lost worker is found in seconds: stale after 2 s, swept every 0.5 s.
LIMITS = {
    "STALL_TIMEOUT": 2.0,
    "HEARTBEAT_INTERVAL": 0.25,
    "SWEEP_INTERVAL": 0.5,
    "REDELIVER_AFTER": 2.0,
}
RECOVERY_GOAL = LIMITS["STALL_TIMEOUT"] + LIMITS["SWEEP_INTERVAL"]


@dataclass
class Outcome:
    scenario: str
    jobs: int
    stuck: int
    beyond_attempts: int
    lost: int
    recovery_s: float | None


_REPORT: list[Outcome] = []


def pytest_terminal_summary(terminalreporter):
    if not _REPORT:
        return
    write = terminalreporter.write_line
    write("")
    write(f"fault suite ({django_settings.DATABASES['default']['ENGINE'].rsplit('.', 1)[-1]})")
    write(f"{'scenario':58} {'jobs':>5} {'stuck':>5} {'beyond':>6} {'lost':>5} {'recovery':>9}")
    for o in _REPORT:
        recovery = "-" if o.recovery_s is None else f"{o.recovery_s:.2f} s"
        write(
            f"{o.scenario:58} {o.jobs:>5} {o.stuck:>5} {o.beyond_attempts:>6} {o.lost:>5} "
            f"{recovery:>9}"
        )
    write(
        f"(recovery goal: STALL_TIMEOUT + SWEEP_INTERVAL = {RECOVERY_GOAL:g} s for lost "
        "workers, REDELIVER_AFTER + SWEEP_INTERVAL for lost messages: the same here)"
    )
    path = os.environ.get("JOBPROGRESS_FAULT_REPORT")
    if path:
        with open(path, "a") as out:
            for o in _REPORT:
                out.write(json.dumps(o.__dict__) + "\n")


@pytest.fixture
def report(request):
    """``report(records, log, recovery_s=None)``: check the rows, and add a table row.

    Stuck: a job still unfinished. Beyond attempts: a job that ran more often than its
    ``max_attempts``, or counts more attempts than it may. Lost: a job with no row.
    """

    def check(records, log, *, recovery_s=None, expected=None):
        ids = [str(r.pk) for r in records]
        stored = {str(r.pk): r for r in JobRecord.objects.filter(pk__in=ids)}
        ran = runs(log)
        stuck = sum(1 for r in stored.values() if not r.is_finished)
        beyond = sum(
            1
            for job_id, r in stored.items()
            if ran.get(job_id, 0) > r.max_attempts or r.attempts > r.max_attempts
        )
        outcome = Outcome(
            scenario=request.node.name.removeprefix("test_").replace("_", " ")[:58],
            jobs=len(ids),
            stuck=stuck,
            beyond_attempts=beyond,
            lost=len(ids) - len(stored),
            recovery_s=recovery_s,
        )
        _REPORT.append(outcome)
        states = {
            job_id: (r.status, r.attempts, ran.get(job_id, 0)) for job_id, r in stored.items()
        }
        assert (outcome.stuck, outcome.beyond_attempts, outcome.lost) == (0, 0, 0), states
        if expected is not None:
            assert sorted(r.status for r in stored.values()) == sorted(expected), states
        return stored

    return check


@pytest.fixture(scope="session", autouse=True)
def _require_postgres():
    require_postgres()


@pytest.fixture
def log(tmp_path):
    return str(tmp_path / "runs.log")


@pytest.fixture
def limits(settings, monkeypatch):
    """The test process enqueues through django-q2 with the same short limits."""
    from django_q.conf import Conf

    settings.JOBPROGRESS = {**settings.JOBPROGRESS, **LIMITS, "QUEUE_ADAPTER": DJANGO_Q2}
    monkeypatch.setattr(Conf, "ORM", "default")
    return LIMITS


@pytest.fixture
def clusters(limits, tmp_path):
    """``clusters(label, broker_url=None, jobprogress=None, **q_cluster)`` starts a
    qcluster (``jobprogress`` and ``q_cluster`` add to its settings); all are stopped
    at the end of the test."""
    started = []

    def start(label="main", broker_url=None, jobprogress=None, **q_cluster):
        env = qcluster_env(
            JOBPROGRESS_TEST_SETTINGS=json.dumps({**LIMITS, **(jobprogress or {})}),
            JOBPROGRESS_TEST_Q_CLUSTER=json.dumps(q_cluster),
        )
        if broker_url:
            env.update(JOBPROGRESS_TEST_BROKER="redis", JOBPROGRESS_TEST_REDIS_URL=broker_url)
        cluster = Cluster(label, env, tmp_path / f"qcluster-{label}-{len(started)}.log")
        started.append(cluster)
        return cluster

    yield start
    for cluster in started:
        cluster.stop()


def wait_until(clusters, condition, what, timeout=60.0, state=None):
    """Wait for ``condition`` while every cluster stays alive; return the seconds it took."""
    started = time.monotonic()
    wait_on_clusters(clusters, condition, what=what, timeout=timeout, state=state)
    return time.monotonic() - started


def running_with_worker(cluster, record, timeout=30.0):
    """Wait until ``record`` runs; return its stored row (with the worker's pid)."""
    cluster.wait_for(
        lambda: JobRecord.objects.filter(
            pk=record.pk, status="running", message__endswith="started"
        ).exists(),
        what=f"job {record.pk} to start",
        timeout=timeout,
    )
    return JobRecord.objects.get(pk=record.pk)


# -- a Redis server of our own ------------------------------------------------------------


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class OwnRedis:
    """A redis-server on a spare port, without persistence, that a test may stop."""

    def __init__(self, workdir):
        self.port = _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.workdir = workdir
        self.process = None

    def start(self):
        self.process = subprocess.Popen(
            [
                shutil.which("redis-server"),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        import redis

        client = redis.Redis.from_url(self.url, socket_connect_timeout=1)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                return client
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self):
        """Kill it outright: everything it held is gone (no persistence)."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)
            self.process = None


@pytest.fixture
def own_redis(tmp_path, settings, monkeypatch):
    """A Redis broker for this test only; the test process enqueues onto it."""
    from django_q.conf import Conf

    if shutil.which("redis-server") is None:
        service_missing("redis-server is not installed")
    server = OwnRedis(tmp_path)
    server.start()
    monkeypatch.setattr(Conf, "ORM", None)
    monkeypatch.setattr(Conf, "REDIS", server.url)
    yield server
    with contextlib.suppress(Exception):
        server.stop()
