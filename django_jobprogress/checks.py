"""System checks for the JOBPROGRESS setting and the apps it needs (ids are stable)."""

from __future__ import annotations

import math
from typing import Any

from django.conf import settings
from django.core import checks

from django_jobprogress import conf, schedules
from django_jobprogress.adapters import get_push_adapter, get_queue_adapter
from django_jobprogress.exceptions import JobProgressConfigurationError

# Zero would drop every push (PUSH_TIMEOUT), spin on the database (WATCH_INTERVAL,
# SWEEP_INTERVAL, REDELIVER_AFTER) or prune jobs as they finish (PRUNE_AFTER).
POSITIVE = ("PUSH_TIMEOUT", "WATCH_INTERVAL", "SWEEP_INTERVAL", "REDELIVER_AFTER", "PRUNE_AFTER")


@checks.register()
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    configured = conf.user_settings()
    if not isinstance(configured, dict):
        return [
            checks.Error(
                f"JOBPROGRESS must be a dict, got {type(configured).__name__}.",
                id="jobprogress.E001",
            )
        ]
    errors: list[checks.CheckMessage] = []
    for name in sorted(set(configured) - set(conf.DEFAULTS)):
        errors.append(
            checks.Error(
                f"JOBPROGRESS has an unknown key {name!r}.",
                hint=f"Known keys: {', '.join(sorted(conf.DEFAULTS))}.",
                id="jobprogress.E002",
            )
        )
    for name, value in configured.items():
        expected = conf.TYPES.get(name)
        if expected is None:
            continue
        if isinstance(value, bool) or not isinstance(value, expected):
            names = " or ".join(t.__name__ for t in expected)
            errors.append(
                checks.Error(
                    f"JOBPROGRESS[{name!r}] must be {names}, got {value!r}.",
                    id="jobprogress.E003",
                )
            )
        elif isinstance(value, int | float) and (not math.isfinite(value) or value < 0):
            errors.append(
                checks.Error(
                    f"JOBPROGRESS[{name!r}] must be a finite, non-negative number, got {value!r}.",
                    id="jobprogress.E004",
                )
            )
    for name in POSITIVE:
        value = configured.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool) and value == 0:
            errors.append(
                checks.Error(
                    f"JOBPROGRESS[{name!r}] must be above 0, got {value!r}.",
                    id="jobprogress.E010",
                )
            )
    if not errors:
        errors.extend(_check_intervals())
        errors.extend(_check_channel_layer())
        errors.extend(_check_schedules())
    return errors


def _check_schedules() -> list[checks.CheckMessage]:
    return [
        checks.Error(
            problem,
            hint="See the schedules section of docs/operations.rst.",
            id="jobprogress.E011",
        )
        for problem in schedules.problems()
    ]


def _check_channel_layer() -> list[checks.CheckMessage]:
    alias = conf.get("CHANNEL_LAYER")
    layers = getattr(settings, "CHANNEL_LAYERS", None)
    if layers is not None and alias not in layers:
        return [
            checks.Warning(
                f'JOBPROGRESS["CHANNEL_LAYER"] = {alias!r} is not in CHANNEL_LAYERS, so '
                "progress is not pushed: sockets re-read the database instead.",
                hint=f"Use one of: {', '.join(sorted(layers)) or '(none configured)'}.",
                id="jobprogress.W003",
            )
        ]
    return []


def _check_intervals() -> list[checks.CheckMessage]:
    heartbeat, stall = conf.get("HEARTBEAT_INTERVAL"), conf.get("STALL_TIMEOUT")
    if heartbeat <= 0 or heartbeat >= stall:
        return [
            checks.Error(
                f'JOBPROGRESS["HEARTBEAT_INTERVAL"] ({heartbeat}) must be above 0 and below '
                f'JOBPROGRESS["STALL_TIMEOUT"] ({stall}).',
                hint="A few heartbeats should fit in the stall timeout, e.g. 10 and 60.",
                id="jobprogress.E006",
            )
        ]
    return []


@checks.register()
def check_queue_adapter(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    return _check_adapter(get_queue_adapter, "jobprogress.E005")


@checks.register()
def check_push_adapter(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    return _check_adapter(get_push_adapter, "jobprogress.E009")


def _check_adapter(load: Any, check_id: str) -> list[checks.CheckMessage]:
    try:
        adapter = load()
    except JobProgressConfigurationError as exc:
        return [checks.Error(str(exc), id=check_id)]
    return adapter.check()
