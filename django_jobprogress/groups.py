"""The push port's group names, derived from ids in this one place (with
``ChannelsPush`` they are Channels group names).

Channels allows group names of only ASCII letters, digits, ``-``, ``_`` and
``.``, shorter than 100 characters: a UUID's hex form keeps them safe.
"""

from uuid import UUID


def job_group(job_id: UUID | str) -> str:
    return f"jobprogress.job.{UUID(str(job_id)).hex}"


def batch_group(batch_id: UUID | str) -> str:
    return f"jobprogress.batch.{UUID(str(batch_id)).hex}"
