import datetime
import math

import pytest

from django_jobprogress.exceptions import DuplicateJob, JobProgressConfigurationError
from django_jobprogress.models import JobRecord
from django_jobprogress.options import TaskOptions
from tests import jobs

pytestmark = pytest.mark.django_db(transaction=True)

Status = JobRecord.Status


def test_completed_job_keeps_result_and_full_progress():
    record = jobs.ZipExport.enqueue(["a", "b", "c"])
    record.refresh_from_db()
    assert record.status == Status.COMPLETED
    assert record.result == {"path": "/tmp/export.zip", "files": 3}
    assert record.progress == 1.0
    assert (record.current, record.total) == (3, 3)
    assert record.stage == "zipping"
    assert record.started_at <= record.finished_at


def test_function_form_gets_the_job_first_and_stores_fields():
    record = jobs.send_newsletter.enqueue(["a@x", "b@x"])
    record.refresh_from_db()
    assert record.task_name == "tests.jobs.send_newsletter"
    assert record.queue == "mail"
    assert record.status == Status.COMPLETED
    assert record.result == {"sent": 2}
    assert record.fields == {"step": "sending to b@x"}
    assert (record.current, record.total) == (2, 2)


def test_failure_keeps_message_and_traceback():
    record = jobs.Explode.enqueue("disk full")
    record.refresh_from_db()
    assert record.status == Status.FAILED
    assert record.error == "ValueError: disk full"
    assert "Traceback (most recent call last)" in record.traceback
    assert "raise ValueError(message)" in record.traceback
    assert record.progress == 0.25
    assert record.finished_at is not None


def test_timeout_raised_as_systemexit_marks_the_job_failed():
    record = jobs.TimesOut.enqueue()
    record.refresh_from_db()
    assert record.status == Status.FAILED
    assert "exceeded maximum timeout" in record.error


def test_result_that_is_not_json_fails_the_job():
    record = jobs.ReturnsObject.enqueue()
    record.refresh_from_db()
    assert record.status == Status.FAILED
    assert "return value is not JSON-serialisable" in record.error


def test_arguments_that_are_not_json_raise_and_write_nothing():
    with pytest.raises(TypeError, match=r"argument 1 is not JSON-serialisable: datetime.date"):
        jobs.add.enqueue(datetime.date(2026, 1, 1), 2)
    with pytest.raises(TypeError, match=r"argument 'when' is not JSON-serialisable"):
        jobs.ZipExport.enqueue(["a"], when={1, 2})
    assert not JobRecord.objects.exists()


def test_bad_enqueue_options_raise_and_write_nothing():
    with pytest.raises(ValueError, match="on_conflict must be 'return' or 'raise', got 'skip'"):
        jobs.add.enqueue(1, 2, on_conflict="skip")
    with pytest.raises(ValueError, match="key must be a non-empty string"):
        jobs.add.enqueue(1, 2, key=42)
    assert not JobRecord.objects.exists()


def test_task_not_at_module_level_is_refused():
    from django_jobprogress import JobProgressMixin

    class Local(JobProgressMixin):
        def run(self):
            return 1

    with pytest.raises(JobProgressConfigurationError, match="define progress tasks at module"):
        Local.enqueue()
    assert not JobRecord.objects.exists()


def test_bad_task_options_name_the_value():
    from django_jobprogress import progress_task

    with pytest.raises(ValueError, match=r"cancel_threshold must be between 0 and 1, got 1.5"):
        progress_task(cancel_threshold=1.5)
    with pytest.raises(TypeError, match="unknown options: retries"):
        progress_task(retries=3)
    with pytest.raises(ValueError, match="max_attempts must be an integer >= 1, got 0"):
        progress_task(max_attempts=0)
    with pytest.raises(
        ValueError, match=r"timeout must be a whole number of seconds >= 1, got 2\.5"
    ):
        progress_task(timeout=2.5)
    with pytest.raises(ValueError, match="stall_timeout must be a finite, non-negative number"):
        progress_task(stall_timeout=float("inf"))


def test_class_form_options_are_checked_at_the_class_statement():
    from django_jobprogress import JobProgressMixin

    with pytest.raises(TypeError, match="cancellable must be True or False, got 'yes'"):

        class Wrong(JobProgressMixin):
            cancellable = "yes"


def test_owner_is_recorded_and_anonymous_means_none(make_user):
    from django.contrib.auth.models import AnonymousUser

    user = make_user()
    assert jobs.add.enqueue(1, 2, owner=user).owner == user
    assert jobs.add.enqueue(1, 2, owner=AnonymousUser()).owner is None


def test_same_key_returns_the_unfinished_job(memory_queue):
    first = jobs.ZipExport.enqueue(["a"], key="product-42")
    second = jobs.ZipExport.enqueue(["b"], key="product-42")
    assert second.pk == first.pk
    assert JobRecord.objects.count() == 1
    assert memory_queue.queued == [str(first.pk)]
    with pytest.raises(DuplicateJob, match="with key 'product-42' is still pending"):
        jobs.ZipExport.enqueue(["c"], key="product-42", on_conflict="raise")
    other_task = jobs.add.enqueue(1, 2, key="product-42")
    assert other_task.pk != first.pk


