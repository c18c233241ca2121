"""``enqueue_many``: many jobs of one task in a few statements, all or nothing."""

import datetime
import uuid

import pytest
from django.conf import settings as django_settings
from django.db import IntegrityError, transaction

from django_jobprogress import Call
from django_jobprogress.adapters import get_queue_adapter
from django_jobprogress.adapters.queue_memory import InMemoryQueue
from django_jobprogress.exceptions import DuplicateJob
from django_jobprogress.models import Batch, JobRecord
from tests import jobs

pytestmark = pytest.mark.django_db(transaction=True)

Status = JobRecord.Status
Q2 = "django_jobprogress.adapters.queue_django_q2.DjangoQ2Queue"


class RefusingQueue(InMemoryQueue):
    """A broker that is down: every hand-off raises."""

    def enqueue_many(self, records, options):
        raise ConnectionError("broker down")


def test_each_call_gets_its_own_row_in_order_handed_off_after_commit(memory_queue, make_user):
    owner = make_user()
    calls = [(n, 10 * n) for n in range(1, 6)] + [Call(6, b=60)]
    with transaction.atomic():
        records = jobs.add.enqueue_many(calls, owner=owner, queue="bulk")
        assert memory_queue.queued == []  # nothing reaches the queue before the commit
    assert memory_queue.queued == [str(r.pk) for r in records]
    rows = JobRecord.objects.in_bulk([r.pk for r in records])
    assert [(rows[r.pk].args, rows[r.pk].kwargs) for r in records] == [
        *[([n, 10 * n], {}) for n in range(1, 6)],
        ([6], {"b": 60}),
    ]
    assert {(row.status, row.owner_id, row.queue) for row in rows.values()} == {
        (Status.PENDING, owner.pk, "bulk")
    }
    assert memory_queue.run_pending() == 6
    assert [JobRecord.objects.get(pk=r.pk).result for r in records] == [11, 22, 33, 44, 55, 66]


def _values(record):
    return {f.attname: getattr(record, f.attname) for f in JobRecord._meta.concrete_fields}


def test_the_records_returned_are_the_rows_as_saved(memory_queue, make_user):
    records = jobs.add.enqueue_many([(1, 2), Call(3, b=4, key="k"), ()], owner=make_user())
    assert [_values(r) for r in records] == [
        _values(JobRecord.objects.get(pk=r.pk)) for r in records
    ]
    first, second, _third = records
    first.fields["note"] = "mine"  # each record has its own values, not shared ones
    assert second.fields == {}
    first.stage = "edited"
    first.save()  # an UPDATE of the saved row, not a second INSERT
    assert JobRecord.objects.get(pk=first.pk).stage == "edited"
    assert JobRecord.objects.count() == 3


def test_post_init_receivers_see_each_record_returned(memory_queue):
    from django.db.models.signals import post_init

    seen = []

    def note(sender, instance, **kwargs):
        seen.append(instance)

    post_init.connect(note, sender=JobRecord)
    try:
        records = jobs.add.enqueue_many([(1, 2), (3, 4)])
    finally:
        post_init.disconnect(note, sender=JobRecord)
    assert all(any(r is s for s in seen) for r in records)
    assert [_values(r) for r in records] == [
        _values(JobRecord.objects.get(pk=r.pk)) for r in records
    ]


def test_a_class_task_enqueues_in_bulk_too(memory_queue):
    records = jobs.ZipExport.enqueue_many([(["a", "b"],), Call(["c"])])
    memory_queue.run_pending()
    assert [JobRecord.objects.get(pk=r.pk).result["files"] for r in records] == [2, 1]


def test_a_bad_argument_in_the_9000th_call_writes_none_of_10000(memory_queue):
    calls = [(n, 1) for n in range(10_000)]
    calls[8_999] = (datetime.date(2026, 1, 1), 1)
    with pytest.raises(TypeError, match=r"^call 9000: argument 1 is not JSON-serialisable"):
        jobs.add.enqueue_many(calls)
    assert not JobRecord.objects.exists()
    assert memory_queue.queued == []


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        ("not a call", TypeError, "call 2 must be a Call(...) or a tuple or list"),
        (Call(1, key=""), ValueError, "call 2: key must be a non-empty string"),
        (Call(1, b=float("nan")), ValueError, "call 2: argument 'b'"),
        (Call("a\x00b", 1), ValueError, "call 2: argument 1"),
    ],
)
def test_each_bad_call_is_named_and_nothing_is_written(memory_queue, call, error, message):
    with pytest.raises(error, match=message.replace("(", r"\(").replace(")", r"\)")):
        jobs.add.enqueue_many([(1, 2), call])
    assert not JobRecord.objects.exists()


