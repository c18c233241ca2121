"""Recurring schedules as the project declares them in ``JOBPROGRESS["SCHEDULES"]``.

This module reads and checks the entries and computes slot times; the table
that holds each schedule's next slot is ``models.Schedule`` and the code that
starts the runs is ``scheduler``.

Cron expressions are evaluated on the wall clock of the schedule's
``timezone`` (default ``TIME_ZONE``), as cron does across a DST change:

* a slot whose wall time does not exist (the hour skipped in spring) runs at
  the first instant after the gap, once: ``30 2 * * *`` in Europe/Paris runs at
  03:00 CEST on the last Sunday of March;
* a slot whose wall time occurs twice (the hour repeated in autumn) runs once,
  at its first occurrence, when the expression names its hours; an expression
  with ``*`` or a step in the hour field runs by real time, so ``*/30 * * * *``
  runs every 30 minutes through the repeated hour too.

``every`` schedules run on a grid of real seconds, unaffected by DST.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from django_jobprogress import conf
from django_jobprogress.durations import EXAMPLES, parse_duration
from django_jobprogress.registry import resolve_task
from django_jobprogress.validation import shown, validate_json, validate_text

KEYS = ("task", "cron", "every", "timezone", "args", "kwargs", "queue", "max_attempts")
#: A schedule's name is each run's key, which holds at most 255 characters.
MAX_NAME = 200
#: Shorter intervals would mostly measure the sweeper's wake-ups.
MIN_EVERY = 1.0
MAX_ATTEMPTS = 1000


class ScheduleError(ImproperlyConfigured):
    """An entry of ``JOBPROGRESS["SCHEDULES"]`` that cannot run; the message names it."""


@dataclass(frozen=True)
class ScheduleSpec:
    """One checked entry: what to run and when."""

    name: str
    task: str
    cron: str = ""
    every: float | None = None
    timezone: str = "UTC"
    args: list[Any] = field(default_factory=list)
    kwargs: dict[str, Any] = field(default_factory=dict)
    queue: str = ""
    max_attempts: int | None = None

    def describe(self) -> str:
        if self.cron:
            return f"cron {self.cron} ({self.timezone})"
        assert self.every is not None
        return f"every {_seconds_text(self.every)}"

    def first_slot(self, now: datetime) -> datetime:
        """The first slot of a schedule that has never run, strictly after ``now``."""
        if self.every is not None:
            return now + timedelta(seconds=self.every)
        return self.slot_after(now)

    def slot_after(self, moment: datetime, previous: datetime | None = None) -> datetime:
        """The first slot strictly after ``moment``.

        ``every`` slots stay on the grid of ``previous`` (the slot just run), so
        however many slots were missed, the next one is the first still to come.
        """
        if self.every is not None:
            if previous is None:
                return moment + timedelta(seconds=self.every)
            missed = math.floor((moment - previous).total_seconds() / self.every) + 1
            return previous + timedelta(seconds=self.every * max(missed, 1))
        return _next_cron(self.cron, ZoneInfo(self.timezone), moment)

    def definition(self) -> dict[str, Any]:
        """The stored form, compared on sync to tell a changed schedule."""
        return {
            "task": self.task,
            "cron": self.cron,
            "every": self.every,
            "timezone": self.timezone,
            "args": self.args,
            "kwargs": self.kwargs,
            "queue": self.queue,
            "max_attempts": self.max_attempts,
        }


def _seconds_text(seconds: float) -> str:
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def _names_hours(cron: str) -> bool:
    """True when the hour field lists fixed hours (no ``*``, no step)."""
    fields = cron.split()
    hours = fields[1] if len(fields) >= 5 else "*"
    return "*" not in hours and "/" not in hours


def _next_cron(cron: str, zone: ZoneInfo, moment: datetime) -> datetime:
    start = moment.astimezone(zone)
    slots = croniter(cron, start)
    for _ in range(3):
        slot: datetime = slots.get_next(datetime)
        if not (_names_hours(cron) and _second_occurrence(slot, zone)):
            return slot
    return slot  # pragma: no cover  (three repeats in a row: no real zone does this)


def _second_occurrence(slot: datetime, zone: ZoneInfo) -> bool:
    """True if ``slot``'s wall time occurred once already, an offset earlier."""
    wall = slot.replace(tzinfo=None)
    first = wall.replace(tzinfo=zone, fold=0)
    # In UTC: two datetimes of one zone compare by wall time, fold ignored.
    return first.astimezone(UTC) < slot.astimezone(UTC)


def configured() -> Any:
    return conf.get("SCHEDULES")


