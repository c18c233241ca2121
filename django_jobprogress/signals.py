"""Signals sent after a job's state change has committed.

Every signal is sent with ``sender=JobRecord`` and ``record=<JobRecord>`` (an
instance whose fields reflect the committed change).
"""

from django.dispatch import Signal

#: A worker claimed the job (every attempt): a hook for "it has begun" side effects.
job_started = Signal()
#: A progress write was persisted, a cancel request was accepted or withdrawn, or
#: an attempt went back to pending for a retry: what live views follow.
job_progress = Signal()
#: The job reached completed, failed or cancelled; sent once per job, so receivers
#: may notify or clean up without checking for repeats.
job_finished = Signal()

#: Sent with ``sender=Batch`` and ``batch=<Batch>`` once a batch has finished (after
#: its last member), where a batch's own follow-up belongs.
batch_finished = Signal()
