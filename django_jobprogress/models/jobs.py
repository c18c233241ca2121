"""The state layer: ``JobRecord`` and every transition of a job's status.

Each transition is one conditional UPDATE guarded by its legal source states,
so two processes can never both win it; the method returns whether it won and,
once the change has committed, sends the matching signal.
"""

from __future__ import annotations

import uuid
from contextlib import nullcontext
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, models, transaction
from django.db.models import F, Q
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from django_jobprogress import fastsql
from django_jobprogress.exceptions import DuplicateJob
from django_jobprogress.models.tokens import SignedAccess
from django_jobprogress.signals import job_finished, job_progress, job_started
from django_jobprogress.snapshots import job_snapshot

TOKEN_SALT = "django_jobprogress.job-access"
WORKER_LOST = "worker lost"


class JobQuerySet(models.QuerySet):
    def unfinished(self) -> JobQuerySet:
        return self.filter(status__in=JobRecord.UNFINISHED)

    def finished(self) -> JobQuerySet:
        return self.exclude(status__in=JobRecord.UNFINISHED)

    def stalled(self, now: datetime | None = None) -> JobQuerySet:
        """RUNNING jobs whose heartbeat is older than their stall timeout."""
        return self.filter(status=JobRecord.Status.RUNNING, stale_after__lt=now or timezone.now())

    def silent(self, now: datetime | None = None) -> JobQuerySet:
        """RUNNING jobs that reported no progress within their ``progress_timeout``."""
        return self.filter(
            status=JobRecord.Status.RUNNING, progress_deadline__lt=now or timezone.now()
        )


class JobManager(models.Manager.from_queryset(JobQuerySet)):
    def create_pending(
        self, *, on_conflict: str = "return", **fields: Any
    ) -> tuple[JobRecord, bool]:
        """Insert a PENDING job; with a key, return (or raise on) the unfinished twin.

        The partial unique constraint on (task_name, key) decides races, so two
        concurrent calls can never both create an unfinished job.
        """
        key = fields.get("key")
        batch = fields.get("batch")
        for _attempt in range(3):
            try:
                with transaction.atomic(using=self.db):
                    record = self.create(**fields)
                    if batch is not None:
                        batch.count_new_member()
                    return record, True
            except IntegrityError:
                if key is None:
                    raise
                existing = self.unfinished().filter(task_name=fields["task_name"], key=key).first()
                if existing is None:  # the holder finished in between: try again
                    continue
                if on_conflict == "raise":
                    raise DuplicateJob(existing) from None
                return existing, False
        raise RuntimeError(f"could not enqueue {fields['task_name']!r} with key {key!r}")

    def claim(
        self,
        job_id: Any,
        *,
        host: str,
        pid: int,
        delivery_id: str = "",
        now: datetime | None = None,
        _instance: JobRecord | None = None,
    ) -> JobRecord | None:
        """Claim job ``job_id`` for this worker and return it, or None if it is not
        claimable (finished, cancelled, or running with a fresh heartbeat)."""
        now = now or timezone.now()
        values = self.model._claim_values(host, pid, delivery_id, now)
        record = fastsql.claim_returning(
            self.model,
            self.db,
            job_id,
            pending=JobRecord.Status.PENDING,
            running=JobRecord.Status.RUNNING,
            now=now,
            values=values,
        )
        if record is NotImplemented:  # no UPDATE ... RETURNING here: read, then claim
            record = _instance or self.filter(pk=job_id).order_by().first()
            if record is None or not record._claim_with_orm(values, now):
                return None
        elif record is None:
            return None
        if _instance is not None and record is not _instance:
            _instance.__dict__.update({k: v for k, v in record.__dict__.items() if k != "_state"})
            record = _instance
        record._send_on_commit(job_started)
        return record

    def fail_stalled(self, now: datetime | None = None) -> int:
        """Mark lost jobs (stale heartbeat) FAILED "worker lost"; return how many."""
        now = now or timezone.now()
        return sum(record.fail_lost(now) for record in self.stalled(now))

    def fail_silent(self, now: datetime | None = None) -> int:
        """Mark jobs past their ``progress_timeout`` FAILED; return how many."""
        now = now or timezone.now()
        return sum(record.fail_silent(now) for record in self.silent(now))


