"""The run wrapper with the job running in a thread, as it does in a worker."""

import threading
import uuid

import pytest

from django_jobprogress.execution import run_job
from django_jobprogress.models import JobRecord
from django_jobprogress.signals import job_finished, job_started
from tests import jobs

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def gate():
    name = uuid.uuid4().hex
    jobs.gates[name] = threading.Event()
    yield name
    jobs.gates.pop(name).set()


@pytest.fixture
def signal_event():
    """``wait(signal, job_id)`` -> an Event set when ``signal`` is sent for that job."""
    connected = []

    def wait(signal, record):
        event = threading.Event()

        def receiver(sender, record: JobRecord, **kwargs):
            if record.pk == wanted:
                event.set()

        wanted = record.pk
        signal.connect(receiver, weak=False)
        connected.append((signal, receiver))
        return event

    yield wait
    for signal, receiver in connected:
        signal.disconnect(receiver)


def run_in_thread(record):
    def target():
        from django.db import connection

        try:
            run_job(str(record.pk))
        except Exception:
            pass  # recorded on the row; a worker would hand it to django-q2
        finally:
            connection.close()

    thread = threading.Thread(target=target)
    thread.start()
    return thread


def test_running_job_stops_at_its_checkpoint_after_cancel(memory_queue, gate, signal_event):
    record = jobs.wait_for_gate.enqueue(gate)
    started = signal_event(job_started, record)
    thread = run_in_thread(record)
    assert started.wait(5)
    assert JobRecord.objects.get(pk=record.pk).request_cancel() is True
    jobs.gates[gate].set()
    thread.join(5)
    record.refresh_from_db()
    assert record.status == "cancelled"
    assert record.result is None and record.finished_at is not None


def test_second_delivery_while_the_first_runs_is_dropped(memory_queue, gate, signal_event):
    record = jobs.wait_for_gate.enqueue(gate)
    started = signal_event(job_started, record)
    thread = run_in_thread(record)
    assert started.wait(5)
    assert run_job(str(record.pk)) is None  # the duplicate returns at once
    jobs.gates[gate].set()
    thread.join(5)
    record.refresh_from_db()
    assert (record.status, record.attempts, record.result) == ("completed", 1, "released")


def test_job_without_progress_for_its_timeout_fails_and_stops(memory_queue, gate, signal_event):
    record = jobs.goes_silent.enqueue(gate)
    finished = signal_event(job_finished, record)
    thread = run_in_thread(record)
    assert finished.wait(10), "the progress timeout never fired"
    jobs.gates[gate].set()
    thread.join(5)
    assert not thread.is_alive()
    record.refresh_from_db()
    assert (record.status, record.error) == ("failed", "no progress after 0.3 s")
    assert record.progress == 0.1  # the call after the timeout raised instead of writing


def test_missing_job_is_dropped():
    assert run_job(str(uuid.uuid4())) is None


def test_task_that_cannot_be_imported_fails_the_job():
    record = JobRecord.objects.create(task_name="tests.jobs.vanished")
    with pytest.raises(Exception, match="cannot be imported"):
        run_job(str(record.pk))
    record.refresh_from_db()
    assert record.status == "failed"
    assert "task 'tests.jobs.vanished' cannot be imported" in record.error
