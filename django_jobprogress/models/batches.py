"""``Batch``: many jobs tracked as one, with callbacks enqueued exactly once.

Completion is detected by counters on the batch row, updated in the same
transaction as each member's final transition (O(1) per job, never a scan of
the jobs table), so pruning member rows cannot stop a batch from finishing.
The transition that makes a sealed batch finished claims each callback with a
conditional UPDATE (``..._enqueued_at IS NULL``): one winner, even with many
workers committing at once.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, cast

from django.db import connections, models, transaction
from django.db.models import Case, F, Q, Value, When
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from django_jobprogress.models.base import user_field
from django_jobprogress.models.jobs import JobRecord
from django_jobprogress.models.sql import (
    DatabaseClock,
    clock_sql,
    count_member_end,
    guarded_update,
    plain_values,
    update_stamped_and_count,
)
from django_jobprogress.models.tokens import SignedAccess
from django_jobprogress.registry import ProgressTask, resolve_task
from django_jobprogress.signals import batch_finished
from django_jobprogress.snapshots import batch_snapshot
from django_jobprogress.validation import shown, validate_json, validate_owner, validate_text

logger = logging.getLogger(__name__)

BATCH_TOKEN_SALT = "django_jobprogress.batch-access"
CALLBACKS = ("on_complete", "on_success", "on_failure")
RESERVED_KWARGS = frozenset({"owner", "key", "queue", "on_conflict", "batch"})
FINAL_COUNTER = {"completed": "succeeded", "failed": "failed", "cancelled": "cancelled"}
#: Finished batches with a due callback not claimed: the sweep enqueues it
#: (``BatchManager.enqueue_lost_callbacks``). Indexed: normally none, for moments.
LOST_CALLBACKS = Q(finished_at__isnull=False) & (
    (~Q(on_complete="") & Q(on_complete_enqueued_at__isnull=True))
    | (~Q(on_success="") & Q(status="completed", on_success_enqueued_at__isnull=True))
    | (~Q(on_failure="") & Q(failed__gt=0, on_failure_enqueued_at__isnull=True))
)


class BatchSealed(Exception):
    """A job was added to a batch that is already sealed."""


def _callback_name(callback: ProgressTask | str | None) -> str:
    """A callback given as a progress task (class or ``@progress_task``) or dotted path."""
    if callback is None or callback == "":
        return ""
    if isinstance(callback, str):
        return callback
    if isinstance(callback, ProgressTask):
        return callback.get_task_name()
    raise TypeError(
        f"a batch callback must be a progress task or its dotted path, got {callback!r}"
    )


class BatchManager(models.Manager["Batch"]):
    def end_member(
        self, member: JobRecord, changes: dict[str, Any], guard: dict[str, Any], outcome: str
    ) -> bool | None:
        """On PostgreSQL: the member's end (``changes``, its ``finished_at`` stamped by
        the database), its count and, if it was the sealed batch's last member, the
        batch's end, in one statement, atomic by itself; then the callbacks (each
        claimed once; ``enqueue_lost_callbacks`` enqueues those a crash left behind).
        True if the member ended, False if another end won; None where it cannot
        be one statement (the caller then ends it in a transaction)."""
        db = member._state.db or "default"
        if connections[db].vendor != "postgresql":
            return None
        if set(guard) != {"status_in"} or not plain_values(changes):
            return None
        now = timezone.now()
        ended = update_stamped_and_count(
            member,
            changes,
            "finished_at",
            guard["status_in"],
            Batch,
            member.batch_id,
            FINAL_COUNTER[outcome],
            BATCH_STATUSES,
            now,
        )
        if ended is None:
            return False
        if ended[1] is not None:
            try:
                self.db_manager(db).get(pk=cast(Any, member.batch_id))._finished(ended[1])
            except Exception:  # the member's end is committed: the sweep has the rest
                logger.exception("batch %s: its callbacks are left to the sweep", member.batch_id)
        return True

    def enqueue_lost_callbacks(self, before: Any, limit: int = 100) -> int:
        """Enqueue the due callbacks of batches that finished before ``before`` but
        never had them claimed (the process that ended the last member died before it
        could, or enqueueing failed); each is still claimed once. Returns how many
        batches were looked at."""
        lost = self.filter(LOST_CALLBACKS, finished_at__lt=before).order_by("finished_at")
        batches = list(lost[:limit])
        for batch in batches:
            logger.warning("batch %s: enqueueing the callbacks its end left behind", batch.pk)
            batch._enqueue_due_callbacks(timezone.now())
        return len(batches)

    def member_finished(self, batch_id: Any, outcome: str) -> None:
        """Count a member's final transition; finish the batch if it was the last.

        Must run inside the transaction of that transition.
        """
        now = timezone.now()
        counter = FINAL_COUNTER[outcome]
        finished_at = count_member_end(Batch, self.db, batch_id, counter, BATCH_STATUSES, now)
        if finished_at is not None:
            self.get(pk=batch_id)._finished(finished_at)


class Batch(SignedAccess, models.Model):
    """A group of jobs that finishes when its last member does."""

    class Status(models.TextChoices):
        OPEN = "open", _("Open")
        """Jobs are still being added (inside ``Batch.open(...)``)."""
        RUNNING = "running", _("Running")
        """Sealed; some members have not finished."""
        COMPLETED = "completed", _("Completed")
        """Every member finished and none failed (or failures are allowed)."""
        FAILED = "failed", _("Failed")
        """A member failed and ``allow_failures`` is off."""
        CANCELLED = "cancelled", _("Cancelled")
        """The batch was cancelled."""

    UNFINISHED = (Status.OPEN, Status.RUNNING)
    token_salt = BATCH_TOKEN_SALT

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(_("name"), max_length=255)
    owner = user_field(_("owner"), related_name="jobprogress_batches")
    status = models.CharField(
        _("status"), max_length=16, choices=Status.choices, default=Status.OPEN
    )
    sealed = models.BooleanField(_("sealed"), default=False)
    allow_failures = models.BooleanField(_("allow failures"), default=False)

    total = models.PositiveIntegerField(_("jobs"), default=0)
    succeeded = models.PositiveIntegerField(_("succeeded"), default=0)
    failed = models.PositiveIntegerField(_("failed"), default=0)
    cancelled = models.PositiveIntegerField(_("cancelled"), default=0)

    on_complete = models.CharField(_("on complete"), max_length=255, blank=True)
    on_success = models.CharField(_("on success"), max_length=255, blank=True)
    on_failure = models.CharField(_("on failure"), max_length=255, blank=True)
    callback_kwargs = models.JSONField(_("callback arguments"), default=dict, blank=True)
    on_complete_enqueued_at = models.DateTimeField(null=True, blank=True)
    on_success_enqueued_at = models.DateTimeField(null=True, blank=True)
    on_failure_enqueued_at = models.DateTimeField(null=True, blank=True)

    created_at = models.DateTimeField(_("created"), default=timezone.now)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)
    cancel_requested_at = models.DateTimeField(_("cancel requested at"), null=True, blank=True)

    objects = BatchManager()

    class Meta:
        verbose_name = _("batch")
        verbose_name_plural = _("batches")
        ordering = ["-created_at"]
        permissions = [("cancel_batch", "Can cancel batch")]
        indexes = [
            models.Index(fields=["status", "-created_at"], name="jobprogress_batch_status"),
            # The admin changelist's order (created_at, then the primary key Django adds).
            models.Index(fields=["-created_at", "-id"], name="jobprogress_batch_created"),
            models.Index(
                fields=["finished_at"], condition=LOST_CALLBACKS, name="jobprogress_batch_lost"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} [{self.status}] {self.pk}"

    # -- creating ------------------------------------------------------------

    @classmethod
    @contextmanager
    def open(
        cls,
        name: str,
        *,
        on_complete: Any = None,
        on_success: Any = None,
        on_failure: Any = None,
        owner: Any = None,
        allow_failures: bool = False,
        callback_kwargs: dict[str, Any] | None = None,
    ) -> Iterator[Batch]:
        """Group the jobs enqueued with ``batch=`` inside the block; sealed on exit.

        An exception in the block cancels the batch and its pending jobs, and its
        callbacks never run; the exception propagates.
        """
        if not validate_text("name", name):
            raise ValueError(f"a batch needs a non-empty name, got {name!r}")
        owner = validate_owner("owner", owner)
        callback_kwargs = validate_json("callback_kwargs", callback_kwargs or {})
        if not isinstance(callback_kwargs, dict) or not all(
            isinstance(key, str) for key in callback_kwargs
        ):
            raise TypeError(
                f"callback_kwargs must be a dict with string keys, got {shown(callback_kwargs)}"
            )
        clashes = sorted(set(callback_kwargs) & RESERVED_KWARGS)
        if clashes:
            raise ValueError(
                f"callback_kwargs may not use {', '.join(clashes)}: enqueue() takes them itself"
            )
        callbacks = {
            "on_complete": _callback_name(on_complete),
            "on_success": _callback_name(on_success),
            "on_failure": _callback_name(on_failure),
        }
        for path in filter(None, callbacks.values()):
            resolve_task(path)  # a callback that cannot run fails here, not at the end
        batch = cls.objects.create(
            name=name[:255],
            owner=owner,
            allow_failures=bool(allow_failures),
            **callbacks,
            callback_kwargs=callback_kwargs,
        )
        try:
            yield batch
        except BaseException:
            try:
                batch.abort()
            except Exception:  # e.g. a broken outer transaction: its rollback undoes all
                logger.warning("batch %s: could not abort", batch.pk, exc_info=True)
            raise
        batch.seal()

    def add(self, task: Any, *args: Any, **kwargs: Any) -> Any:
        """``task.enqueue(*args, batch=self, **kwargs)``."""
        return task.enqueue(*args, batch=self, **kwargs)

    def count_new_members(self, count: int) -> None:
        """Called in the transaction that inserts ``count`` members; refuses a sealed or
        cancelled batch."""
        joinable = Q(sealed=False, cancel_requested_at__isnull=True)
        if not guarded_update(self, {"total": F("total") + count}, where=joinable):
            raise BatchSealed(
                f"batch {self.pk} ({self.name!r}) is sealed or cancelled: "
                "add jobs inside open(), before any cancel"
            )
        self.total += count

    # -- transitions -----------------------------------------------------------

    def seal(self) -> bool:
        """No more members; the batch can now finish (at once, if nothing is left)."""
        with transaction.atomic(using=self._state.db or "default"):
            changes = {"sealed": True, "status": self.Status.RUNNING}
            won = guarded_update(self, changes, where=Q(sealed=False))
            if won:
                self._finish_if_done()
        return won

    def abort(self) -> None:
        """Creation failed: drop the callbacks, cancel what was added, seal."""
        guarded_update(self, {"on_complete": "", "on_success": "", "on_failure": ""})
        self.request_cancel()
        self.seal()

    def _finish_if_done(self) -> bool:
        """Finish the batch if it is sealed and every member has finished; enqueue
        its callbacks. Exactly one transaction can win this."""
        done = F("succeeded") + F("failed") + F("cancelled")
        final = Case(
            When(cancel_requested_at__isnull=False, then=Value(self.Status.CANCELLED)),
            When(Q(failed__gt=0, allow_failures=False), then=Value(self.Status.FAILED)),
            default=Value(self.Status.COMPLETED),
        )
        # The database's clock, as its members' ends are stamped.
        db = self._state.db or "default"
        now = DatabaseClock() if clock_sql(connections[db]) else timezone.now()
        last_member_done = Q(sealed=True, finished_at__isnull=True, total__lte=done)
        won = guarded_update(self, {"status": final, "finished_at": now}, where=last_member_done)
        if won:
            self.refresh_from_db()
            self._finished(self.finished_at)
        return won

    def _finished(self, now: Any) -> None:
        """This transaction finished the batch (``finished_at = now``): enqueue its
        callbacks, each claimed once, and tell the watchers on commit."""
        self._enqueue_due_callbacks(now)
        transaction.on_commit(lambda: batch_finished.send(sender=Batch, batch=self))

    def _enqueue_due_callbacks(self, now: Any) -> None:
        snapshot = self.snapshot()  # what every callback receives
        for callback in self._callbacks_due():
            try:
                # Claim and enqueue together: if enqueueing fails, the claim is
                # undone too and the row honestly says it was never enqueued.
                with transaction.atomic(using=self._state.db or "default"):
                    self._enqueue_callback(callback, now, snapshot)
            except Exception:
                # Never undo the member's own transition for a broken callback.
                setattr(self, f"{callback}_enqueued_at", None)
                logger.exception("batch %s: could not enqueue %s", self.pk, callback)

    def _callbacks_due(self) -> list[str]:
        due = ["on_complete"]
        if self.status == self.Status.COMPLETED:
            due.append("on_success")
        if self.failed:
            due.append("on_failure")
        return [name for name in due if getattr(self, name)]

    def _enqueue_callback(self, callback: str, now: Any, snapshot: dict[str, Any]) -> None:
        not_yet = Q(**{f"{callback}_enqueued_at__isnull": True})
        if not guarded_update(self, {f"{callback}_enqueued_at": now}, where=not_yet):
            return
        resolve_task(getattr(self, callback)).enqueue(
            snapshot, owner=self.owner, **self.callback_kwargs
        )

    def request_cancel(self, by: Any = None) -> bool:
        """Cancel pending members now and ask running ones to stop; True unless the
        batch had already finished."""
        now = timezone.now()
        first_request = {"cancel_requested_at": Coalesce(F("cancel_requested_at"), Value(now))}
        if not guarded_update(self, first_request, where=Q(finished_at__isnull=True)):
            return False
        self.refresh_from_db(fields=["cancel_requested_at"])
        for member in JobRecord.objects.unfinished().filter(batch_id=self.pk):
            member.request_cancel(by=by)
        with transaction.atomic(using=self._state.db or "default"):
            self._finish_if_done()  # a sealed batch with nothing left ends now
        return True

    # -- reading ---------------------------------------------------------------

    @property
    def is_finished(self) -> bool:
        """Completed, failed or cancelled: the batch changes no more (its callbacks
        were enqueued as it finished), so it may be deleted and no longer cancelled."""
        return self.status not in self.UNFINISHED

    def live_counts(self) -> dict[str, Any]:
        """Pending and running members, and the summed progress of running ones.

        Only the RUNNING members are read (through the index on batch and status):
        a handful, however big the batch. The pending ones are what the counters
        leave: every member is counted in ``total`` when it is inserted and in a
        finished counter when it ends, so the rest are pending or running.
        """
        running = (
            JobRecord.objects.filter(batch_id=self.pk, status=JobRecord.Status.RUNNING)
            .order_by()
            .aggregate(n=models.Count("pk"), progress=models.Sum("progress"))
        )
        return self.counts_with(running["n"], running["progress"])

    def counts_with(self, running: int, running_progress: float | None) -> dict[str, Any]:
        """``live_counts()`` from its running members' count and summed progress, read
        by the caller (the dashboard reads them for many batches in one query)."""
        unfinished = self.total - self.succeeded - self.failed - self.cancelled
        return {
            "pending": max(unfinished - running, 0),
            "running": running,
            "running_progress": running_progress or 0.0,
        }

    def snapshot(self) -> dict[str, Any]:
        return batch_snapshot(self, self.live_counts())


#: A batch's final statuses by name, as the member-end statement takes them.
BATCH_STATUSES = {status.value: status.value for status in Batch.Status}
