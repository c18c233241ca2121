"""Adapters to the outside world, each behind a small base class chosen by setting."""

from functools import cache
from typing import Any

from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils.module_loading import import_string

from django_jobprogress import conf
from django_jobprogress.adapters.base import PushAdapter, QueueAdapter
from django_jobprogress.exceptions import JobProgressConfigurationError


def _load(setting: str, base: type) -> Any:
    path = conf.get(setting)
    try:
        adapter_class = import_string(path)
    except ImportError as exc:
        raise JobProgressConfigurationError(
            f'JOBPROGRESS["{setting}"] = {path!r} cannot be imported: {exc}'
        ) from exc
    if not (isinstance(adapter_class, type) and issubclass(adapter_class, base)):
        raise JobProgressConfigurationError(
            f'JOBPROGRESS["{setting}"] = {path!r} is not a {base.__name__} subclass'
        )
    return adapter_class()


@cache
def get_queue_adapter() -> QueueAdapter:
    """The configured queue adapter instance (``JOBPROGRESS["QUEUE_ADAPTER"]``)."""
    return _load("QUEUE_ADAPTER", QueueAdapter)


@cache
def get_push_adapter() -> PushAdapter:
    """The configured push adapter instance (``JOBPROGRESS["PUSH_ADAPTER"]``)."""
    return _load("PUSH_ADAPTER", PushAdapter)


@receiver(setting_changed)
def _reset_on_change(*, setting: str, **kwargs: Any) -> None:
    """A changed ``JOBPROGRESS`` may name other adapters: load them anew."""
    if setting == "JOBPROGRESS":
        get_queue_adapter.cache_clear()
        get_push_adapter.cache_clear()
