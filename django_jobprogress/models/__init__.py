"""The state layer: jobs, batches and schedules, and every transition of their state."""

from django_jobprogress.models.batches import Batch
from django_jobprogress.models.jobs import TOKEN_SALT, WORKER_LOST, JobRecord
from django_jobprogress.models.schedules import Schedule

__all__ = ["TOKEN_SALT", "WORKER_LOST", "Batch", "JobRecord", "Schedule"]
