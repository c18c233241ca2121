"""The state layer: ``JobRecord`` and every transition of a job's status.

Each transition is one conditional UPDATE guarded by its legal source states,
so two processes can never both win it; the method returns whether it won and,
once the change has committed, sends the matching signal.
"""

from __future__ import annotations

import logging
import uuid
from contextlib import nullcontext
from datetime import datetime, timedelta
from typing import Any, cast

from django.db import DatabaseError, IntegrityError, connections, models, transaction
from django.db.models import F, Q
from django.db.models.functions import Coalesce
from django.dispatch import Signal
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from django_jobprogress.exceptions import DuplicateJob, NotRetryable
from django_jobprogress.models.base import user_field
from django_jobprogress.models.sql import (
    claim_returning,
    guarded_update,
    insert_many,
    pipelined,
    update_stamped,
)
from django_jobprogress.models.tokens import SignedAccess
from django_jobprogress.registry import resolve_task
from django_jobprogress.signals import job_finished, job_progress, job_started
from django_jobprogress.snapshots import job_snapshot
from django_jobprogress.validation import storable_text

logger = logging.getLogger(__name__)

TOKEN_SALT = "django_jobprogress.job-access"
WORKER_LOST = "worker lost"


class JobQuerySet(models.QuerySet["JobRecord"]):
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

    def hand_offs_failed(self) -> int:
        """The queue refused these jobs: the PENDING ones stay PENDING, unsent, for the
        sweep; return how many."""
        return self.filter(status=JobRecord.Status.PENDING).update(handed_off_at=None)

    def never_handed_off(self) -> JobQuerySet:
        """PENDING jobs the queue never received (their hand-off failed)."""
        return self.filter(status=JobRecord.Status.PENDING, handed_off_at__isnull=True)


_JobManagerBase = models.Manager.from_queryset(JobQuerySet)


