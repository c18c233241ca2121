"""The state layer: jobs and batches, and every transition of their status."""

from django_jobprogress.models.batches import Batch
from django_jobprogress.models.jobs import TOKEN_SALT, WORKER_LOST, JobRecord

__all__ = ["TOKEN_SALT", "WORKER_LOST", "Batch", "JobRecord"]
