"""Settings of the example site: SQLite and django-q2's ORM broker out of the box.

``JOBPROGRESS_DB=postgres`` (with libpq's ``PGHOST``/``PGUSER``/... variables)
switches to PostgreSQL; ``REDIS_URL`` (``redis://127.0.0.1:6379/0``) switches the
broker to Redis and the channel layer to channels-redis, so updates are pushed.
``DEMO_PACE`` scales how long the demo jobs take (1 is slow enough to watch);
``DEMO_SQLITE_PATH`` moves the SQLite database (default: example.sqlite3 at the root).

``JOBPROGRESS["SCHEDULES"]`` declares the recurring job of the "Recurring job" page;
``migrate`` (which ``manage.py demo`` runs) syncs it, and the cluster starts its runs.
"""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "example-project-not-secret")
DEBUG = True
ALLOWED_HOSTS = os.environ.get("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]").split(",")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_q",
    "channels",
    "django_jobprogress",
    "example_project.demo.apps.DemoConfig",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

ROOT_URLCONF = "example_project.urls"
ASGI_APPLICATION = "example_project.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

if os.environ.get("JOBPROGRESS_DB") == "postgres":
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": os.environ.get("PGDATABASE", "jobprogress_example"),
            "USER": os.environ.get("PGUSER", "postgres"),
            "HOST": os.environ.get("PGHOST", "127.0.0.1"),
            "PORT": os.environ.get("PGPORT", "5432"),
            "CONN_MAX_AGE": 600,
        }
    }
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.environ.get("DEMO_SQLITE_PATH", BASE_DIR / "example.sqlite3"),
            "OPTIONS": {"timeout": 20},
        }
    }

REDIS_URL = os.environ.get("REDIS_URL")

Q_CLUSTER = {
    "name": "example",
    "workers": 2,
    "timeout": 300,
    "retry": 360,
    "catch_up": False,
}
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"
    Q_CLUSTER["poll"] = 0.1

CHANNEL_LAYERS = {
    "default": (
        {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL]},
        }
        if REDIS_URL
        else {"BACKEND": "channels.layers.InMemoryChannelLayer"}
    )
}

DEMO_PACE = float(os.environ.get("DEMO_PACE", "1"))

# Django's task framework (django.tasks, or the django-tasks backport) on django-q2:
# the "Django's task framework" page's task runs through it.
TASKS = {"default": {"BACKEND": "django_jobprogress.backends.JobProgressBackend"}}

JOBPROGRESS = {
    "SCHEDULES": {
        # "Simple Recurring Jobs in Phoenix Apps": rerun every interval, up to three
        # attempts a run. Every third run's first attempt fails on purpose.
        "demo-heartbeat": {
            "task": "example_project.demo.tasks.heartbeat",
            "every": 20,
            "kwargs": {"pace": DEMO_PACE},
            "max_attempts": 3,
        },
    },
}

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "demo:home"
LOGOUT_REDIRECT_URL = "login"
STATIC_URL = "static/"
USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