class JobManager(_JobManagerBase):  # type: ignore[type-arg]
    """``JobRecord.objects``: the queryset's filters, creating, claiming, sweeping."""

    def create_pending(
        self, *, on_conflict: str = "return", **fields: Any
    ) -> tuple[JobRecord, bool]:
        """Insert a PENDING job; with a key, return (or raise on) the unfinished twin.

        The partial unique constraint on (task_name, key) decides races, so two
        concurrent calls can never both create an unfinished job.
        """
        if fields.get("key") is None and fields.get("batch") is None:
            return self.create(**fields), True  # one statement: nothing to guard or count
        return self._insert_or_twin(on_conflict, fields)

    def _insert_or_twin(self, on_conflict: str, fields: dict[str, Any]) -> tuple[JobRecord, bool]:
        """Insert (counted in its batch, in the same transaction) or find the key's twin."""
        key, batch = fields.get("key"), fields.get("batch")
        for _attempt in range(3):
            try:
                with transaction.atomic(using=self.db):
                    record = self.create(**fields)
                    if batch is not None:
                        batch.count_new_members(1)
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

    def create_pending_many(
        self,
        shared: dict[str, Any],
        calls: list[tuple[list[Any], dict[str, Any], str | None]],
        *,
        on_conflict: str = "return",
        chunk_size: int = 500,
    ) -> tuple[list[JobRecord], list[JobRecord]]:
        """Insert one PENDING job per ``(args, kwargs, key)`` with the ``shared`` fields,
        ``chunk_size`` rows to an INSERT, in one transaction; return (every call's
        record, in order; the new ones).

        A key held by an unfinished job, or by an earlier call, gives that job
        (``on_conflict="return"``) or raises and writes nothing (``"raise"``). The
        batch, if any, counts the new jobs in the same transaction.
        """
        task_name, batch = shared["task_name"], shared.get("batch")
        held = self._unfinished_by_key(task_name, {key for _a, _k, key in calls if key})
        records: list[JobRecord | None] = []
        new: list[tuple[int, dict[str, Any]]] = []  # (position, its own fields)
        first_call: dict[str, int] = {}
        twins: list[tuple[int, int]] = []  # (position, the earlier call with its key)
        for position, (args, kwargs, key) in enumerate(calls, 1):
            twin: JobRecord | int | None = held.get(key) if key else None
            if twin is not None and on_conflict == "raise":
                raise DuplicateJob(twin)
            if twin is None and key in first_call:
                if on_conflict == "raise":
                    raise ValueError(
                        f"call {position}: key {key!r} is also the key of call {first_call[key]}"
                    )
                twin = first_call[key]
            if twin is not None:
                records.append(twin if isinstance(twin, JobRecord) else None)
                if not isinstance(twin, JobRecord):
                    twins.append((position, twin))
                continue
            if key:
                first_call[key] = position
            records.append(None)
            new.append((position, {"id": uuid.uuid4(), "args": args, "kwargs": kwargs, "key": key}))
        # A column empty in every new row (no arguments, no key) is written once, not per row.
        empty: dict[str, Any] = {"args": [], "kwargs": {}, "key": None}
        empty = {name: e for name, e in empty.items() if all(own[name] == e for _p, own in new)}
        for _position, own in new:
            for name in empty:
                del own[name]
        template = self.model(**shared, **empty)
        created: list[JobRecord] = []
        with transaction.atomic(using=self.db):
            # Without keys no INSERT can conflict, so none is waited for (PostgreSQL: the
            # next chunk is prepared while the last runs; any error is raised here).
            with nullcontext() if first_call else pipelined(self.db):
                for start in range(0, len(new), chunk_size):
                    chunk = new[start : start + chunk_size]
                    saved = self._insert_chunk(template, [own for _p, own in chunk], on_conflict)
                    for (position, _own), (record, is_new) in zip(chunk, saved, strict=True):
                        records[position - 1] = record
                        if is_new:
                            created.append(record)
            if created and batch is not None:
                batch.count_new_members(len(created))
        for position, first in twins:
            records[position - 1] = records[first - 1]
        return cast("list[JobRecord]", records), created

    def _unfinished_by_key(self, task_name: str, keys: set[str]) -> dict[str, JobRecord]:
        held: dict[str, JobRecord] = {}
        ordered = sorted(keys)
        for start in range(0, len(ordered), 500):
            chunk = ordered[start : start + 500]
            for record in self.unfinished().filter(task_name=task_name, key__in=chunk):
                held[record.key or ""] = record
        return held

    def _insert_chunk(
        self, template: JobRecord, rows: list[dict[str, Any]], on_conflict: str
    ) -> list[tuple[JobRecord, bool]]:
        """One statement for ``rows``; if a key was taken meanwhile (another process
        enqueued it), these rows go one by one instead, each following ``on_conflict``.
        Returns (record, whether new) per row."""
        if not any(row.get("key") for row in rows):  # nothing to fall back on: no savepoint
            return [(record, True) for record in insert_many(template, self.db, rows)]
        try:
            with transaction.atomic(using=self.db):
                return [(record, True) for record in insert_many(template, self.db, rows)]
        except IntegrityError:
            pass
        # By attname: the batch is its id here, so these inserts leave the counting to
        # the caller, which counts every new member at once.
        names = [field.attname for field in self.model._meta.concrete_fields]
        shared = {name: getattr(template, name) for name in names}
        return [self._insert_or_twin(on_conflict, {**shared, **row}) for row in rows]

    def claim(
        self,
        job_id: Any,
        *,
        host: str,
        pid: int,
        delivery_id: str = "",
        now: datetime | None = None,
    ) -> JobRecord | None:
        """Claim job ``job_id`` for this worker and return it RUNNING, or None if it is
        not claimable (finished, cancelled, running with a fresh heartbeat, or lost
        with no attempt left: the sweep fails that one).

        PENDING -> RUNNING, or a RUNNING job whose heartbeat is stale retaken while it
        has attempts left; one ``UPDATE ... RETURNING`` counts the attempt, so a second
        delivery of a live job loses.
        """
        now = now or timezone.now()
        record = claim_returning(
            self.model,
            self.db,
            job_id,
            pending=JobRecord.Status.PENDING,
            running=JobRecord.Status.RUNNING,
            now=now,
            values=self.model._claim_values(host, pid, delivery_id, now),
        )
        if record is not None:
            record._send_on_commit(job_started)
        return record

    def fail_stalled(self, now: datetime | None = None) -> int:
        """Mark lost jobs (stale heartbeat) FAILED "worker lost", attempts left or not;
        return how many. The automatic sweep rescues them instead (``recover_lost``)."""
        now = now or timezone.now()
        return sum(record.fail_lost(now) for record in self.stalled(now))

    def recover_stalled(
        self, now: datetime | None = None, limit: int = 500
    ) -> tuple[list[JobRecord], int]:
        """Rescue or fail up to ``limit`` lost jobs; return (rescued records, failed count).

        Rescued ones are PENDING again and must be handed to the queue by the caller.
        """
        now = now or timezone.now()
        rescued, failed = [], 0
        for record in self.stalled(now).order_by("stale_after")[:limit]:
            if record.recover_lost(now):
                if record.status == JobRecord.Status.PENDING:
                    rescued.append(record)
                else:
                    failed += 1
        return rescued, failed

    def fail_silent(self, now: datetime | None = None, limit: int | None = None) -> int:
        """Mark jobs past their ``progress_timeout`` FAILED (at most ``limit``, the
        longest silent first); return how many."""
        now = now or timezone.now()
        silent = self.silent(now).order_by("progress_deadline")[:limit]
        return sum(record.fail_silent(now) for record in silent)


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
    # The dotted path of the exception class behind ``error`` ("" when no exception of
    # the task's own is: a lost worker, a cancel); django.tasks' ``TaskError`` shows it.
    exception_class_path = models.CharField(_("exception class"), max_length=255, blank=True)

    owner = user_field(_("owner"), related_name="jobprogress_jobs")
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
    # When the job was last handed to the queue (stamped on insert, as the hand-off follows
    # the commit); NULL while PENDING means the queue refused it: the sweep tries again.
    handed_off_at = models.DateTimeField(
        _("handed off"), null=True, blank=True, default=timezone.now
    )

    # The slot a recurring schedule started this run for (its key is the schedule's name).
    scheduled_for = models.DateTimeField(_("scheduled for"), null=True, blank=True)
    # The job this one retries (``retry()``): an id, not a foreign key, so deleting a job
    # never touches others and prune_jobs keeps Django's one-statement delete.
    retry_of = models.UUIDField(_("retry of"), null=True, blank=True)

    cancellable = models.BooleanField(_("cancellable"), default=True)
    cancel_threshold = models.FloatField(_("cancel threshold"), default=1.0)
    cancel_requested_at = models.DateTimeField(_("cancel requested at"), null=True, blank=True)
    cancel_requested_by = user_field(_("cancel requested by"), related_name="+")

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
    # "host:pid" of the worker of each attempt that reached its end in a worker.
    worker_ids = models.JSONField(_("workers"), default=list, blank=True)

    objects = JobManager()

    class Meta:
        verbose_name = _("job")
        verbose_name_plural = _("jobs")
        ordering = ["-created_at"]
        permissions = [
            ("cancel_jobrecord", "Can cancel job"),
            ("retry_jobrecord", "Can retry job"),
        ]
        # The sweep reaches unfinished rows through the status index. No index holds
        # stale_after or progress_deadline: every heartbeat rewrites them, and PostgreSQL
        # updates a row in place (HOT) only while no indexed column changes.
        indexes = [
            models.Index(fields=["status", "-created_at"], name="jobprogress_status_created"),
            models.Index(fields=["task_name", "-created_at"], name="jobprogress_task_created"),
            models.Index(fields=["status", "finished_at"], name="jobprogress_status_finished"),
            # Only batch members: a job outside a batch costs this index nothing.
            models.Index(
                fields=["batch", "status"],
                condition=Q(batch__isnull=False),
                name="jobprogress_batch_members",
            ),
            # The admin changelist: its default order (created_at, then the primary key
            # Django adds), its queue filter, its key search and a job's retries. These
            # columns are written once, with the job, so heartbeats stay HOT.
            models.Index(fields=["-created_at", "-id"], name="jobprogress_created"),
            models.Index(fields=["queue", "-created_at"], name="jobprogress_queue_created"),
            models.Index(fields=["key"], condition=Q(key__isnull=False), name="jobprogress_key"),
            models.Index(
                fields=["retry_of"],
                condition=Q(retry_of__isnull=False),
                name="jobprogress_retry_of",
            ),
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
        """Completed, failed or cancelled: the job will change no more, so it may be
        deleted, retried (unless completed) and no longer be cancelled."""
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

    def _set(
        self,
        changes: dict[str, Any],
        *,
        status_in: tuple[str, ...],
        where: Q | None = None,
        savepoint: bool = False,
    ) -> bool:
        """Apply ``changes`` if the row is still in ``status_in`` (and matches
        ``where``); mirror them on self. With ``savepoint``, inside a caller's
        transaction, a refused write leaves that transaction usable."""
        db = self._state.db or "default"
        if savepoint and connections[db].in_atomic_block:
            with transaction.atomic(using=db):
                return guarded_update(self, changes, status_in=status_in, where=where)
        return guarded_update(self, changes, status_in=status_in, where=where)

    def _send_on_commit(self, signal: Signal) -> None:
        transaction.on_commit(lambda: signal.send(sender=JobRecord, record=self))

    @classmethod
    def _claim_values(cls, host: str, pid: int, delivery_id: str, now: datetime) -> dict[str, Any]:
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

    def _progress_deadline(self, now: datetime) -> datetime | None:
        if self.progress_timeout is None:
            return None
        return now + timedelta(seconds=self.progress_timeout)

    def save_progress(self, values: dict[str, Any], now: datetime | None = None) -> bool:
        """Persist reported progress (and refresh the heartbeat) while RUNNING."""
        now = now or timezone.now()
        changes = {
            **values,
            "heartbeat_at": now,
            "progress_at": now,
            "stale_after": now + timedelta(seconds=self.stall_timeout),
            "progress_deadline": self._progress_deadline(now),
        }
        won = self._set(changes, status_in=(self.Status.RUNNING,))
        if won:
            self._send_on_commit(job_progress)
        return won

    def beat(self, now: datetime | None = None) -> bool:
        """Refresh the heartbeat of a RUNNING job; False once it is no longer running."""
        now = now or timezone.now()
        changes = {"heartbeat_at": now, "stale_after": now + timedelta(seconds=self.stall_timeout)}
        return self._set(changes, status_in=(self.Status.RUNNING,))

    def _write_end(self, status: str, changes: dict[str, Any], guard: Guard) -> bool:
        """The end's UPDATE, its ``finished_at`` stamped by the database's clock (what
        the dashboard's counts read, ``models.stats.count_ends``); with a batch
        member's count in the same transaction."""
        changes.update(status=status, heartbeat_at=timezone.now())
        db = self._state.db or "default"
        # One statement is atomic by itself: no transaction of its own (no BEGIN and
        # COMMIT to wait for), but inside a caller's, a savepoint, so that a refused
        # write leaves that transaction usable for the minimal end.
        if connections[db].in_atomic_block:
            with transaction.atomic(using=db):
                won = self._end_in_one_statement(status, changes, guard)
        else:
            won = self._end_in_one_statement(status, changes, guard)
        if won is not None:
            return bool(won)
        # Elsewhere a member's end and its batch's count commit together.
        with transaction.atomic(using=db):
            won = self._stamp_end(changes, guard)
            if won:
                self._batches().objects.member_finished(self.batch_id, status)
        return won

    def _end_in_one_statement(
        self, status: str, changes: dict[str, Any], guard: Guard
    ) -> bool | None:
        """The end in one statement: a member's with its batch's count (PostgreSQL);
        None if it takes more (the caller then uses a transaction)."""
        if self.batch_id is None:
            return self._stamp_end(changes, guard)
        return cast(bool | None, self._batches().objects.end_member(self, changes, guard, status))

    def _batches(self) -> Any:
        return self._meta.get_field("batch").related_model

    def _stamp_end(self, changes: dict[str, Any], guard: Guard) -> bool:
        return update_stamped(self, changes, "finished_at", **guard) is not None

    def _finish(self, status: str, guard: Guard, **changes: Any) -> bool:
        """The one way a job ends; a batch member's end is counted in the same
        transaction, so its batch's counters are never behind its members.

        If the database refuses the end (a value it cannot store, a lost
        connection), a minimal end is written instead: the status (FAILED for a
        result that could not be stored) and an error saying what was refused.
        A job is never left RUNNING because its last values were bad.
        """
        _storable_error(changes)
        changes.setdefault("exception_class_path", "")  # an earlier attempt's no longer holds
        won = self._write_or_fall_back(
            lambda: self._write_end(status, dict(changes), guard),
            lambda exc: self._write_end(*_minimal_end(status, changes, exc), guard),
        )
        if won:
            self._send_on_commit(job_finished)
        return won

    def _write_or_fall_back(self, write: Any, fall_back: Any) -> bool:
        """``write()``; after a lost connection, once more on a new one; if the
        database refused the values themselves, ``fall_back(error)``."""
        try:
            return write()
        except DatabaseError as exc:
            error = exc
        if self._reconnect_if_broken():
            try:
                return write()
            except DatabaseError as exc:
                error = exc
        logger.warning(
            "job %s: its values were refused (%s), writing the minimal end", self.pk, error
        )
        return fall_back(error)

    def _reconnect_if_broken(self) -> bool:
        """Close a connection that an error left unusable (the next query opens a new
        one); True if it did. Inside a transaction the caller's rollback decides."""
        connection = connections[self._state.db or "default"]
        if connection.in_atomic_block:
            return False
        if connection.connection is None:
            return True  # a failed rollback already dropped it
        if connection.is_usable():
            return False
        connection.close()
        return True

    def complete(self, result: Any = None, **values: Any) -> bool:
        """RUNNING -> COMPLETED with ``result``; progress becomes 1.0."""
        values["progress"] = 1.0
        return self._finish(
            self.Status.COMPLETED,
            _RUNNING,
            result=result,
            error="",  # an earlier attempt's error no longer describes the job
            traceback="",
            **values,
        )

    def fail(self, error: str, traceback: str = "", **values: Any) -> bool:
        """PENDING/RUNNING -> FAILED with the error and its traceback."""
        return self._finish(
            self.Status.FAILED,
            _UNFINISHED,
            error=error,
            traceback=traceback,
            **values,
        )

    def _back_to_pending(self, guard: Guard, **changes: Any) -> bool:
        """RUNNING -> PENDING for another attempt; the caller hands it off again."""
        changes.update(
            status=self.Status.PENDING,
            worker_host="",
            worker_pid=None,
            stale_after=None,
            progress_deadline=None,
            handed_off_at=timezone.now(),
        )
        changes.setdefault("exception_class_path", "")
        _storable_error(changes)

        def minimal_retry(exc: DatabaseError) -> bool:
            status, minimal = _minimal_end(self.Status.PENDING, changes, exc)
            minimal.update({k: changes[k] for k in _RETRY_RESET})
            return self._set({"status": status, **minimal}, **guard, savepoint=True)

        won = self._write_or_fall_back(
            lambda: self._set(dict(changes), **guard, savepoint=True), minimal_retry
        )
        if won:
            self._send_on_commit(job_progress)
        return won

    def fail_attempt(self, error: str, traceback: str = "", **values: Any) -> bool:
        """An attempt raised: back to PENDING while attempts remain (the caller hands
        it to the queue again), else FAILED. Returns whether this call changed the row."""
        if self.attempts < self.max_attempts:
            return self._back_to_pending(_RUNNING, error=error, traceback=traceback, **values)
        return self._finish(
            self.Status.FAILED,
            _RUNNING,
            error=error,
            traceback=traceback,
            **values,
        )

    def fail_lost(self, now: datetime | None = None) -> bool:
        """RUNNING with a stale heartbeat -> FAILED "worker lost"."""
        now = now or timezone.now()
        return self._finish(self.Status.FAILED, _lost(now), error=WORKER_LOST)

    def recover_lost(self, now: datetime | None = None) -> bool:
        """RUNNING with a stale heartbeat: back to PENDING while attempts remain (the
        lost attempt stays counted; the caller hands it off again), else FAILED
        "worker lost". A re-delivery that retook the job meanwhile wins instead."""
        now = now or timezone.now()
        if self.attempts < self.max_attempts:
            return self._back_to_pending(
                _lost(now, Q(attempts__lt=F("max_attempts"))), error=WORKER_LOST, traceback=""
            )
        return self._finish(self.Status.FAILED, _lost(now), error=WORKER_LOST)

    def fail_silent(self, now: datetime | None = None) -> bool:
        """RUNNING past its progress deadline -> FAILED "no progress after N s"."""
        now = now or timezone.now()
        guard: Guard = {**_RUNNING, "where": Q(progress_deadline__lt=now)}
        error = f"no progress after {self.progress_timeout:g} s"
        return self._finish(self.Status.FAILED, guard, error=error)

    def take_hand_off(self, missing_since: datetime | None) -> bool:
        """Claim the right to hand this PENDING job to the queue again: its hand-off
        failed (``missing_since`` None) or its message was handed off at
        ``missing_since`` and is gone. One sweeper wins."""
        where = Q(handed_off_at=missing_since)
        if missing_since is None:
            where = Q(handed_off_at__isnull=True)
        return self._set({"handed_off_at": timezone.now()}, **_PENDING, where=where)

    def hand_off_failed(self) -> bool:
        """The queue refused the job: it stays PENDING, unsent, for the sweep."""
        return self._set({"handed_off_at": None}, **_PENDING)

    def mark_cancelled(self, **values: Any) -> bool:
        """RUNNING -> CANCELLED, after the task stopped at a checkpoint."""
        return self._finish(self.Status.CANCELLED, _RUNNING, **values)

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
            self.Status.CANCELLED,
            _PENDING,
            cancel_requested_at=now,
            cancel_requested_by_id=by_id,
        ):
            return True
        flag = {
            "cancel_requested_at": Coalesce(F("cancel_requested_at"), now),
            "cancel_requested_by_id": Coalesce(F("cancel_requested_by_id"), by_id),
        }
        below = Q(cancellable=True, progress__lt=F("cancel_threshold"))
        won = self._set(flag, **_RUNNING, where=below)
        if won:
            self.refresh_from_db(fields=["cancel_requested_at", "cancel_requested_by"])
            self._send_on_commit(job_progress)
        return won

    def retry(self, by: Any = None) -> JobRecord:
        """Enqueue a new job with this failed or cancelled job's task, arguments, owner,
        key and queue; return it (PENDING, ``retry_of`` this job's id).

        Raises ``NotRetryable`` for any other status, and ``DuplicateJob`` when the
        key's lock is held by an unfinished job. ``by`` is who asked (for the log).
        """
        self.refresh_from_db(fields=["status"])
        if self.status not in (self.Status.FAILED, self.Status.CANCELLED):
            raise NotRetryable(
                f"job {self.pk} is {self.status}: only a failed or cancelled job can be retried"
            )
        task = resolve_task(self.task_name)
        with transaction.atomic(using=self._state.db or "default"):
            retried = task.enqueue(
                *self.args,
                owner=self.owner,
                key=self.key,
                queue=self.queue or None,
                on_conflict="raise",
                **self.kwargs,
            )
            guarded_update(retried, {"retry_of": self.pk})
        logger.info("job %s retried as %s by %s", self.pk, retried.pk, by)
        return retried

    def decline_cancel(self) -> bool:
        """Withdraw a cancel request the job can no longer honour (it moved past its
        threshold before reaching a checkpoint), so viewers stop expecting it."""
        changes = {
            "cancel_requested_at": None,
            "cancel_requested_by": None,
            "progress_at": timezone.now(),  # keeps the snapshot's "updated" moving forward
        }
        won = self._set(changes, **_RUNNING, where=Q(cancel_requested_at__isnull=False))
        if won:
            self._send_on_commit(job_progress)
        return won


