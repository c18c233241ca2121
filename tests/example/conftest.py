"""Fixtures for the example site's pages, in the test process: its apps and URLs
over the tests' own settings (``tests.example.settings``, as the browser tests'
servers use), its modules, the demo user as ``manage.py demo`` makes it, and its
schedule."""

from types import SimpleNamespace

import pytest
from django.contrib.auth import get_user_model

from django_jobprogress import scheduler
from django_jobprogress.models import Schedule
from example_project import settings as example_settings
from tests.example import settings as site_settings

# Copied over the test settings; the test database has no table of the demo app
# (its Notice), which the pages under test here never read.
SITE = (
    "INSTALLED_APPS",
    "ROOT_URLCONF",
    "STATIC_URL",
    "LOGIN_URL",
    "LOGIN_REDIRECT_URL",
    "LOGOUT_REDIRECT_URL",
    "PASSWORD_HASHERS",
    "DEMO_PACE",
)
HEARTBEAT = example_settings.JOBPROGRESS["SCHEDULES"]["demo-heartbeat"]


@pytest.fixture
def site(settings):
    """The example site's apps and URLs."""
    for name in SITE:
        setattr(settings, name, getattr(site_settings, name))
    return settings


@pytest.fixture
def demo(site):
    """The example's modules, imported once its app is installed (its models cannot
    be imported before): ``demo.tasks``, ``demo.use_cases``, ``demo.command``."""
    from example_project.demo import tasks, use_cases
    from example_project.demo.management.commands import demo as command

    return SimpleNamespace(tasks=tasks, use_cases=use_cases, command=command)


@pytest.fixture
def demo_user(db):
    """The user ``manage.py demo`` creates: active, staff and superuser."""
    return get_user_model().objects.create_user(
        username="demo", password="demo", is_staff=True, is_superuser=True
    )


@pytest.fixture
def declare(site, memory_queue):
    """``declare(**entries)``: put ``entries`` in ``JOBPROGRESS["SCHEDULES"]`` and sync
    them, with the InMemoryQueue double (it retries, unlike the ImmediateQueue)."""

    def declare_and_sync(**entries):
        site.JOBPROGRESS = {**site.JOBPROGRESS, "SCHEDULES": entries}
        return scheduler.sync()

    return declare_and_sync


@pytest.fixture
def heartbeat(declare):
    """The example's own schedule, as its settings declare it, at a pace that does
    not sleep; returns the synced ``Schedule`` row."""
    declare(**{"demo-heartbeat": {**HEARTBEAT, "kwargs": {"pace": 0}}})
    return Schedule.objects.get(name="demo-heartbeat")
