"""PostgreSQL terminates every connection of the workers mid-job (a failover, an
administrator, a pooler restart): the job still ends true, within its attempts."""

import time
from pathlib import Path

import pytest
from django.db import connection

from django_jobprogress.models import JobRecord
from tests.faults.conftest import running_with_worker, wait_until
from tests.faults.jobs import GatedWriter, quick, runs

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


def terminate_other_backends():
    """Kill every other session on the test database; return how many."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return cursor.fetchone()[0]


@pytest.mark.skipif(
    connection.vendor != "postgresql", reason="PostgreSQL-only: JOBPROGRESS_TEST_DB=postgres"
)
def test_postgres_backends_terminated_mid_job(clusters, log, tmp_path, report):
    gate = tmp_path / "gate"
    cluster = clusters()
    record = GatedWriter.enqueue(log, str(gate))
    running_with_worker(cluster, record)
    wait_until([cluster], lambda: JobRecord.objects.get(pk=record.pk).current >= 3, "progress")

    assert terminate_other_backends() > 0
    terminated_at = time.monotonic()
    # The job's next write fails; its attempt is closed on a new connection and the
    # next attempt is handed off: wait until that one reports, then let it finish.
    wait_until(
        [cluster],
        lambda: (
            JobRecord.objects.filter(pk=record.pk, attempts__gte=2, current__gte=1).exists()
            or JobRecord.objects.get(pk=record.pk).is_finished
        ),
        "the job to be back at work on a new connection",
        state=lambda: JobRecord.objects.filter(pk=record.pk).values().first(),
    )
    recovery = time.monotonic() - terminated_at
    Path(gate).touch()
    done = cluster.wait_for_status(record, "completed", "failed")

    after = cluster.wait_for_status(quick.enqueue(log), "completed")  # the cluster recovered
    report([record, after], log, recovery_s=recovery)
    assert done.status == "completed", done.error
    assert runs(log)[str(record.pk)] == done.attempts
