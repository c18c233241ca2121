"""The sweeper thread that every django-q2 worker starts: it sweeps by itself, and
the workers sharing a lock elect one sweeper, another taking over when it stops.
(Real clusters with killed workers are in ``tests/faults/``.)"""

import pytest

from django_jobprogress.models import WORKER_LOST, JobRecord
from django_jobprogress.sweeper import Sweeper
from tests import jobs
from tests.workers import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def sweepers():
    started = []

    def start():
        sweeper = Sweeper()
        assert sweeper.start()
        started.append(sweeper)
        return sweeper

    yield start
    for sweeper in started:
        sweeper.stop()


def test_a_stalled_job_is_failed_without_anyone_calling_the_sweep(memory_queue, settings, sweepers):
    settings.JOBPROGRESS = {**settings.JOBPROGRESS, "SWEEP_INTERVAL": 0.1}
    record = jobs.add.enqueue(1, 2)
    JobRecord.objects.claim(record.pk, host="gone", pid=1)
    # Its worker is gone: the heartbeat went stale long ago.
    JobRecord.objects.filter(pk=record.pk).update(stale_after=record.created_at)

    sweepers()

    wait_for(
        lambda: JobRecord.objects.filter(pk=record.pk, status="failed").exists(),
        timeout=10,
        what="the sweeper to fail the lost job",
    )
    assert JobRecord.objects.get(pk=record.pk).error == WORKER_LOST


def test_one_sweeper_is_elected_and_another_takes_over_when_it_stops(settings, sweepers):
    settings.JOBPROGRESS = {**settings.JOBPROGRESS, "SWEEP_INTERVAL": 0.1}
    first = sweepers()
    assert first.elected.wait(5)
    second = sweepers()
    assert not second.elected.wait(1.0)  # the lock is held: only one sweeps

    first.stop()

    assert second.elected.wait(5)
    assert not first.elected.is_set()


def test_sweeping_can_be_turned_off(settings):
    settings.JOBPROGRESS = {**settings.JOBPROGRESS, "SWEEP_INTERVAL": None}
    assert Sweeper().start() is False
