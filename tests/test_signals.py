import pytest

from django_jobprogress.signals import job_finished, job_progress, job_started
from tests import jobs


@pytest.fixture
def received():
    events = []

    def make_receiver(name):
        def receiver(sender, record, **kwargs):
            events.append((name, record.status, record.progress))

        return receiver

    receivers = {name: make_receiver(name) for name in ("started", "progress", "finished")}
    job_started.connect(receivers["started"])
    job_progress.connect(receivers["progress"])
    job_finished.connect(receivers["finished"])
    yield events
    job_started.disconnect(receivers["started"])
    job_progress.disconnect(receivers["progress"])
    job_finished.disconnect(receivers["finished"])


@pytest.mark.django_db(transaction=True)
def test_signals_follow_the_lifecycle(received):
    jobs.ZipExport.enqueue(["a", "b"])
    assert received == [
        ("started", "running", 0.0),
        ("progress", "running", 0.0),  # stage("zipping")
        ("progress", "running", 0.5),
        ("progress", "running", 1.0),
        ("finished", "completed", 1.0),
    ]


@pytest.mark.django_db
def test_signals_wait_for_the_commit(received, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        jobs.add.enqueue(1, 2)
    assert received == []  # nothing ran, nothing was announced before the commit
    assert len(callbacks) == 1