def test_key_is_free_again_once_the_job_finished(memory_queue):
    first = jobs.ZipExport.enqueue(["a"], key="k")
    memory_queue.run_pending()
    second = jobs.ZipExport.enqueue(["a"], key="k")
    assert second.pk != first.pk
    assert JobRecord.for_key(jobs.ZipExport, "k") == second
    assert JobRecord.for_key("tests.jobs.ZipExport", "missing") is None


def test_job_cancelled_while_pending_never_runs(memory_queue):
    record = jobs.ZipExport.enqueue(["a"])
    assert record.request_cancel() is True
    memory_queue.run_pending()
    record.refresh_from_db()
    assert record.status == Status.CANCELLED
    assert record.started_at is None and record.attempts == 0


def test_retries_count_attempts_on_the_same_record(memory_queue):
    record = jobs.Flaky.enqueue(succeed_on=2)
    memory_queue.run_pending()
    record.refresh_from_db()
    assert record.status == Status.COMPLETED
    assert record.attempts == 2
    assert record.result == {"attempt": 2}
    assert JobRecord.objects.count() == 1
    # The retry started over: nothing of the failed first attempt shows.
    assert (record.stage, record.current, record.total) == ("attempt 2", 2, 5)
    assert (record.error, record.traceback) == ("", "")


def test_retries_end_failed_after_max_attempts(memory_queue):
    record = jobs.Flaky.enqueue(succeed_on=99)
    assert memory_queue.run_pending() == 3
    record.refresh_from_db()
    assert record.status == Status.FAILED
    assert record.attempts == 3
    assert record.error == "RuntimeError: attempt 3 failed"


def test_a_second_delivery_of_a_finished_job_is_dropped(memory_queue):
    from django_jobprogress.execution import run_job

    record = jobs.add.enqueue(2, 3)
    memory_queue.run_pending()
    assert run_job(str(record.pk)) is None
    record.refresh_from_db()
    assert record.attempts == 1 and record.result == 5


# -- values the databases cannot store ------------------------------------------------

BIG = 2**63


def nested(depth):
    value = 0
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "parts"),
    [
        pytest.param(("a\x00b", 1), {}, ValueError, ["argument 1", r"'a\x00b'"], id="nul"),
        pytest.param((1, "\ud800"), {}, ValueError, ["argument 2", r"'\ud800'"], id="surrogate"),
        pytest.param(
            (1, [0, math.nan]), {}, ValueError, ["argument 2[1]", "nan"], id="nan-in-list"
        ),
        pytest.param(
            (1,), {"b": {"r": math.inf}}, ValueError, ["argument 'b'['r']", "inf"], id="inf"
        ),
        pytest.param(
            (1,), {"b": {"x\x00": 1}}, ValueError, ["argument 'b' key", r"'x\x00'"], id="key"
        ),
        pytest.param((1, [BIG]), {}, ValueError, ["argument 2[0]", str(BIG)], id="2**63"),
        pytest.param(
            (1, {"n": -BIG - 1}), {}, ValueError, ["argument 2['n']", str(-BIG - 1)], id="-2**63-1"
        ),
        pytest.param((nested(10_000), 1), {}, ValueError, ["argument 1", "levels"], id="deep"),
        pytest.param(
            (1,), {"b\x00": 2}, ValueError, ["argument name", r"'b\x00'"], id="kwarg-name"
        ),
        pytest.param((1, 2), {"key": "k\x00"}, ValueError, ["key", r"'k\x00'"], id="key-nul"),
        pytest.param(
            (1, 2), {"key": "k\udfff"}, ValueError, ["key", r"'k\udfff'"], id="key-surrogate"
        ),
        pytest.param(
            (1, 2), {"queue": "q" * 101}, ValueError, ["queue", "at most 100"], id="queue-long"
        ),
        pytest.param((1, 2), {"queue": "m\x00"}, ValueError, ["queue", r"'m\x00'"], id="queue"),
        pytest.param((1, 2), {"owner": "bob"}, TypeError, ["owner", "'bob'"], id="owner-str"),
        pytest.param((1, 2), {"owner": 42}, TypeError, ["owner", "42"], id="owner-int"),
    ],
)
def test_enqueue_refuses_what_the_database_cannot_store_and_writes_nothing(
    memory_queue, args, kwargs, error, parts
):
    jobs.add.enqueue(1, 2)
    before = JobRecord.objects.count()
    with pytest.raises(error) as caught:
        jobs.add.enqueue(*args, **kwargs)
    for part in parts:
        assert part in str(caught.value)
    assert JobRecord.objects.count() == before
    assert len(memory_queue.queued) == 1


def test_enqueue_refuses_an_unsaved_user_as_owner():
    from django.contrib.auth import get_user_model

    with pytest.raises(ValueError, match="owner must be a saved User, got unsaved"):
        jobs.add.enqueue(1, 2, owner=get_user_model()(username="ghost"))
    assert not JobRecord.objects.exists()


