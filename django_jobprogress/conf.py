"""The ``JOBPROGRESS`` setting: defaults in one place, read through a cached getter."""

from functools import cache
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

DEFAULTS: dict[str, Any] = {
    # Seconds between two persisted progress writes of one job (0 writes every change).
    "THROTTLE": 0.1,
    # A RUNNING job whose heartbeat is older than this many seconds is "worker lost".
    "STALL_TIMEOUT": 60.0,
    # Seconds between two heartbeats of a running job; must be well below STALL_TIMEOUT.
    "HEARTBEAT_INTERVAL": 10.0,
    # Dotted path of the queue adapter class that hands jobs to the worker.
    "QUEUE_ADAPTER": "django_jobprogress.adapters.queue_django_q2.DjangoQ2Queue",
    # Lifetime in seconds of ``record.access_token()`` tokens; None means no expiry.
    "TOKEN_MAX_AGE": None,
    # Dotted path of the push adapter that broadcasts snapshots to watching sockets.
    "PUSH_ADAPTER": "django_jobprogress.adapters.push_channels.ChannelsPush",
    # Alias in CHANNEL_LAYERS used to push updates.
    "CHANNEL_LAYER": "default",
    # Longest a broadcast may take before it is dropped (the database stays the truth).
    "PUSH_TIMEOUT": 1.0,
    # Without a cross-process channel layer, sockets re-read their job this often.
    "WATCH_INTERVAL": 0.25,
    # Seconds between two recovery sweeps in each running cluster; None turns it off.
    "SWEEP_INTERVAL": 15.0,
    # Seconds a PENDING job's lost queue message goes unnoticed at most before the
    # sweep hands the job off again (also the least time between two such hand-offs).
    "REDELIVER_AFTER": 60.0,
    # Seconds after which ``manage.py prune_jobs`` deletes a finished job (14 days).
    "PRUNE_AFTER": 14 * 24 * 3600,
    # Recurring jobs: name -> {"task": ..., "cron": ... or "every": ..., ...}; see
    # ``django_jobprogress.schedules``. Synced on ``migrate`` and by
    # ``manage.py jobprogress_schedules``.
    "SCHEDULES": {},
}

# The types each key accepts, used by the system checks.
TYPES: dict[str, tuple[type, ...]] = {
    "THROTTLE": (int, float),
    "STALL_TIMEOUT": (int, float),
    "HEARTBEAT_INTERVAL": (int, float),
    "QUEUE_ADAPTER": (str,),
    "TOKEN_MAX_AGE": (int, float, type(None)),
    "PUSH_ADAPTER": (str,),
    "CHANNEL_LAYER": (str,),
    "PUSH_TIMEOUT": (int, float),
    "WATCH_INTERVAL": (int, float),
    "SWEEP_INTERVAL": (int, float, type(None)),
    "REDELIVER_AFTER": (int, float),
    "PRUNE_AFTER": (int, float),
    "SCHEDULES": (dict,),
}


def user_settings() -> Any:
    """The raw ``JOBPROGRESS`` value as the project wrote it (may be of the wrong type)."""
    return getattr(settings, "JOBPROGRESS", {})


@cache
def get_settings() -> dict[str, Any]:
    """Defaults overlaid with the project's ``JOBPROGRESS`` dict."""
    merged = dict(DEFAULTS)
    configured = user_settings()
    if isinstance(configured, dict):
        merged.update({k: v for k, v in configured.items() if k in DEFAULTS})
    return merged


def get(name: str) -> Any:
    return get_settings()[name]


@receiver(setting_changed)
def _reset_on_change(*, setting: str, **kwargs: Any) -> None:
    if setting == "JOBPROGRESS":
        get_settings.cache_clear()