def load(entries: Any = None) -> list[ScheduleSpec]:
    """Every schedule of ``entries`` (default the setting), checked; the first bad
    one raises ``ScheduleError`` naming it."""
    entries = configured() if entries is None else entries
    if not isinstance(entries, dict):
        raise ScheduleError(
            f'JOBPROGRESS["SCHEDULES"] must be a dict of name -> schedule, got {shown(entries)}'
        )
    return [parse(name, entry) for name, entry in entries.items()]


def problems(entries: Any = None) -> list[str]:
    """One message per bad entry (for the system check), in the setting's order."""
    entries = configured() if entries is None else entries
    if not isinstance(entries, dict):
        try:
            load(entries)
        except ScheduleError as exc:
            return [str(exc)]
    found = []
    for name, entry in entries.items():
        try:
            parse(name, entry)
        except ScheduleError as exc:
            found.append(str(exc))
    return found


def parse(name: Any, entry: Any) -> ScheduleSpec:
    """Check one entry and return its spec; raise ``ScheduleError`` naming it."""
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME:
        raise ScheduleError(
            f"schedule name must be a non-empty string of at most {MAX_NAME} characters, "
            f"got {shown(name)}"
        )
    where = f"schedule {name!r}"
    try:
        validate_text(f"{where}: name", name)
        return _parse(where, name, entry)
    except (TypeError, ValueError) as exc:
        raise ScheduleError(str(exc)) from None


def _parse(where: str, name: str, entry: Any) -> ScheduleSpec:
    if not isinstance(entry, dict):
        raise ValueError(
            f"{where} must be a dict with 'task' and 'cron' or 'every', got {shown(entry)}"
        )
    unknown = sorted(set(entry) - set(KEYS), key=str)
    if unknown:
        raise ValueError(
            f"{where} has unknown keys {', '.join(map(repr, unknown))} (known: {', '.join(KEYS)})"
        )
    task = entry.get("task")
    if not isinstance(task, str) or not task:
        raise ValueError(
            f"{where} needs 'task', the dotted path of a progress task, got {shown(task)}"
        )
    try:
        resolve_task(task)
    except ImproperlyConfigured as exc:
        raise ValueError(f"{where}: {exc}") from None
    cron, every = entry.get("cron"), entry.get("every")
    if (cron is None) == (every is None):
        raise ValueError(f"{where} needs exactly one of 'cron' and 'every'")
    zone_name = entry.get("timezone", settings.TIME_ZONE or "UTC")
    if not isinstance(zone_name, str):
        raise ValueError(
            f"{where}: 'timezone' must be a zone name such as 'Europe/Paris', "
            f"got {shown(zone_name)}"
        )
    try:
        ZoneInfo(zone_name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{where}: unknown 'timezone' {zone_name!r}") from None
    seconds = None
    if cron is not None:
        if not isinstance(cron, str) or len(cron.split()) != 5 or not croniter.is_valid(cron):
            raise ValueError(
                f"{where}: 'cron' must be a five-field cron expression such as '0 3 * * *', "
                f"got {shown(cron)}"
            )
        cron = " ".join(cron.split())
    else:
        try:
            seconds = parse_duration(every)
        except ValueError:
            raise ValueError(f"{where}: 'every' must be {EXAMPLES}, got {shown(every)}") from None
        if seconds < MIN_EVERY:
            raise ValueError(
                f"{where}: 'every' must be at least {MIN_EVERY:g} s, got {shown(every)}"
            )
    args = entry.get("args", [])
    if not isinstance(args, list | tuple):
        raise ValueError(f"{where}: 'args' must be a list, got {shown(args)}")
    kwargs = entry.get("kwargs", {})
    if not isinstance(kwargs, dict) or not all(isinstance(k, str) for k in kwargs):
        raise ValueError(f"{where}: 'kwargs' must be a dict with string keys, got {shown(kwargs)}")
    validate_json(f"{where}: 'args'", list(args))
    validate_json(f"{where}: 'kwargs'", kwargs)
    queue = entry.get("queue", "")
    if not isinstance(queue, str) or len(queue) > 100:
        raise ValueError(
            f"{where}: 'queue' must be a string of at most 100 characters, got {shown(queue)}"
        )
    validate_text(f"{where}: 'queue'", queue)
    attempts = entry.get("max_attempts")
    if attempts is not None and (
        isinstance(attempts, bool)
        or not isinstance(attempts, int)
        or not 1 <= attempts <= MAX_ATTEMPTS
    ):
        raise ValueError(
            f"{where}: 'max_attempts' must be a whole number from 1 to {MAX_ATTEMPTS}, "
            f"got {shown(attempts)}"
        )
    return ScheduleSpec(
        name=name,
        task=task,
        cron=cron or "",
        every=seconds,
        timezone=zone_name,
        args=list(args),
        kwargs=dict(kwargs),
        queue=queue,
        max_attempts=attempts,
    )