def test_enqueue_accepts_a_queue_of_100_characters(memory_queue):
    assert jobs.add.enqueue(1, 2, queue="q" * 100).queue == "q" * 100


@pytest.mark.parametrize(
    ("kind", "parts"),
    [
        ("nan", ["return value['stats']['ratio']", "nan"]),
        ("nul", ["return value[1]", r"'a\x00b'"]),
        ("surrogate", ["return value key", r"'caf\udce9'"]),
        ("bigint", ["return value['rows'][0]", str(BIG)]),
        ("deep", ["return value", "levels deep"]),
    ],
)
def test_a_result_the_database_cannot_store_fails_the_job_naming_it(kind, parts):
    record = jobs.returns_unstorable.enqueue(kind)
    record.refresh_from_db()
    assert record.status == Status.FAILED
    assert record.error.startswith("TypeError: return value")
    for part in parts:
        assert part in record.error
    assert record.result is None


def test_accepted_arguments_stage_fields_and_result_round_trip_through_the_database(make_user):
    value = {
        "text": "café ☕ 😀 \t\x01 \\u0000",
        "keys": {"": 0, "é": 1, "😀": 2},
        "ints": [-BIG, BIG - 1],
        "floats": [0.1, -2.5e-300],
        "deep": nested(99),
    }
    owner = make_user()
    record = jobs.echo.enqueue(value, stage="étape 😀", owner=owner, key="ключ 😀", queue="q" * 100)
    record.refresh_from_db()
    assert record.status == Status.COMPLETED, record.error
    assert (record.args, record.kwargs) == ([value], {"stage": "étape 😀"})
    assert (record.stage, record.message) == ("étape 😀", "étape 😀")
    assert record.fields == {"echo": value}
    assert record.result == value
    assert (record.owner, record.key, record.queue) == (owner, "ключ 😀", "q" * 100)


# -- one task type ----------------------------------------------------------------------


def test_a_function_task_and_a_class_task_are_the_same_kind_of_task():
    from django_jobprogress import JobProgressMixin

    for task in (jobs.send_newsletter, jobs.ZipExport):
        assert issubclass(task, JobProgressMixin)
        # One enqueue and one perform, shared by both forms.
        assert task.enqueue.__func__ is JobProgressMixin.enqueue.__func__
        assert task.perform.__func__ is JobProgressMixin.perform.__func__
    assert jobs.send_newsletter.get_options() == TaskOptions(queue="mail")
    assert jobs.ZipExport.get_options() == TaskOptions(cancel_threshold=0.75)


def test_the_function_form_runs_with_an_instance_of_its_task_as_the_job():
    record = jobs.describe_context.enqueue()
    record.refresh_from_db()
    assert record.status == Status.COMPLETED, record.error
    assert record.result == {
        "task": "tests.jobs.describe_context",
        "is_mixin": True,
        "job_id": str(record.pk),
        "cancellable": False,
    }
    assert record.cancellable is False


def test_a_function_task_is_still_the_function_to_call_and_to_read():
    import inspect

    from django.utils.module_loading import import_string

    assert jobs.add("any job context", 2, 3) == 5  # a direct call writes nothing
    assert jobs.add(job=None, a=1, b=1) == 2
    assert not JobRecord.objects.exists()
    task = jobs.wait_for_gate
    assert (task.__name__, task.__qualname__, task.__module__) == (
        "wait_for_gate",
        "wait_for_gate",
        "tests.jobs",
    )
    assert task.__doc__.startswith("Reports ``fraction``, then waits")
    assert inspect.signature(task) == inspect.signature(task.__wrapped__)
    assert list(inspect.signature(task).parameters) == ["job", "gate", "fraction"]
    assert task.get_task_name() == "tests.jobs.wait_for_gate"
    assert import_string(task.get_task_name()) is task
    assert repr(task) == "<progress task tests.jobs.wait_for_gate>"
    # What the function form offered before it was a JobProgressMixin subclass.
    assert task.func is task.__wrapped__
    assert task.options == task.get_options() == TaskOptions()
    assert jobs.send_newsletter.options == TaskOptions(queue="mail")


def test_a_function_task_not_at_module_level_is_refused():
    from django_jobprogress import progress_task

    @progress_task
    def local(job):
        return 1

    assert local(None) == 1
    with pytest.raises(JobProgressConfigurationError, match="define progress tasks at module"):
        local.enqueue()
    assert not JobRecord.objects.exists()


def test_unknown_options_are_all_named():
    from django_jobprogress import progress_task

    with pytest.raises(
        TypeError, match=r"^progress_task\(\) got unknown options: priority, retries$"
    ):
        progress_task(retries=3, priority=1)


def test_the_task_api_reexports_what_moved_to_the_foundation():
    from django_jobprogress import options, registry, tasks

    assert tasks.TaskOptions is options.TaskOptions
    assert tasks.resolve_task is registry.resolve_task
    assert tasks.ProgressTask is registry.ProgressTask
