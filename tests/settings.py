"""Test settings. ``JOBPROGRESS_TEST_DB=postgres`` runs the suite on PostgreSQL.

A worker subprocess started by a test reuses these settings with
``JOBPROGRESS_TEST_DB_NAME`` naming the test database it must use, and
``JOBPROGRESS_TEST_BROKER=redis`` to take jobs from Redis instead of the ORM.
``JOBPROGRESS_TEST_SERVER_SIDE_BINDING=1`` turns on psycopg 3's server-side binding
on PostgreSQL (``OPTIONS["server_side_binding"]``), as some projects run, with the
statements run twice prepared (``prepare_threshold``).
"""

import json
import os
import tempfile

SECRET_KEY = "tests-not-secret"
USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
ROOT_URLCONF = "tests.urls"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django_q",
    "channels",
    "django_jobprogress",
]

MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

# One id per test run, inherited by the worker subprocesses a run starts, so that
# runs side by side never share a database, a queue or channel-layer keys.
RUN_ID = os.environ.setdefault("JOBPROGRESS_TEST_RUN_ID", str(os.getpid()))

DB_VENDOR = os.environ.get("JOBPROGRESS_TEST_DB", "sqlite")
WORKER_DB_NAME = os.environ.get("JOBPROGRESS_TEST_DB_NAME")
SERVER_SIDE_BINDING = os.environ.get("JOBPROGRESS_TEST_SERVER_SIDE_BINDING") == "1"

if DB_VENDOR == "postgres":
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": WORKER_DB_NAME or "jobprogress",
            "USER": os.environ.get("PGUSER", "postgres"),
            "HOST": os.environ.get("PGHOST", "127.0.0.1"),
            "PORT": os.environ.get("PGPORT", "5432"),
            # Threads of the test process (Channels' executor, the ticker) must not keep
            # connections open, or the test database cannot be dropped at the end.
            "CONN_MAX_AGE": 0,
            "TEST": {"NAME": f"test_jobprogress_{RUN_ID}"},
            "OPTIONS": {
                "server_side_binding": SERVER_SIDE_BINDING,
                # With it, the statements run twice are prepared (as the docs suggest).
                "prepare_threshold": 2 if SERVER_SIDE_BINDING else None,
            },
        }
    }
else:
    # A file, not :memory:, so a worker subprocess can open the same database.
    _sqlite = os.path.join(tempfile.gettempdir(), f"jobprogress-tests-{RUN_ID}.sqlite3")
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": WORKER_DB_NAME or _sqlite,
            "OPTIONS": {"timeout": 30},
            "TEST": {"NAME": _sqlite},
        }
    }

REDIS_URL = os.environ.get("JOBPROGRESS_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
# Channel-layer key prefix of this run (tests that configure a Redis layer use it).
CHANNELS_PREFIX = f"asgi-{RUN_ID}"

Q_CLUSTER = {
    "name": f"jobprogress-tests-{RUN_ID}",
    "workers": 2,
    "timeout": 20,
    "retry": 30,
    "poll": 0.05,
    "catch_up": False,
    "recycle": 10000,
}
if os.environ.get("JOBPROGRESS_TEST_BROKER") == "redis":
    Q_CLUSTER["redis"] = REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"

# A worker subprocess started by tests/test_live_push.py picks its channel layer by
# JOBPROGRESS_TEST_CHANNEL_LAYER (memory | redis-pubsub | redis-core), on
# JOBPROGRESS_TEST_CHANNEL_REDIS_URL (default REDIS_URL) with this run's key prefix.
_REDIS_LAYERS = {
    "redis-pubsub": "channels_redis.pubsub.RedisPubSubChannelLayer",
    "redis-core": "channels_redis.core.RedisChannelLayer",
}
_LAYER = os.environ.get("JOBPROGRESS_TEST_CHANNEL_LAYER", "memory")
if _LAYER in _REDIS_LAYERS:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": _REDIS_LAYERS[_LAYER],
            "CONFIG": {
                "hosts": [os.environ.get("JOBPROGRESS_TEST_CHANNEL_REDIS_URL", REDIS_URL)],
                "prefix": CHANNELS_PREFIX,
            },
        }
    }
elif _LAYER == "memory":
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
else:
    raise ValueError(f"JOBPROGRESS_TEST_CHANNEL_LAYER={_LAYER!r}: memory, redis-pubsub, redis-core")

_ADAPTERS = {
    "immediate": "django_jobprogress.adapters.queue_memory.ImmediateQueue",
    "django_q2": "django_jobprogress.adapters.queue_django_q2.DjangoQ2Queue",
}
JOBPROGRESS = {
    "QUEUE_ADAPTER": _ADAPTERS[os.environ.get("JOBPROGRESS_TEST_ADAPTER", "immediate")],
    "THROTTLE": 0,
    # Clusters started by tests sweep often, so recovery shows within a second.
    "SWEEP_INTERVAL": 0.5,
}
# A cluster started by a fault test takes its own limits, as JSON:
# JOBPROGRESS_TEST_SETTINGS='{"STALL_TIMEOUT": 2}', JOBPROGRESS_TEST_Q_CLUSTER='{"retry": 2}'.
JOBPROGRESS.update(json.loads(os.environ.get("JOBPROGRESS_TEST_SETTINGS", "{}")))
Q_CLUSTER.update(json.loads(os.environ.get("JOBPROGRESS_TEST_Q_CLUSTER", "{}")))
