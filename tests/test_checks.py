import pytest
from django.core import checks
from django.test import override_settings

from django_jobprogress.checks import (
    check_push_adapter,
    check_queue_adapter,
    check_settings,
)

Q2 = "django_jobprogress.adapters.queue_django_q2.DjangoQ2Queue"


def test_default_settings_pass():
    assert check_settings() == []
    assert check_queue_adapter() == [] and check_push_adapter() == []


@override_settings(JOBPROGRESS=["THROTTLE"])
def test_setting_must_be_a_dict():
    assert check_settings() == [
        checks.Error("JOBPROGRESS must be a dict, got list.", id="jobprogress.E001")
    ]


@override_settings(JOBPROGRESS={"THROTLE": 1})
def test_unknown_key_is_named():
    assert check_settings() == [
        checks.Error(
            "JOBPROGRESS has an unknown key 'THROTLE'.",
            hint="Known keys: CHANNEL_LAYER, HEARTBEAT_INTERVAL, PRUNE_AFTER, PUSH_ADAPTER, "
            "PUSH_TIMEOUT, QUEUE_ADAPTER, REDELIVER_AFTER, SCHEDULES, STALL_TIMEOUT, "
            "SWEEP_INTERVAL, THROTTLE, TOKEN_MAX_AGE, WATCH_INTERVAL.",
            id="jobprogress.E002",
        )
    ]


@override_settings(JOBPROGRESS={"THROTTLE": "fast", "STALL_TIMEOUT": -5})
def test_wrong_type_and_negative_values_are_named():
    assert check_settings() == [
        checks.Error(
            "JOBPROGRESS['THROTTLE'] must be int or float, got 'fast'.", id="jobprogress.E003"
        ),
        checks.Error(
            "JOBPROGRESS['STALL_TIMEOUT'] must be a finite, non-negative number, got -5.",
            id="jobprogress.E004",
        ),
    ]


@override_settings(JOBPROGRESS={"HEARTBEAT_INTERVAL": 60, "STALL_TIMEOUT": 30})
def test_heartbeat_must_fit_in_the_stall_timeout():
    assert check_settings() == [
        checks.Error(
            'JOBPROGRESS["HEARTBEAT_INTERVAL"] (60) must be above 0 and below '
            'JOBPROGRESS["STALL_TIMEOUT"] (30).',
            hint="A few heartbeats should fit in the stall timeout, e.g. 10 and 60.",
            id="jobprogress.E006",
        )
    ]


@override_settings(JOBPROGRESS={"QUEUE_ADAPTER": "no.such.Adapter"})
def test_queue_adapter_that_cannot_be_imported():
    [error] = check_queue_adapter()
    assert error.id == "jobprogress.E005"
    assert error.msg.startswith("JOBPROGRESS[\"QUEUE_ADAPTER\"] = 'no.such.Adapter' cannot be")


@override_settings(JOBPROGRESS={"QUEUE_ADAPTER": "django_jobprogress.models.JobRecord"})
def test_queue_adapter_of_the_wrong_kind():
    assert check_queue_adapter() == [
        checks.Error(
            "JOBPROGRESS[\"QUEUE_ADAPTER\"] = 'django_jobprogress.models.JobRecord' is not a "
            "QueueAdapter subclass",
            id="jobprogress.E005",
        )
    ]


