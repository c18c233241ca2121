"""The state layer: jobs, batches, schedules and the per-minute counts, and every
transition of their state."""

from django_jobprogress.models.batches import Batch
from django_jobprogress.models.dashboard import JobDashboard
from django_jobprogress.models.jobs import TOKEN_SALT, WORKER_LOST, JobRecord
from django_jobprogress.models.schedules import Schedule
from django_jobprogress.models.stats import EndsCounted, JobMinute

__all__ = [
    "TOKEN_SALT",
    "WORKER_LOST",
    "Batch",
    "EndsCounted",
    "JobDashboard",
    "JobMinute",
    "JobRecord",
    "Schedule",
]
