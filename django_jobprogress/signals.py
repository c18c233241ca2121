"""Signals sent after a job's state change has committed.

Every signal is sent with ``sender=JobRecord`` and ``record=<JobRecord>`` (an
instance whose fields reflect the committed change).
"""

from django.dispatch import Signal

job_started = Signal()
job_progress = Signal()
job_finished = Signal()

# Sent with ``sender=Batch`` and ``batch=<Batch>`` once a batch has finished.
batch_finished = Signal()
