"""A Redis broker of the test's own, stopped and started again without persistence:
every queued message is gone, and every row must still end true."""

import time

import pytest
from django.db.models import Count, Max
from django.utils import timezone

from django_jobprogress.models import JobRecord
from tests.faults.conftest import wait_until
from tests.faults.jobs import quick, runs

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

QUEUED = 200


def finished(records):
    ids = [r.pk for r in records]
    return JobRecord.objects.filter(pk__in=ids).finished().count() == len(ids)


def test_broker_restart_with_200_jobs_queued_all_complete_once(clusters, own_redis, log, report):
    cluster = clusters(broker_url=own_redis.url)
    records = [quick.enqueue(log, 0.05) for _ in range(QUEUED)]
    # Some are done, most still wait in Redis, when Redis dies and comes back empty.
    wait_until([cluster], lambda: runs(log), "the first jobs to run")
    own_redis.stop()
    restarted_at = timezone.now()
    own_redis.start()
    ids = [r.pk for r in records]
    lost = JobRecord.objects.filter(pk__in=ids, status="pending").count()

    wait_until(
        [cluster],
        lambda: finished(records),
        "every job to finish",
        timeout=90,
        state=lambda: dict(JobRecord.objects.values_list("status").annotate(n=Count("pk"))),
    )
    # Recovered once the last lost message was handed to the queue again.
    handed_again = JobRecord.objects.filter(pk__in=ids).aggregate(last=Max("handed_off_at"))
    recovery = (handed_again["last"] - restarted_at).total_seconds()

    report(records, log, recovery_s=recovery, expected=["completed"] * QUEUED)
    assert lost > 0  # the restart really lost messages
    assert set(runs(log).values()) == {1}  # none ran twice


def test_enqueue_while_the_broker_is_down_succeeds_and_runs_once_it_is_back(
    clusters, own_redis, log, report
):
    cluster = clusters(broker_url=own_redis.url)
    own_redis.stop()

    record = quick.enqueue(log)  # the web request is not failed by the outage

    stored = JobRecord.objects.get(pk=record.pk)
    assert (stored.status, stored.handed_off_at, stored.error) == ("pending", None, "")
    back_at = time.monotonic()
    own_redis.start()
    cluster.wait_for_status(record, "completed", timeout=60)
    report([record], log, recovery_s=time.monotonic() - back_at, expected=["completed"])
    assert runs(log) == {str(record.pk): 1}