def test_each_adapter_names_the_app_it_needs():
    from django_jobprogress.adapters.push_channels import ChannelsPush
    from django_jobprogress.adapters.queue_django_q2 import DjangoQ2Queue

    with override_settings(INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth"]):
        assert DjangoQ2Queue().check()[:1] == [
            checks.Error(
                "'django_q' must be in INSTALLED_APPS to use django_jobprogress.",
                hint="Add 'django_q' to INSTALLED_APPS before 'django_jobprogress'.",
                id="jobprogress.E007",
            ),
        ]
        assert ChannelsPush().check() == [
            checks.Error(
                "'channels' must be in INSTALLED_APPS to use django_jobprogress.",
                hint="Add 'channels' to INSTALLED_APPS before 'django_jobprogress'.",
                id="jobprogress.E008",
            ),
        ]


@override_settings(
    INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", "django_jobprogress"],
    JOBPROGRESS={
        "QUEUE_ADAPTER": "django_jobprogress.adapters.queue_memory.ImmediateQueue",
        "PUSH_ADAPTER": "django_jobprogress.adapters.push_memory.NullPush",
    },
)
def test_other_adapters_need_neither_django_q_nor_channels():
    assert check_queue_adapter() == [] and check_push_adapter() == []


@pytest.mark.parametrize(
    ("q_cluster", "expected"),
    [
        ({"timeout": 30, "retry": 60}, []),
        (
            {"timeout": 60, "retry": 60},
            [
                checks.Warning(
                    'Q_CLUSTER["retry"] (60) is not larger than Q_CLUSTER["timeout"] (60): '
                    "django-q2 re-presents a task still running after retry seconds.",
                    hint='Set Q_CLUSTER["retry"] larger than Q_CLUSTER["timeout"].',
                    id="jobprogress.W001",
                )
            ],
        ),
        (
            {"retry": 90},
            [
                checks.Warning(
                    'Q_CLUSTER["timeout"] is not set, so a task may run longer than '
                    'Q_CLUSTER["retry"] (90 s) and be delivered twice.',
                    hint='Set Q_CLUSTER["timeout"] below Q_CLUSTER["retry"].',
                    id="jobprogress.W002",
                )
            ],
        ),
    ],
)
def test_django_q2_retry_must_exceed_timeout(settings, q_cluster, expected):
    settings.JOBPROGRESS = {"QUEUE_ADAPTER": Q2}
    settings.Q_CLUSTER = q_cluster
    assert check_queue_adapter() == expected


@override_settings(JOBPROGRESS={"PUSH_ADAPTER": "django_jobprogress.adapters.base.QueueAdapter"})
def test_push_adapter_of_the_wrong_kind():
    assert check_push_adapter() == [
        checks.Error(
            "JOBPROGRESS[\"PUSH_ADAPTER\"] = 'django_jobprogress.adapters.base.QueueAdapter' is "
            "not a PushAdapter subclass",
            id="jobprogress.E009",
        )
    ]


@override_settings(JOBPROGRESS={"PUSH_TIMEOUT": 0, "WATCH_INTERVAL": 0.0})
def test_push_timeout_and_watch_interval_must_be_above_zero():
    assert check_settings() == [
        checks.Error("JOBPROGRESS['PUSH_TIMEOUT'] must be above 0, got 0.", id="jobprogress.E010"),
        checks.Error(
            "JOBPROGRESS['WATCH_INTERVAL'] must be above 0, got 0.0.", id="jobprogress.E010"
        ),
    ]


@override_settings(JOBPROGRESS={"CHANNEL_LAYER": "pushes"})
def test_unknown_channel_layer_alias_is_a_warning():
    assert check_settings() == [
        checks.Warning(
            "JOBPROGRESS[\"CHANNEL_LAYER\"] = 'pushes' is not in CHANNEL_LAYERS, so progress is "
            "not pushed: sockets re-read the database instead.",
            hint="Use one of: default.",
            id="jobprogress.W003",
        )
    ]


@override_settings(
    JOBPROGRESS={
        "SCHEDULES": {
            "nightly": {"task": "tests.jobs.add", "cron": "0 3 * * *"},
            "typo": {"task": "tests.jobs.ad", "every": 60},
            "both": {"task": "tests.jobs.add", "cron": "0 3 * * *", "every": 60},
            "bad-cron": {"task": "tests.jobs.add", "cron": "0 25 * * *"},
            "extra": {"task": "tests.jobs.add", "every": 60, "retries": 2},
        }
    }
)
def test_each_bad_schedule_is_an_error_that_names_it():
    hint = "See the schedules section of docs/operations.rst."
    assert check_settings() == [
        checks.Error(
            "schedule 'typo': task 'tests.jobs.ad' cannot be imported: Module \"tests.jobs\" "
            'does not define a "ad" attribute/class',
            hint=hint,
            id="jobprogress.E011",
        ),
        checks.Error(
            "schedule 'both' needs exactly one of 'cron' and 'every'",
            hint=hint,
            id="jobprogress.E011",
        ),
        checks.Error(
            "schedule 'bad-cron': 'cron' must be a five-field cron expression such as "
            "'0 3 * * *', got '0 25 * * *'",
            hint=hint,
            id="jobprogress.E011",
        ),
        checks.Error(
            "schedule 'extra' has unknown keys 'retries' (known: task, cron, every, timezone, "
            "args, kwargs, queue, max_attempts)",
            hint=hint,
            id="jobprogress.E011",
        ),
    ]


@override_settings(JOBPROGRESS={"SCHEDULES": ["nightly"]})
def test_schedules_must_be_a_dict():
    assert check_settings() == [
        checks.Error(
            "JOBPROGRESS['SCHEDULES'] must be dict, got ['nightly'].", id="jobprogress.E003"
        )
    ]
