"""Settings for ``bench/push_latency.py``: ``bench.settings`` plus a web side.

Every process of a run (the ASGI server, the worker, the script itself) reads
these, configured by environment variables that the script sets:

``BENCH_PUSH_LAYER``   ``pubsub`` (channels-redis pub/sub layer), ``core`` (channels-redis
                       list-based layer) or ``memory`` (the embedded default: nothing is
                       pushed, sockets re-read their job every ``WATCH_INTERVAL``)
``BENCH_PUSH_REDIS``   Redis URL of the channel layer (default redis://127.0.0.1:6379/13)
``BENCH_PUSH_DESIGN``  ``hub`` (``django_jobprogress.routing``) or ``plain`` (one group
                       member per socket, ``bench.push_asgi.PlainJobConsumer``)

and the ``BENCH_DB*`` variables of ``bench.settings``.
"""

import os

from bench.settings import *  # noqa: F403

PUSH_REDIS = os.environ.get("BENCH_PUSH_REDIS", "redis://127.0.0.1:6379/13")
PUSH_LAYER = os.environ.get("BENCH_PUSH_LAYER", "pubsub")
PUSH_PREFIX = "jobprogress-bench-push"  # pub/sub channels are not per Redis database

ROOT_URLCONF = "bench.push_asgi"
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]
# Sessions in signed cookies: no table needed; clients here authenticate with ?token=.
SESSION_ENGINE = "django.contrib.sessions.backends.signed_cookies"

if PUSH_LAYER == "pubsub":
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [PUSH_REDIS], "prefix": PUSH_PREFIX},
        }
    }
elif PUSH_LAYER == "core":
    # redis-py 8 reads with a 5 s socket timeout by default, the same as this layer's
    # blocking BZPOPMIN: an idle receive() then raises TimeoutError (plain consumers
    # die, the hub retries after 1 s). A longer socket timeout avoids it.
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                "hosts": [{"address": PUSH_REDIS, "socket_timeout": 10}],
                "prefix": PUSH_PREFIX,
            },
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

JOBPROGRESS = {
    # The script enqueues into a list; the worker process runs the job itself.
    "QUEUE_ADAPTER": "django_jobprogress.adapters.queue_memory.InMemoryQueue",
    "THROTTLE": 0,
}
