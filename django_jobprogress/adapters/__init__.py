"""Adapters to the outside world, each behind a small base class chosen by setting."""

from functools import cache

from django.utils.module_loading import import_string

from django_jobprogress import conf
from django_jobprogress.adapters.base import QueueAdapter
from django_jobprogress.exceptions import JobProgressConfigurationError


@cache
def get_queue_adapter() -> QueueAdapter:
    """The configured queue adapter instance (``JOBPROGRESS["QUEUE_ADAPTER"]``)."""
    path = conf.get("QUEUE_ADAPTER")
    try:
        adapter_class = import_string(path)
    except ImportError as exc:
        raise JobProgressConfigurationError(
            f'JOBPROGRESS["QUEUE_ADAPTER"] = {path!r} cannot be imported: {exc}'
        ) from exc
    if not (isinstance(adapter_class, type) and issubclass(adapter_class, QueueAdapter)):
        raise JobProgressConfigurationError(
            f'JOBPROGRESS["QUEUE_ADAPTER"] = {path!r} is not a QueueAdapter subclass'
        )
    return adapter_class()
