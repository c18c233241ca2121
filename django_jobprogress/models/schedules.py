"""``Schedule``: one row per recurring schedule, holding when its next slot is due.

The row is written from ``JOBPROGRESS["SCHEDULES"]`` by the sync (on ``migrate``
and by ``manage.py jobprogress_schedules``). A slot is taken by a
compare-and-swap on ``next_run_at`` (``take_slot``), so however many clusters
look at a due schedule, one of them wins each slot: an ``UPDATE ... WHERE
next_run_at = <the slot>`` matches once on PostgreSQL (the row lock makes the
loser re-read the moved value) and on SQLite (one writer at a time).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import models, transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from django_jobprogress.models.sql import guarded_update
from django_jobprogress.schedules import ScheduleSpec


@dataclass
class SyncReport:
    """What a sync did (or, as a dry run, would do), by schedule name."""

    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.created or self.updated or self.removed)


class ScheduleManager(models.Manager["Schedule"]):
    def due(self, now: datetime, limit: int) -> list[Schedule]:
        return list(self.filter(next_run_at__lte=now).order_by("next_run_at")[:limit])

    def next_due_at(self) -> datetime | None:
        return self.aggregate(at=models.Min("next_run_at"))["at"]

    def sync(
        self, specs: list[ScheduleSpec], now: datetime | None = None, *, dry_run: bool = False
    ) -> SyncReport:
        """Make the table match ``specs``: add new schedules, rewrite changed ones,
        delete those no longer listed. A new schedule, or one whose timing changed,
        gets its first slot after ``now``."""
        now = now or timezone.now()
        report = SyncReport()
        wanted = {spec.name: spec for spec in specs}
        with transaction.atomic(using=self.db):
            stored = {row.name: row for row in self.select_for_update()}
            report.removed = [name for name in stored if name not in wanted]
            for name, spec in wanted.items():
                row = stored.get(name)
                if row is None:
                    report.created.append(name)
                elif row.definition != spec.definition():
                    report.updated.append(name)
                else:
                    report.unchanged.append(name)
            if dry_run:
                return report
            self.filter(name__in=report.removed).delete()
            for name in report.updated:
                spec, changes = wanted[name], _columns(wanted[name])
                if _timing(stored[name].definition) != _timing(spec.definition()):
                    changes["next_run_at"] = spec.first_slot(now)
                self.filter(name=name).update(**changes, updated_at=now)
            self.bulk_create(
                [
                    self.model(**_columns(wanted[name]), next_run_at=wanted[name].first_slot(now))
                    for name in report.created
                ],
                ignore_conflicts=True,  # a sync running at the same time made it
            )
        return report


def _timing(definition: dict[str, Any]) -> tuple[Any, ...]:
    """What decides the slots: a change here counts the next slot again."""
    return (definition.get("cron"), definition.get("every"), definition.get("timezone"))


def _columns(spec: ScheduleSpec) -> dict[str, Any]:
    return {"name": spec.name, "task_name": spec.task, "definition": spec.definition()}


class Schedule(models.Model):
    """A recurring schedule from ``JOBPROGRESS["SCHEDULES"]`` and its next slot."""

    name = models.CharField(_("name"), max_length=200, unique=True)
    task_name = models.CharField(_("task"), max_length=255)
    definition = models.JSONField(_("definition"), default=dict)
    next_run_at = models.DateTimeField(_("next run"), db_index=True)
    last_slot_at = models.DateTimeField(_("last slot"), null=True, blank=True)
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    updated_at = models.DateTimeField(_("updated"), default=timezone.now)

    objects = ScheduleManager()

    class Meta:
        verbose_name = _("schedule")
        verbose_name_plural = _("schedules")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def spec(self) -> ScheduleSpec:
        return ScheduleSpec(name=self.name, **self.definition)

    def take_slot(self, slot: datetime, following: datetime) -> bool:
        """Move this schedule from ``slot`` to ``following``; True for the one caller
        that did (the one that runs the slot)."""
        return guarded_update(
            self,
            {"next_run_at": following, "last_slot_at": slot},
            where=models.Q(next_run_at=slot),
        )