def test_bad_shared_options_are_named(memory_queue):
    with pytest.raises(ValueError, match="on_conflict must be 'return' or 'raise', got 'skip'"):
        jobs.add.enqueue_many([(1, 2)], on_conflict="skip")
    with pytest.raises(ValueError, match="chunk_size must be a positive integer, got 0"):
        jobs.add.enqueue_many([(1, 2)], chunk_size=0)
    assert not JobRecord.objects.exists()


def test_no_calls_enqueue_nothing(memory_queue):
    assert jobs.add.enqueue_many([]) == []
    assert not JobRecord.objects.exists()


def test_taken_keys_give_the_unfinished_job_under_return(memory_queue):
    held = jobs.add.enqueue(0, 0, key="a")
    memory_queue.clear()
    records = jobs.add.enqueue_many(
        [Call(1, 1, key="a"), Call(2, 2, key="b"), Call(3, 3, key="b"), (4, 4)], chunk_size=2
    )
    assert records[0] == held
    assert records[2] == records[1] and records[1].args == [2, 2]
    assert JobRecord.objects.count() == 3  # held, "b" and the keyless one
    assert memory_queue.queued == [str(records[1].pk), str(records[3].pk)]


def test_a_taken_key_under_raise_writes_nothing(memory_queue):
    held = jobs.add.enqueue(0, 0, key="a")
    memory_queue.clear()
    with pytest.raises(DuplicateJob) as raised:
        jobs.add.enqueue_many([(1, 1), Call(2, 2, key="a")], on_conflict="raise")
    assert raised.value.existing == held
    with pytest.raises(ValueError, match="call 3: key 'b' is also the key of call 1"):
        jobs.add.enqueue_many(
            [Call(1, 1, key="b"), (2, 2), Call(3, 3, key="b")], on_conflict="raise"
        )
    assert list(JobRecord.objects.all()) == [held]
    assert memory_queue.queued == []


def test_a_key_taken_by_another_process_mid_insert_follows_on_conflict(memory_queue, monkeypatch):
    """The keys are looked up before the INSERT; one taken in between (a concurrent
    enqueue) makes that chunk's INSERT fail, and its rows go one by one."""
    manager = JobRecord.objects
    look_up = manager._unfinished_by_key

    def look_up_then_lose_the_race(task_name, keys):
        found = look_up(task_name, keys)
        jobs.add.enqueue(0, 0, key="raced")  # the other process wins the key
        return found

    monkeypatch.setattr(manager, "_unfinished_by_key", look_up_then_lose_the_race)
    records = jobs.add.enqueue_many([(1, 1), Call(2, 2, key="raced"), (3, 3)])
    raced = JobRecord.objects.get(key="raced")
    assert records[1] == raced and raced.args == [0, 0]
    assert [r.args for r in (records[0], records[2])] == [[1, 1], [3, 3]]
    assert JobRecord.objects.count() == 3


def test_members_in_bulk_are_counted_once_and_the_batch_completes(memory_queue):
    finished = []
    with Batch.open("blast", on_complete=jobs.batch_callback) as batch:
        records = jobs.add.enqueue_many([(n, 1) for n in range(250)], batch=batch, chunk_size=100)
        finished.append(Batch.objects.get(pk=batch.pk).total)
    assert finished == [250]
    memory_queue.run_pending()
    done = Batch.objects.get(pk=batch.pk)
    assert (done.status, done.total, done.succeeded) == (Batch.Status.COMPLETED, 250, 250)
    assert {r.batch_id for r in records} == {batch.pk}
    callbacks = JobRecord.objects.filter(task_name=jobs.batch_callback.get_task_name())
    assert [c.status for c in callbacks] == [Status.COMPLETED]


