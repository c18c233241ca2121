"""``manage.py prune_jobs``: delete finished jobs older than a cutoff, in chunks."""

from __future__ import annotations

from argparse import ArgumentParser
from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from django_jobprogress import conf
from django_jobprogress.durations import EXAMPLES, parse_duration
from django_jobprogress.exceptions import JobProgressConfigurationError
from django_jobprogress.models import JobRecord
from django_jobprogress.pruning import FINISHED, prune
from django_jobprogress.registry import resolve_task


def parse_age(text: str) -> timedelta:
    """``30m``, ``12h``, ``7d``, ``2w`` or a number of seconds, as a timedelta."""
    try:
        return timedelta(seconds=parse_duration(text))
    except ValueError:
        raise CommandError(
            f"--older-than must be an age such as {EXAMPLES}, got {text!r}"
        ) from None


class Command(BaseCommand):
    help = (
        "Delete finished jobs (and finished batches with no member left) that finished "
        "before a cutoff, in short chunked transactions. Unfinished jobs and members of "
        "unfinished batches are never deleted."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "--older-than",
            metavar="AGE",
            help="finished longer ago than this (30m, 12h, 7d, 2w or seconds); default "
            'JOBPROGRESS["PRUNE_AFTER"] (14 days)',
        )
        parser.add_argument(
            "--status",
            nargs="+",
            metavar="STATUS",
            default=list(FINISHED),
            help="only these outcomes: completed failed cancelled (default all three)",
        )
        parser.add_argument("--task", metavar="NAME", help="only jobs of this task (dotted path)")
        parser.add_argument(
            "--chunk-size", type=int, default=1000, help="rows per transaction (default 1000)"
        )
        parser.add_argument(
            "--time-limit",
            type=float,
            metavar="SECONDS",
            help="stop starting new chunks after this long (run it again to go on)",
        )
        parser.add_argument("--dry-run", action="store_true", help="count, delete nothing")

    def handle(self, *args: Any, **options: Any) -> None:
        age = (
            parse_age(options["older_than"])
            if options["older_than"] is not None
            else timedelta(seconds=conf.get("PRUNE_AFTER"))
        )
        statuses = options["status"]
        for status in statuses:
            if status not in FINISHED:
                raise CommandError(
                    f"--status {status!r} is not a finished status: use completed, failed "
                    "or cancelled (unfinished jobs are never pruned)"
                )
        chunk_size = options["chunk_size"]
        if chunk_size < 1 or chunk_size > 100_000:
            raise CommandError(f"--chunk-size must be from 1 to 100000, got {chunk_size}")
        time_limit = options["time_limit"]
        if time_limit is not None and time_limit <= 0:
            raise CommandError(f"--time-limit must be above 0 seconds, got {time_limit:g}")
        task = options["task"]
        if task is not None:
            self._check_task(task)
        before = timezone.now() - age
        report = prune(
            before,
            statuses,
            task=task,
            chunk_size=chunk_size,
            dry_run=options["dry_run"],
            time_limit=time_limit,
        )
        verb = "would delete" if options["dry_run"] else "deleted"
        for status, count in report.jobs.items():
            self.stdout.write(
                f"{verb} {count} {status} jobs finished before {before:%Y-%m-%d %H:%M:%S %Z}"
            )
        if task is None:
            self.stdout.write(f"{verb} {report.batches} finished batches with no job left")
        if report.stopped_early:
            self.stdout.write(f"stopped after --time-limit {time_limit:g} s: run it again to go on")

    def _check_task(self, task: str) -> None:
        """A task the code defines, or one whose jobs are still in the table."""
        try:
            resolve_task(task)
        except JobProgressConfigurationError:
            if not JobRecord.objects.filter(task_name=task).exists():
                raise CommandError(
                    f"--task {task!r} is neither a progress task nor the task of any job"
                ) from None
