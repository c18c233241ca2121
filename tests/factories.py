"""Factories shared by the tests: rows in the states the tests start from."""

from django_jobprogress.models import JobRecord
from django_jobprogress.models.sql import database_now
from django_jobprogress.models.stats import count_ends, counted_before


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
    for _pass in range(5):
        count_ends()
        counted = counted_before()
        if counted is not None and counted >= now:
            return
    raise AssertionError(f"the ends before {now} were not counted in 5 passes")
