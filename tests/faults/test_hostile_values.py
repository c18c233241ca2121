"""Values no database can store, sent by jobs running in a real worker: each job
ends FAILED with an error that names the value, and the cluster (its monitor
included) goes on running jobs."""

import pytest

from django_jobprogress.models import JobRecord
from tests.faults.jobs import HOSTILE, hostile, quick

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

# What each job's stored error must say about the value it refused.
NAMED = {
    "stage with NUL": "stage",
    "message with a lone surrogate": "message",
    "NaN in a field": "field 'ratio'",
    "Infinity nested in a field": "field 'stats'['r'][1]",
    "2**63 in a field": "field 'rows'",
    "total of 2**63": "total",
    "update(10**400)": "fraction",
    "result with NaN": "return value['ratio']",
    "exception text with NUL": "ValueError: bad\ufffdrow",
}


def test_hostile_values_through_a_real_worker(clusters, log, report):
    assert set(NAMED) == set(HOSTILE)
    cluster = clusters()
    records = {case: hostile.enqueue(case) for case in HOSTILE}
    for record in records.values():
        cluster.wait_for_status(record, "completed", "failed")
    after = cluster.wait_for_status(quick.enqueue(log), "completed")

    report([*records.values(), after], log)
    for case, record in records.items():
        stored = JobRecord.objects.get(pk=record.pk)
        assert stored.status == "failed", case
        assert NAMED[case] in stored.error, (case, stored.error)
