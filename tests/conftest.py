import os

import pytest
from django.contrib.auth import get_user_model

from django_jobprogress.adapters.queue_memory import InMemoryQueue

REQUIRE_SERVICES = os.environ.get("JOBPROGRESS_REQUIRE_SERVICES") == "1"


def service_missing(reason: str) -> None:
    """Skip when a service is missing locally; fail in CI, where it must be there."""
    if REQUIRE_SERVICES:
        pytest.fail(f"required service missing: {reason}")
    pytest.skip(reason)


def clear_run_keys(client) -> None:
    """Delete this test run's Redis keys (queues, channel layers), and no one else's."""
    from django.conf import settings

    for key in client.scan_iter(match=f"*{settings.RUN_ID}*", count=1000):
        client.delete(key)


@pytest.fixture
def make_user(db):
    counter = iter(range(10_000))

    def make(*, staff=False, perms=(), **fields):
        user = get_user_model().objects.create_user(
            username=fields.pop("username", f"user{next(counter)}"),
            password="pw",
            is_staff=staff,
            **fields,
        )
        if perms:
            from django.contrib.auth.models import Permission

            user.user_permissions.set(
                Permission.objects.filter(
                    content_type__app_label="django_jobprogress", codename__in=perms
                )
            )
            user = get_user_model().objects.get(pk=user.pk)  # drop the perm cache
        return user

    return make


@pytest.fixture
def memory_queue(settings):
    """Use the InMemoryQueue double: jobs stay PENDING until ``run_pending()``."""
    settings.JOBPROGRESS = {
        **settings.JOBPROGRESS,
        "QUEUE_ADAPTER": "django_jobprogress.adapters.queue_memory.InMemoryQueue",
    }
    InMemoryQueue.clear()
    yield InMemoryQueue
    InMemoryQueue.clear()
