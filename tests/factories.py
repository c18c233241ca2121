"""Factories shared by the tests: rows in the states the tests start from."""

from django_jobprogress.models import JobRecord


def start(record: JobRecord, host: str = "h", pid: int = 1, **claim) -> JobRecord:
    """Claim ``record`` for a worker, as a delivery does; return it refreshed (RUNNING).

    Fails the test if the claim is refused.
    """
    claimed = JobRecord.objects.claim(record.pk, host=host, pid=pid, **claim)
    assert claimed is not None, f"job {record.pk} could not be claimed"
    record.refresh_from_db()
    return record
