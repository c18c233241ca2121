"""The example site under test: the tests' database and broker switching
(``tests.settings``) with example_project's apps, URLs and ASGI application.

The browser test runs daphne and a qcluster with these settings against the
live test database. ``JOBPROGRESS_TEST_LAYER=redis`` puts the channel layer on
Redis (pushed updates); without it the layer is in memory and sockets watch the
database (the embedded default).
"""

import os

from tests.settings import *  # noqa: F403
from tests.settings import CHANNELS_PREFIX, INSTALLED_APPS, Q_CLUSTER, REDIS_URL, RUN_ID

DEBUG = True  # daphne serves the static files through ASGIStaticFilesHandler
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS = [
    *INSTALLED_APPS,
    "django.contrib.staticfiles",
    "example_project.demo.apps.DemoConfig",
]
ROOT_URLCONF = "example_project.urls"
ASGI_APPLICATION = "example_project.asgi.application"
STATIC_URL = "static/"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "demo:home"
LOGOUT_REDIRECT_URL = "login"
# Logging in must not cost a second of PBKDF2 per test (never do this in production).
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# Half the demo's pace: still seconds per job, enough to see it move.
DEMO_PACE = 0.5

# Its own queue, apart from the worker-process tests' cluster.
Q_CLUSTER = {**Q_CLUSTER, "name": f"jobprogress-browser-{RUN_ID}"}

JOBPROGRESS = {
    "QUEUE_ADAPTER": "django_jobprogress.adapters.queue_django_q2.DjangoQ2Queue",
    "WATCH_INTERVAL": 0.25,
}

if os.environ.get("JOBPROGRESS_TEST_LAYER") == "redis":
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL], "prefix": CHANNELS_PREFIX},
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
