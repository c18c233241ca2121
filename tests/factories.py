"""Factories shared by the tests: rows in the states the tests start from."""

from django_jobprogress.models import JobRecord
from django_jobprogress.models.sql import database_now
from django_jobprogress.models.stats import count_ends_through


def start(record: JobRecord, host: str = "h", pid: int = 1, **claim) -> JobRecord:
    """Claim ``record`` for a worker, as a delivery does; return it refreshed (RUNNING).

    Fails the test if the claim is refused.
    """
    claimed = JobRecord.objects.claim(record.pk, host=host, pid=pid, **claim)
    assert claimed is not None, f"job {record.pk} could not be claimed"
    record.refresh_from_db()
    return record


def count_every_end() -> None:
    """Count every end committed so far into the dashboard's counts, as the sweep would
    over its next passes (on PostgreSQL a pass counts up to the last one's mark)."""
    now = database_now("default")
    counted = count_ends_through(now)
    assert counted >= now, f"the ends before {now} were not counted in 5 passes"