#: Keyword arguments of ``JobRecord._set`` naming the states a transition may start from.
Guard = dict[str, Any]
_PENDING: Guard = {"status_in": (JobRecord.Status.PENDING,)}
_RUNNING: Guard = {"status_in": (JobRecord.Status.RUNNING,)}
_UNFINISHED: Guard = {"status_in": JobRecord.UNFINISHED}


def _lost(now: datetime, also: Q | None = None) -> Guard:
    """RUNNING with a heartbeat older than its stall timeout (and ``also``)."""
    where = Q(stale_after__lt=now)
    return {**_RUNNING, "where": where & also if also is not None else where}


_RETRY_RESET = ("worker_host", "worker_pid", "stale_after", "progress_deadline", "handed_off_at")


def _storable_error(changes: dict[str, Any]) -> None:
    """Exception text is made storable, never refused: a job must always end."""
    for name in ("error", "traceback"):
        if name in changes:
            changes[name] = storable_text(str(changes[name]))


def _minimal_end(
    status: str, changes: dict[str, Any], exc: BaseException
) -> tuple[str, dict[str, Any]]:
    """The end written when the database refused the full one: nothing the job
    reported, only the outcome and why the rest is missing."""
    refused = "result" if status == JobRecord.Status.COMPLETED else "final values"
    error = storable_text(f"the job's {refused} could not be stored: {type(exc).__name__}: {exc}")
    if changes.get("error"):
        error = f"{changes['error']} ({error})"
    final = JobRecord.Status.FAILED if status == JobRecord.Status.COMPLETED else status
    return final, {"error": error[:10_000], "traceback": changes.get("traceback", "")}