def test_a_failed_insert_writes_and_hands_off_nothing(memory_queue, monkeypatch):
    """Two rows of the second chunk get one id. On PostgreSQL the keyless chunks'
    INSERTs are sent without waiting, so the error comes after the last: still none of
    the rows is written and nothing reaches the queue."""
    real, twin, made = uuid.uuid4, uuid.uuid4(), []

    def new_id():
        made.append(None)
        return twin if len(made) in (7, 8) else real()

    monkeypatch.setattr("django_jobprogress.models.jobs.uuid.uuid4", new_id)
    with pytest.raises(IntegrityError):
        jobs.add.enqueue_many([(n, 1) for n in range(12)], chunk_size=5)
    monkeypatch.undo()
    assert not JobRecord.objects.exists()
    assert memory_queue.queued == []
    [record] = jobs.add.enqueue_many([(1, 1)])  # the connection is usable again
    assert memory_queue.queued == [str(record.pk)]


def test_a_sealed_batch_takes_no_bulk_members(memory_queue):
    with Batch.open("closed") as batch:
        pass
    with pytest.raises(Exception, match="is sealed or cancelled"):
        jobs.add.enqueue_many([(1, 1), (2, 2)], batch=batch)
    assert not JobRecord.objects.filter(batch=batch).exists()
    assert Batch.objects.get(pk=batch.pk).total == 0


def test_a_refused_hand_off_leaves_every_job_pending_for_the_sweep(settings):
    settings.JOBPROGRESS = {
        **settings.JOBPROGRESS,
        "QUEUE_ADAPTER": f"{__name__}.RefusingQueue",
    }
    records = jobs.add.enqueue_many([(n, 1) for n in range(5)], chunk_size=2)
    unsent = JobRecord.objects.never_handed_off()
    assert set(unsent.values_list("pk", flat=True)) == {r.pk for r in records}


# -- through django-q2's brokers ---------------------------------------------------------


@pytest.fixture
def django_q2(settings):
    settings.JOBPROGRESS = {**settings.JOBPROGRESS, "QUEUE_ADAPTER": Q2}
    return get_queue_adapter()


def test_the_orm_broker_gets_every_job_on_commit_and_nothing_on_rollback(django_q2):
    from django_q.brokers import get_broker
    from django_q.models import OrmQ
    from django_q.signing import SignedPackage

    with pytest.raises(RuntimeError), transaction.atomic():
        jobs.add.enqueue_many([(n, 1) for n in range(20)])
        raise RuntimeError("the view failed")
    assert not JobRecord.objects.exists()
    assert not OrmQ.objects.exists()

    records = jobs.add.enqueue_many([(n, 1) for n in range(20)], chunk_size=8)
    packages = [SignedPackage.loads(q.payload) for q in OrmQ.objects.order_by("id")]
    assert [p["args"] for p in packages] == [(str(r.pk),) for r in records]
    assert {(p["func"], p["ack_failure"], p["save"]) for p in packages} == {
        ("django_jobprogress.execution.run_job", True, False)
    }
    assert {q.key for q in OrmQ.objects.all()} == {django_settings.Q_CLUSTER["name"]}
    broker = get_broker()  # what a cluster's ORM broker sees: 20 messages to take now
    assert broker.queue_size() == 20
    taken = broker.dequeue()
    assert taken and {SignedPackage.loads(payload)["args"] for _id, payload in taken} <= {
        (str(r.pk),) for r in records
    }


@pytest.mark.services
def test_the_redis_broker_gets_every_job_in_order(django_q2, monkeypatch):
    from django_q.brokers import get_broker
    from django_q.conf import Conf
    from django_q.signing import SignedPackage

    from tests.workers import require_redis

    client = require_redis()
    queue = f"bulk-{django_settings.RUN_ID}"
    monkeypatch.setattr(Conf, "ORM", None)
    monkeypatch.setattr(Conf, "REDIS", django_settings.REDIS_URL)
    list_key = get_broker(queue).list_key
    client.delete(list_key)
    try:
        records = jobs.add.enqueue_many([(n, 1) for n in range(30)], queue=queue, chunk_size=7)
        packed = [SignedPackage.loads(p) for p in client.lrange(list_key, 0, -1)]
    finally:
        client.delete(list_key)
    assert [p["args"] for p in packed] == [(str(r.pk),) for r in records]
    assert {p["cluster"] for p in packed} == {queue}