class JobRecord(SignedAccess, models.Model):
    """One run of a progress task: what it is doing, how far it got, how it ended."""

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        """Enqueued, not yet picked up by a worker (or waiting for a retry)."""
        RUNNING = "running", _("Running")
        """Claimed by a worker that is running it."""
        COMPLETED = "completed", _("Completed")
        """Returned normally; ``result`` holds its return value."""
        FAILED = "failed", _("Failed")
        """Raised, timed out, or its worker was lost; ``error`` says why."""
        CANCELLED = "cancelled", _("Cancelled")
        """Cancelled while pending, or stopped at a checkpoint after a cancel request."""

    UNFINISHED = (Status.PENDING, Status.RUNNING)
    token_salt = TOKEN_SALT

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    task_name = models.CharField(_("task"), max_length=255)
    status = models.CharField(
        _("status"), max_length=16, choices=Status.choices, default=Status.PENDING
    )
    args = models.JSONField(_("arguments"), default=list, blank=True)
    kwargs = models.JSONField(_("keyword arguments"), default=dict, blank=True)

    progress = models.FloatField(_("progress"), default=0.0)
    current = models.BigIntegerField(_("current"), default=0)
    total = models.BigIntegerField(_("total"), null=True, blank=True)
    stage = models.CharField(_("stage"), max_length=255, blank=True)
    message = models.TextField(_("message"), blank=True)
    fields = models.JSONField(_("status fields"), default=dict, blank=True)
    result = models.JSONField(_("result"), null=True, blank=True)
    error = models.TextField(_("error"), blank=True)
    traceback = models.TextField(_("traceback"), blank=True)

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("owner"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="jobprogress_jobs",
    )
    # NULL, not "": the partial unique constraint must ignore jobs without a key.
    batch = models.ForeignKey(
        "django_jobprogress.Batch",
        verbose_name=_("batch"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="jobs",
    )
    key = models.CharField(_("key"), max_length=255, null=True, blank=True)  # noqa: DJ001
    queue = models.CharField(_("queue"), max_length=100, blank=True)
    queue_task_id = models.CharField(_("queue task id"), max_length=64, blank=True)

    cancellable = models.BooleanField(_("cancellable"), default=True)
    cancel_threshold = models.FloatField(_("cancel threshold"), default=1.0)
    cancel_requested_at = models.DateTimeField(_("cancel requested at"), null=True, blank=True)
    cancel_requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("cancel requested by"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )

    stall_timeout = models.FloatField(_("stall timeout (s)"), default=60.0)
    progress_timeout = models.FloatField(_("progress timeout (s)"), null=True, blank=True)
    max_attempts = models.PositiveIntegerField(_("max attempts"), default=1)
    attempts = models.PositiveIntegerField(_("attempts"), default=0)

    created_at = models.DateTimeField(_("created"), default=timezone.now)
    started_at = models.DateTimeField(_("started"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)
    heartbeat_at = models.DateTimeField(_("heartbeat"), null=True, blank=True)
    progress_at = models.DateTimeField(_("last progress"), null=True, blank=True)
    stale_after = models.DateTimeField(_("stale after"), null=True, blank=True)
    progress_deadline = models.DateTimeField(_("progress deadline"), null=True, blank=True)
    worker_host = models.CharField(_("worker host"), max_length=255, blank=True)
    worker_pid = models.IntegerField(_("worker pid"), null=True, blank=True)

    objects = JobManager()

    class Meta:
        verbose_name = _("job")
        verbose_name_plural = _("jobs")
        ordering = ["-created_at"]
        permissions = [("cancel_jobrecord", "Can cancel job")]
        indexes = [
            models.Index(fields=["status", "-created_at"], name="jobprogress_status_created"),
            models.Index(fields=["task_name", "-created_at"], name="jobprogress_task_created"),
            models.Index(fields=["status", "finished_at"], name="jobprogress_status_finished"),
            models.Index(fields=["batch", "status"], name="jobprogress_batch_members"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["task_name", "key"],
                condition=Q(status__in=["pending", "running"], key__isnull=False),
                name="jobprogress_one_unfinished_per_key",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.task_name} [{self.status}] {self.pk}"

    # -- reading ---------------------------------------------------------

    @property
    def is_finished(self) -> bool:
        return self.status not in self.UNFINISHED

    @property
    def can_be_cancelled(self) -> bool:
        """Would ``request_cancel`` be accepted now (judged from this instance)?"""
        if self.status == self.Status.PENDING:
            return True
        return (
            self.status == self.Status.RUNNING
            and self.cancellable
            and self.progress < self.cancel_threshold
        )

    @classmethod
    def for_key(cls, task: Any, key: str) -> JobRecord | None:
        """The latest job of ``task`` (a task or its dotted name) with ``key``."""
        name = task if isinstance(task, str) else task.get_task_name()
        return cls.objects.filter(task_name=name, key=key).order_by("-created_at").first()

    def snapshot(self) -> dict[str, Any]:
        return job_snapshot(self)

    # -- transitions -------------------------------------------------------

    def _update(self, guard: Q, **changes: Any) -> bool:
        """Apply ``changes`` if the row still matches ``guard``; mirror them on self."""
        won = type(self)._base_manager.filter(guard, pk=self.pk).update(**changes) == 1
        if won:
            for name, value in changes.items():
                if not hasattr(value, "resolve_expression"):
                    setattr(self, name, value)
        return won

    def _update_if_status(self, statuses: tuple[str, ...], **changes: Any) -> bool:
        """``_update`` for the common guard "status in statuses", without the ORM's
        compile cost (see ``fastsql``)."""
        won = fastsql.update_if(type(self), self._state.db or "default", self.pk, statuses, changes)
        if won:
            for name, value in changes.items():
                setattr(self, name, value)
        return won

    def _send_on_commit(self, signal) -> None:
        transaction.on_commit(lambda: signal.send(sender=JobRecord, record=self))

    def claim(
        self, *, host: str, pid: int, delivery_id: str = "", now: datetime | None = None
    ) -> bool:
        """PENDING -> RUNNING for this worker; also retakes a RUNNING job whose heartbeat
        is stale (its worker is gone). A second delivery of a live job loses."""
        fresh = type(self).objects.claim(
            self.pk, host=host, pid=pid, delivery_id=delivery_id, now=now, _instance=self
        )
        return fresh is not None

    @classmethod
    def _claim_values(cls, host: str, pid: int, delivery_id: str, now: datetime) -> dict:
        values = {
            "status": cls.Status.RUNNING,
            # A retry starts over: nothing the previous attempt reported carries on.
            "progress": 0.0,
            "current": 0,
            "total": None,
            "stage": "",
            "message": "",
            "fields": {},
            "started_at": now,
            "heartbeat_at": now,
            "progress_at": now,
            "worker_host": host[:255],
            "worker_pid": pid,
        }
        if delivery_id:
            values["queue_task_id"] = str(delivery_id)[:64]
        return values

    def _claim_with_orm(self, values: dict[str, Any], now: datetime) -> bool:
        guard = Q(status=self.Status.PENDING) | Q(status=self.Status.RUNNING, stale_after__lt=now)
        won = self._update(
            guard,
            **values,
            attempts=F("attempts") + 1,
            stale_after=now + timedelta(seconds=self.stall_timeout),
            progress_deadline=self._progress_deadline(now),
        )
        if won:
            self.attempts += 1
        return won

    def _progress_deadline(self, now: datetime) -> datetime | None:
        if self.progress_timeout is None:
            return None
        return now + timedelta(seconds=self.progress_timeout)

    def save_progress(self, values: dict[str, Any], now: datetime | None = None) -> bool:
        """Persist reported progress (and refresh the heartbeat) while RUNNING."""
        now = now or timezone.now()
        won = self._update_if_status(
            (self.Status.RUNNING,),
            **values,
            heartbeat_at=now,
            progress_at=now,
            stale_after=now + timedelta(seconds=self.stall_timeout),
            progress_deadline=self._progress_deadline(now),
        )
        if won:
            self._send_on_commit(job_progress)
        return won

    def beat(self, now: datetime | None = None) -> bool:
        """Refresh the heartbeat of a RUNNING job; False once it is no longer running."""
        now = now or timezone.now()
        return self._update_if_status(
            (self.Status.RUNNING,),
            heartbeat_at=now,
            stale_after=now + timedelta(seconds=self.stall_timeout),
        )

    def _finish(self, guard: Q | tuple[str, ...], status: str, **changes: Any) -> bool:
        """The one way a job ends; a batch member's end is counted in the same
        transaction, so its batch's counters are never behind its members."""
        now = timezone.now()
        changes.update(status=status, finished_at=now, heartbeat_at=now)
        in_batch = self.batch_id is not None
        db = self._state.db or "default"
        with transaction.atomic(using=db) if in_batch else nullcontext():
            if isinstance(guard, tuple):
                won = self._update_if_status(guard, **changes)
            else:
                won = self._update(guard, **changes)
            if won and in_batch:
                from django_jobprogress.models.batches import Batch

                Batch.objects.member_finished(self.batch_id, status)
        if won:
            self._send_on_commit(job_finished)
        return won

    def complete(self, result: Any = None, **values: Any) -> bool:
        """RUNNING -> COMPLETED with ``result``; progress becomes 1.0."""
        values["progress"] = 1.0
        return self._finish(
            (self.Status.RUNNING,),
            self.Status.COMPLETED,
            result=result,
            error="",  # an earlier attempt's error no longer describes the job
            traceback="",
            **values,
        )

    def fail(self, error: str, traceback: str = "", **values: Any) -> bool:
        """PENDING/RUNNING -> FAILED with the error and its traceback."""
        return self._finish(
            tuple(self.UNFINISHED),
            self.Status.FAILED,
            error=error,
            traceback=traceback,
            **values,
        )

    def fail_attempt(self, error: str, traceback: str = "", **values: Any) -> bool:
        """An attempt raised: back to PENDING for the queue's retry while attempts
        remain, else FAILED. Returns whether this call changed the row."""
        if self.attempts < self.max_attempts:
            retried = self._update_if_status(
                (self.Status.RUNNING,),
                status=self.Status.PENDING,
                error=error,
                traceback=traceback,
                worker_host="",
                worker_pid=None,
                stale_after=None,
                progress_deadline=None,
                **values,
            )
            if retried:
                self._send_on_commit(job_progress)
            return retried
        return self._finish(
            (self.Status.RUNNING,),
            self.Status.FAILED,
            error=error,
            traceback=traceback,
            **values,
        )

    def fail_lost(self, now: datetime | None = None) -> bool:
        """RUNNING with a stale heartbeat -> FAILED "worker lost"."""
        now = now or timezone.now()
        guard = Q(status=self.Status.RUNNING, stale_after__lt=now)
        return self._finish(guard, self.Status.FAILED, error=WORKER_LOST)

    def fail_silent(self, now: datetime | None = None) -> bool:
        """RUNNING past its progress deadline -> FAILED "no progress after N s"."""
        now = now or timezone.now()
        guard = Q(status=self.Status.RUNNING, progress_deadline__lt=now)
        error = f"no progress after {self.progress_timeout:g} s"
        return self._finish(guard, self.Status.FAILED, error=error)

    def mark_cancelled(self, **values: Any) -> bool:
        """RUNNING -> CANCELLED, after the task stopped at a checkpoint."""
        return self._finish((self.Status.RUNNING,), self.Status.CANCELLED, **values)

    def request_cancel(self, by: Any = None) -> bool:
        """Ask the job to stop; True if the cancel took effect or is now pending.

        A PENDING job is CANCELLED at once and never runs. A RUNNING cancellable
        job below its threshold is flagged and stops at its next checkpoint.
        Anything else (finished, not cancellable, past the threshold) is refused.
        """
        by = by if getattr(by, "is_authenticated", False) else None
        now = timezone.now()
        by_id = by.pk if by is not None else None
        if self._finish(
            (self.Status.PENDING,),
            self.Status.CANCELLED,
            cancel_requested_at=now,
            cancel_requested_by_id=by_id,
        ):
            return True
        guard = Q(status=self.Status.RUNNING, cancellable=True, progress__lt=F("cancel_threshold"))
        won = self._update(
            guard,
            cancel_requested_at=Coalesce(F("cancel_requested_at"), now),
            cancel_requested_by_id=Coalesce(F("cancel_requested_by_id"), by_id),
        )
        if won:
            self.refresh_from_db(fields=["cancel_requested_at", "cancel_requested_by"])
            self._send_on_commit(job_progress)
        return won

    def decline_cancel(self) -> bool:
        """Withdraw a cancel request the job can no longer honour (it moved past its
        threshold before reaching a checkpoint), so viewers stop expecting it."""
        won = self._update(
            Q(status=self.Status.RUNNING, cancel_requested_at__isnull=False),
            cancel_requested_at=None,
            cancel_requested_by=None,
            progress_at=timezone.now(),  # keeps the snapshot's "updated" moving forward
        )
        if won:
            self._send_on_commit(job_progress)
        return won
