"""Settings for the benchmark scripts; every knob is an environment variable.

The scripts set these variables themselves, and the qcluster subprocess that
``bench/throughput.py`` starts inherits them, so both sides see the same
configuration:

``BENCH_DB``               ``postgres`` (default) or ``sqlite``
``BENCH_DB_NAME``          PostgreSQL database name or SQLite file path
``BENCH_CONN_MAX_AGE``     ``CONN_MAX_AGE`` in seconds (default 600; 0 closes after each job)
``BENCH_WORKERS``          django-q2 workers (default 2)
``BENCH_REDIS_URL``        django-q2 Redis broker (default redis://127.0.0.1:6379/14)
``BENCH_BROKER``           ``redis`` (default) or ``orm`` (django-q2's ORM broker on the database)
``BENCH_ADAPTER``          ``django_q2`` (default), ``immediate`` (in-process) or ``memory`` (kept)
``BENCH_Q_LOG_LEVEL``      django-q2 log level (default WARNING)
``BENCH_CHANNEL_LAYER``    ``memory`` (default: no push) or ``redis`` (push on the broker's Redis)
``BENCH_PG_OPTIONS``       libpq ``options`` of PostgreSQL sessions (``-c synchronous_commit=off``)
``BENCH_SERVER_SIDE_BINDING`` ``1``: psycopg 3's ``OPTIONS["server_side_binding"]``
``BENCH_PREPARE_THRESHOLD``  psycopg 3's ``prepare_threshold`` (unset: Django's None, no prepares)
``BENCH_SWEEP_INTERVAL``   the cluster's ``JOBPROGRESS["SWEEP_INTERVAL"]`` (15; ``none``: off)
"""

import os

SECRET_KEY = "bench-not-secret"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django_q",
    "channels",
    "django_jobprogress",
]

CONN_MAX_AGE = int(os.environ.get("BENCH_CONN_MAX_AGE", "600"))

if os.environ.get("BENCH_DB", "postgres") == "sqlite":
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.environ.get("BENCH_DB_NAME", "/tmp/jobprogress-bench.sqlite3"),
            "OPTIONS": {"timeout": 30},
            "CONN_MAX_AGE": CONN_MAX_AGE,
        }
    }
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": os.environ.get("BENCH_DB_NAME", "jobprogress_bench"),
            "USER": os.environ.get("PGUSER", "postgres"),
            "HOST": os.environ.get("PGHOST", "127.0.0.1"),
            "PORT": os.environ.get("PGPORT", "5432"),
            "CONN_MAX_AGE": CONN_MAX_AGE,
            "OPTIONS": {
                "options": os.environ.get("BENCH_PG_OPTIONS", ""),
                # psycopg 3 binds on the server (Django leaves its prepared statements
                # off unless ``prepare_threshold`` is set: BENCH_PREPARE_THRESHOLD).
                "server_side_binding": os.environ.get("BENCH_SERVER_SIDE_BINDING") == "1",
                "prepare_threshold": (
                    int(os.environ["BENCH_PREPARE_THRESHOLD"])
                    if os.environ.get("BENCH_PREPARE_THRESHOLD")
                    else None
                ),
            },
        }
    }

Q_CLUSTER = {
    "name": "jobprogress-bench",
    "workers": int(os.environ.get("BENCH_WORKERS", "2")),
    "redis": os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14"),
    "timeout": 60,
    "retry": 120,
    # Keep every Success row: both variants are timed from the rows' stop times,
    # and the default (250) also prunes with a SELECT ... FOR UPDATE per task.
    "save_limit": 0,
    "catch_up": False,
    "recycle": 1_000_000,
    "log_level": os.environ.get("BENCH_Q_LOG_LEVEL", "WARNING"),
}
if os.environ.get("BENCH_BROKER", "redis") == "orm":  # django-q2's ORM broker, on DATABASES
    del Q_CLUSTER["redis"]
    Q_CLUSTER["orm"] = "default"

_REDIS_LAYERS = {
    "redis": "channels_redis.core.RedisChannelLayer",
    "pubsub": "channels_redis.pubsub.RedisPubSubChannelLayer",
}
if os.environ.get("BENCH_CHANNEL_LAYER", "memory") in _REDIS_LAYERS:
    # Production-like: every job's start and end is pushed to its Channels group.
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": _REDIS_LAYERS[os.environ["BENCH_CHANNEL_LAYER"]],
            "CONFIG": {"hosts": [Q_CLUSTER["redis"]]},
        }
    }
else:
    # In-process layer: django_jobprogress does not push (sockets would poll the database).
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

_ADAPTERS = {
    "django_q2": "django_jobprogress.adapters.queue_django_q2.DjangoQ2Queue",
    "immediate": "django_jobprogress.adapters.queue_memory.ImmediateQueue",
    "memory": "django_jobprogress.adapters.queue_memory.InMemoryQueue",
}
# Django's task framework (or its backport) on this app: bench.tasks.noop_task.
TASKS = {"default": {"BACKEND": "django_jobprogress.backends.JobProgressBackend"}}

_SWEEP = os.environ.get("BENCH_SWEEP_INTERVAL", "15")
JOBPROGRESS = {
    "QUEUE_ADAPTER": _ADAPTERS[os.environ.get("BENCH_ADAPTER", "django_q2")],
    "SWEEP_INTERVAL": None if _SWEEP == "none" else float(_SWEEP),
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}
