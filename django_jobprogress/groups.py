"""Channels group names, derived from ids in this one place.

Group names may hold only ASCII letters, digits, ``-``, ``_`` and ``.``, and
must be shorter than 100 characters: a UUID's hex form keeps them safe.
"""

from uuid import UUID


def job_group(job_id: UUID | str) -> str:
    return f"jobprogress.job.{UUID(str(job_id)).hex}"


def batch_group(batch_id: UUID | str) -> str:
    return f"jobprogress.batch.{UUID(str(batch_id)).hex}"
