"""``manage.py jobprogress_schedules``: sync ``JOBPROGRESS["SCHEDULES"]`` into the
schedule table (as ``migrate`` does), show what a sync would change, or list them."""

from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from django_jobprogress import schedules
from django_jobprogress.models import JobRecord, Schedule
from django_jobprogress.models.schedules import SyncReport
from django_jobprogress.scheduler import sync


class Command(BaseCommand):
    help = (
        'Sync the recurring schedules of JOBPROGRESS["SCHEDULES"] into the schedule table '
        "(migrate does it too): new ones are added, changed ones rewritten, removed ones "
        "deleted. --list shows each with its next and last run."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "--list", action="store_true", help="show the schedules, their next and last runs"
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="show what a sync would change, change nothing"
        )
        parser.add_argument("--database", default="default", help="database alias (default)")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["list"] and options["dry_run"]:
            raise CommandError("--list and --dry-run cannot be used together")
        using = options["database"]
        if options["list"]:
            self._list(using)
            return
        try:
            report = sync(dry_run=options["dry_run"], using=using)
        except schedules.ScheduleError as exc:
            raise CommandError(str(exc)) from None
        self._report(report, dry_run=options["dry_run"])

    def _report(self, report: SyncReport, *, dry_run: bool) -> None:
        verbs = {"created": "would add", "updated": "would update", "removed": "would remove"}
        if not dry_run:
            verbs = {"created": "added", "updated": "updated", "removed": "removed"}
        for kind, verb in verbs.items():
            for name in getattr(report, kind):
                self.stdout.write(f"{verb} schedule {name!r}")
        unchanged = len(report.unchanged)
        self.stdout.write(
            f"{'no change' if not report else 'done'}: {unchanged} schedule"
            f"{'' if unchanged == 1 else 's'} unchanged"
        )

    def _list(self, using: str) -> None:
        rows = list(Schedule.objects.using(using).order_by("name"))
        if not rows:
            self.stdout.write('no schedules (JOBPROGRESS["SCHEDULES"] is synced on migrate)')
            return
        now = timezone.now()
        for row in rows:
            try:
                when = row.spec.describe()
            except (TypeError, ValueError):
                when = "(definition unreadable: sync again)"
            last = (
                JobRecord.objects.using(using)
                .filter(task_name=row.task_name, key=row.name)
                .order_by("-created_at")
                .first()
            )
            last_text = (
                "never"
                if last is None
                else f"{last.status} {timezone.localtime(last.created_at):%Y-%m-%d %H:%M:%S} "
                f"(job {last.pk})"
            )
            due = timezone.localtime(row.next_run_at)
            overdue = " (due)" if row.next_run_at <= now else ""
            self.stdout.write(
                f"{row.name}: {row.task_name}, {when}\n"
                f"  next run {due:%Y-%m-%d %H:%M:%S %Z}{overdue}; last run {last_text}"
            )
