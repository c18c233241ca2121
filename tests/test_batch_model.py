"""Batches against a model: random interleavings of member transitions, the seal,
the abort and the batch's cancel, checked after every step.

Hypothesis draws a batch (its callbacks, ``allow_failures``, a few members) and
a sequence of operations, applies them through the real methods (the claim,
``complete``, ``fail``/``fail_attempt``, ``request_cancel``, a worker's
checkpoint and ``close_cancelled``, the ``Batch.open`` block's exit with or
without an exception, ``batch.request_cancel``, ``batch.add``), then completes
whatever is left. After every step the stored batch, its members and its
callback jobs must match a plain-Python model of the rules:

- a batch takes new members until it is sealed or its cancel is requested;
- the counters are the members' final statuses; a sealed batch finishes once
  every member has (an empty one at once), never before it is sealed;
- it ends ``cancelled`` if its cancel was requested, else ``failed`` if a member
  failed and failures are not allowed, else ``completed``;
- each callback is enqueued at most once, and exactly once when due:
  ``on_complete`` always, ``on_success`` only if the batch ``completed``,
  ``on_failure`` iff a member failed; none after an abort.

Callback jobs are only recorded (the InMemoryQueue double; each example runs in
a transaction that is rolled back, so nothing is handed to a queue).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pytest
from django.db import connection, transaction
from django.db.models import Count
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from django_jobprogress import progress_task
from django_jobprogress.exceptions import JobCancelled
from django_jobprogress.jobrun import JobRun
from django_jobprogress.models import Batch, JobRecord
from django_jobprogress.models.batches import BatchSealed
from tests import jobs

pytestmark = pytest.mark.django_db

PENDING, RUNNING = "pending", "running"
COMPLETED, FAILED, CANCELLED = "completed", "failed", "cancelled"
FINAL = (COMPLETED, FAILED, CANCELLED)
KINDS = ("on_complete", "on_success", "on_failure")


@progress_task
def on_complete_cb(job, batch):
    return batch["id"]


@progress_task
def on_success_cb(job, batch):
    return batch["id"]


@progress_task
def on_failure_cb(job, batch):
    return batch["id"]


CALLBACK_TASKS = {
    "on_complete": on_complete_cb,
    "on_success": on_success_cb,
    "on_failure": on_failure_cb,
}
TASK_KIND = {task.get_task_name(): kind for kind, task in CALLBACK_TASKS.items()}


# -- the model ---------------------------------------------------------------------------


@dataclass
class BatchModel:
    """What the batch should look like, from the rules alone."""

    callbacks: set[str]
    allow_failures: bool
    members: list[str] = field(default_factory=list)
    flagged: set[int] = field(default_factory=set)  # running members asked to cancel
    sealed: bool = False
    cancel_requested: bool = False
    status: str = "open"
    fired: set[str] = field(default_factory=set)

    @property
    def finished(self) -> bool:
        return self.status in FINAL

    @property
    def shown_status(self) -> str:
        """``Batch.status``: open until sealed, running until finished."""
        if self.finished:
            return self.status
        return "running" if self.sealed else "open"

    def count(self, status: str) -> int:
        return self.members.count(status)

    def end(self, index: int, status: str) -> None:
        self.members[index] = status
        self.flagged.discard(index)
        self.maybe_finish()

    def cancel_member(self, index: int) -> bool:
        """``JobRecord.request_cancel``: a pending job ends, a running one is asked."""
        if self.members[index] == PENDING:
            self.end(index, CANCELLED)
            return True
        if self.members[index] == RUNNING:
            self.flagged.add(index)
            return True
        return False

    def cancel_batch(self) -> bool:
        if self.finished:
            return False
        self.cancel_requested = True
        for index in range(len(self.members)):
            self.cancel_member(index)
        self.maybe_finish()
        return True

    def maybe_finish(self) -> None:
        if self.finished or not self.sealed:
            return
        if any(status not in FINAL for status in self.members):
            return
        if self.cancel_requested:
            self.status = CANCELLED
        elif self.count(FAILED) and not self.allow_failures:
            self.status = FAILED
        else:
            self.status = COMPLETED
        due = {"on_complete"}
        if self.status == COMPLETED:
            due.add("on_success")
        if self.count(FAILED):
            due.add("on_failure")
        self.fired = due & self.callbacks


# -- the real thing --------------------------------------------------------------------------


class Scenario:
    """One batch driven through the real API, mirrored in a ``BatchModel``."""

    def __init__(self, callbacks: set[str], allow_failures: bool, members: int) -> None:
        self.model = BatchModel(callbacks=set(callbacks), allow_failures=allow_failures)
        self.block = Batch.open(
            "model",
            allow_failures=allow_failures,
            **{kind: CALLBACK_TASKS[kind] for kind in callbacks},
        )
        self.batch = self.block.__enter__()
        self.ids: list = []
        self.log: list[str] = []
        for _ in range(members):
            self.add()

    def record(self, index: int) -> JobRecord:
        return JobRecord.objects.get(pk=self.ids[index])

    # -- operations: each applies one call and the model's expectation ----------------

    def add(self) -> None:
        if self.model.sealed or self.model.cancel_requested:
            with pytest.raises(BatchSealed, match="is sealed or cancelled"):
                self.batch.add(jobs.add, 1, 2)
            return
        record = self.batch.add(jobs.add, len(self.ids), 1)
        self.ids.append(record.pk)
        self.model.members.append(PENDING)

    def claim(self, index: int) -> None:
        won = JobRecord.objects.claim(self.record(index).pk, host="worker", pid=1) is not None
        expected = self.model.members[index] == PENDING
        assert won is expected, self.log
        if won:
            self.model.members[index] = RUNNING

    def complete(self, index: int) -> None:
        won = self.record(index).complete({"n": index})
        expected = self.model.members[index] == RUNNING
        assert won is expected, self.log
        if won:
            self.model.end(index, COMPLETED)

    def fail(self, index: int) -> None:
        record = self.record(index)
        if record.status == RUNNING:
            won = record.fail_attempt("ValueError: boom")  # one attempt: final
        else:
            won = record.fail("could not enqueue")
        expected = self.model.members[index] in (PENDING, RUNNING)
        assert won is expected, self.log
        if won:
            self.model.end(index, FAILED)

    def cancel(self, index: int) -> None:
        won = self.record(index).request_cancel()
        assert won is self.model.cancel_member(index), self.log

    def stop(self, index: int) -> None:
        """A worker running member ``index`` reaches a checkpoint."""
        if self.model.members[index] != RUNNING:
            return
        run = JobRun(self.record(index), throttle=0, heartbeat_interval=60)
        if index not in self.model.flagged:
            run.progress.checkpoint()  # no cancel asked: it goes on
            return
        with pytest.raises(JobCancelled):
            run.progress.checkpoint()
        assert run.close_cancelled() is True, self.log
        self.model.end(index, CANCELLED)

    def seal(self) -> None:
        if not self.model.sealed:
            self.block.__exit__(None, None, None)  # the end of the ``with`` block
            self.model.sealed = True
            self.model.maybe_finish()
        else:
            assert self.batch.seal() is False, self.log

    def abort(self) -> None:
        """The ``with Batch.open(...)`` block raised: no callbacks, cancel, seal."""
        if self.model.sealed:
            return self.seal()
        error = RuntimeError("address book unreadable")
        assert self.block.__exit__(RuntimeError, error, None) is False  # re-raised
        self.model.callbacks.clear()
        self.model.cancel_batch()
        self.model.sealed = True
        self.model.maybe_finish()

    def batch_cancel(self) -> None:
        won = Batch.objects.get(pk=self.batch.pk).request_cancel()
        assert won is self.model.cancel_batch(), self.log

    def apply(self, name: str, index: int) -> None:
        if name in ("claim", "complete", "fail", "cancel", "stop"):
            if not self.ids:
                return
            index %= len(self.ids)
            self.log.append(f"{name}({index})")
            getattr(self, name)(index)
        else:
            self.log.append(name)
            getattr(self, name)()
        self.check()

    def drain(self, outcomes: list[str]) -> None:
        """Seal, then end every unfinished member, the n-th one by ``outcomes[n]``
        (cycled): ``complete`` (a worker runs it; it stops at a checkpoint if its
        cancel was asked), ``fail``, or ``cancel`` (and stop at a checkpoint)."""
        self.apply("seal", 0)
        unfinished = [i for i, status in enumerate(self.model.members) if status not in FINAL]
        for n, index in enumerate(unfinished):
            outcome = outcomes[n % len(outcomes)]
            if outcome == "fail":
                self.apply("fail", index)
                continue
            if outcome == "cancel":
                self.apply("cancel", index)
            elif self.model.members[index] == PENDING:
                self.apply("claim", index)
            if self.model.members[index] == RUNNING:
                self.apply("stop" if index in self.model.flagged else "complete", index)
        assert self.model.finished, self.log

    # -- the check ---------------------------------------------------------------------

    def check(self) -> None:
        model, batch = self.model, Batch.objects.get(pk=self.batch.pk)
        where = " ; ".join(self.log)
        statuses = dict(JobRecord.objects.filter(pk__in=self.ids).values_list("pk", "status"))
        assert [statuses[pk] for pk in self.ids] == model.members, where
        assert (batch.total, batch.succeeded, batch.failed, batch.cancelled) == (
            len(model.members),
            model.count(COMPLETED),
            model.count(FAILED),
            model.count(CANCELLED),
        ), where
        assert batch.status == model.shown_status, where
        assert batch.sealed is model.sealed, where
        assert (batch.finished_at is not None) is model.finished, where
        assert (batch.cancel_requested_at is not None) is model.cancel_requested, where
        flagged = set(
            JobRecord.objects.filter(
                pk__in=self.ids, status=RUNNING, cancel_requested_at__isnull=False
            ).values_list("pk", flat=True)
        )
        assert flagged == {self.ids[i] for i in model.flagged}, where
        snapshot = batch.snapshot()
        assert (snapshot["pending"], snapshot["running"]) == (
            model.count(PENDING),
            model.count(RUNNING),
        ), where
        # Callbacks: one job per due kind, none for the others, each stamped once.
        enqueued = dict(
            JobRecord.objects.filter(task_name__in=TASK_KIND, args__0__id=str(batch.pk))
            .order_by()
            .values_list("task_name")
            .annotate(n=Count("pk"))
        )
        assert {TASK_KIND[name]: n for name, n in enqueued.items()} == dict.fromkeys(
            model.fired, 1
        ), where
        for kind in KINDS:
            stamped = getattr(batch, f"{kind}_enqueued_at") is not None
            assert stamped is (kind in model.fired), (kind, where)
        for callback in JobRecord.objects.filter(
            task_name__in=TASK_KIND, args__0__id=str(batch.pk)
        ):
            seen = callback.args[0]
            assert (seen["status"], seen["pending"], seen["running"]) == (model.status, 0, 0)
            assert (seen["succeeded"], seen["failed"], seen["cancelled"]) == (
                batch.succeeded,
                batch.failed,
                batch.cancelled,
            ), where


# -- the test ----------------------------------------------------------------------------------

MEMBER_OPS = ["claim"] * 4 + ["complete"] * 3 + ["fail"] * 2 + ["cancel"] * 2 + ["stop"] * 2
# The block's end (seal or abort) is placed by ``end_at``; these are the extra calls
# of any time: a late add (refused once sealed), a second seal, the batch's cancel.
BATCH_OPS = ["add", "add", "seal", "batch_cancel"]
operations = st.lists(
    st.tuples(st.sampled_from(MEMBER_OPS * 2 + BATCH_OPS), st.integers(0, 63)), max_size=30
)
# Each step costs a handful of queries: fewer examples on PostgreSQL (a server round
# trip per query) than on SQLite.
EXAMPLES = 80 if connection.vendor == "postgresql" else 150
ALL = frozenset(KINDS)


def case(callbacks, allow_failures, members, ops, end, end_at, outcomes):
    """An explicit ``@example`` of the test below."""
    return example(
        callbacks=set(callbacks),
        allow_failures=allow_failures,
        members=members,
        ops=ops,
        end=end,
        end_at=end_at,
        outcomes=outcomes,
    )


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,  # no .hypothesis/ directory in the repository
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    callbacks=st.one_of(st.just(set(KINDS)), st.sets(st.sampled_from(KINDS))),
    allow_failures=st.booleans(),
    members=st.integers(0, 6),
    ops=operations,
    end=st.sampled_from(["seal"] * 4 + ["abort"]),
    end_at=st.integers(0, 30),
    outcomes=st.lists(st.sampled_from(["complete", "fail", "cancel"]), min_size=1, max_size=6),
)
# Cases worth having in every run, whatever the draw:
# an empty batch completes at the seal;
@case(ALL, False, 0, [], "seal", 0, ["complete"])
# cancelled after a failure: on_complete and on_failure, no on_success;
@case(ALL, False, 3, [("claim", 1), ("fail", 0), ("batch_cancel", 0)], "seal", 0, ["fail"])
# failures allowed and every member failed: all three callbacks;
@case(ALL, True, 2, [], "seal", 0, ["fail"])
# aborted with a running member: no callback, and it ends when that member stops;
@case(ALL, False, 2, [("claim", 0)], "abort", 1, ["complete"])
# nothing joins a batch whose cancel was requested, even before the seal.
@case(ALL, False, 1, [("batch_cancel", 0), ("add", 0)], "seal", 2, ["complete"])
def test_batch_follows_the_model(
    memory_queue, callbacks, allow_failures, members, ops, end, end_at, outcomes
):
    ops = [*ops[:end_at], (end, 0), *ops[end_at:]]
    with transaction.atomic():
        scenario = Scenario(callbacks, allow_failures, members)
        scenario.check()
        for name, index in ops:
            scenario.apply(name, index)
        event(f"before the drain: batch {scenario.model.shown_status}")
        scenario.drain(outcomes)
        event(f"ended {scenario.model.status}, fired {sorted(scenario.model.fired)}")
        transaction.set_rollback(True)  # each example starts from empty tables


# -- what Batch.open refuses -------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "error", "parts"),
    [
        ({"callback_kwargs": {"tag": "a\x00b"}}, ValueError, ["callback_kwargs['tag']", "x00"]),
        ({"callback_kwargs": {"r": [math.nan]}}, ValueError, ["callback_kwargs['r'][0]", "nan"]),
        ({"callback_kwargs": {"n": 2**63}}, ValueError, ["callback_kwargs['n']", str(2**63)]),
        ({"callback_kwargs": {"\ud800": 1}}, ValueError, ["callback_kwargs key", r"'\ud800'"]),
        ({"callback_kwargs": {"x": object()}}, TypeError, ["callback_kwargs['x']", "object"]),
        ({"callback_kwargs": [1]}, TypeError, ["callback_kwargs must be a dict", "[1]"]),
        ({"owner": "bob"}, TypeError, ["owner must be a User", "'bob'"]),
        ({"name": "blast\x00"}, ValueError, ["name", r"'blast\x00'"]),
        ({"name": "\udcff"}, ValueError, ["name", r"'\udcff'"]),
        ({"name": 42}, TypeError, ["name must be a string", "42"]),
    ],
)
def test_open_refuses_what_the_database_cannot_store_and_writes_nothing(options, error, parts):
    options = {"name": "blast", "on_complete": on_complete_cb, **options}
    name = options.pop("name")
    with pytest.raises(error) as caught, Batch.open(name, **options):
        pass
    for part in parts:
        assert part in str(caught.value)
    assert not Batch.objects.exists()


def test_open_refuses_an_unsaved_owner_and_takes_a_saved_or_anonymous_one(make_user):
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import AnonymousUser

    with (
        pytest.raises(ValueError, match="owner must be a saved User"),
        Batch.open("blast", owner=get_user_model()(username="ghost")),
    ):
        pass
    assert not Batch.objects.exists()
    user = make_user()
    with Batch.open("mine", owner=user) as mine, Batch.open("anon", owner=AnonymousUser()) as anon:
        pass
    assert Batch.objects.get(pk=mine.pk).owner == user
    assert Batch.objects.get(pk=anon.pk).owner is None


def test_a_refused_member_is_not_counted(memory_queue):
    with Batch.open("blast") as batch:
        with pytest.raises(ValueError, match=r"argument 2\[0\] must be a finite number"):
            jobs.add.enqueue(1, [math.nan], batch=batch)
        jobs.add.enqueue(1, 2, batch=batch)
    assert Batch.objects.get(pk=batch.pk).total == 1
    assert JobRecord.objects.filter(batch=batch).count() == 1
