"""The admin's operations dashboard (``admin:jobprogress_dashboard``).

Every figure is read from an index or from the per-minute counts, never from a scan
of the jobs table, so the page costs the same at a million jobs as at ten:

- pending and running counts: ``status = ...`` on the (status, created_at) index;
- finished counts, the chart and the per-task table: ``JobMinute`` rows of the range,
  on its unique index, which starts with the minute (``rollups``);
- running jobs: the newest ``RUNNING_SHOWN`` on the (status, created_at) index;
- recent failures: the last ``FAILURES_SHOWN`` on the (status, finished_at) index;
- open batches: the newest ``BATCHES_SHOWN`` on the batches' (status, created_at)
  index, and their running members' counts on (batch, status).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import chain
from typing import Any
from urllib.parse import urlencode

from django.db.models import Count, Sum
from django.db.models.functions import Substr
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import formats, timezone
from django.utils.functional import Promise
from django.utils.html import format_html_join
from django.utils.text import Truncator
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from django_jobprogress.charts import Chart, Column, bars_svg, stacked_bars
from django_jobprogress.models import Batch, JobRecord
from django_jobprogress.models.stats import BUCKETS, OUTCOMES, bucket_limit
from django_jobprogress.rollups import TaskRuns, finished_per_bin, percentile_bucket, runs_per_task

RUNNING_SHOWN = 20
FAILURES_SHOWN = 10
BATCHES_SHOWN = 10
ERROR_CHARS = 200


@dataclass(frozen=True)
class Range:
    """A choice of the ``?range=`` parameter: how far back, and how coarse the bins."""

    key: str
    label: Promise
    span: timedelta
    bin_minutes: int
    tick_minutes: int
    tick_format: str
    bin_format: str

    @property
    def bins(self) -> int:
        return int(self.span.total_seconds()) // 60 // self.bin_minutes


RANGES = {
    r.key: r
    for r in (
        Range("1h", _("1 hour"), timedelta(hours=1), 1, 10, "H:i", "H:i"),
        # At most ~170 bins a chart: each is a column and a row of the text table.
        Range("6h", _("6 hours"), timedelta(hours=6), 5, 60, "H:i", "H:i"),
        Range("24h", _("24 hours"), timedelta(hours=24), 15, 240, "H:i", "D H:i"),
        # Hourly bins: minutes older than a day are folded into hour rows (JobMinute).
        Range("7d", _("7 days"), timedelta(days=7), 60, 1440, "D j", "D j, H:i"),
    )
}
DEFAULT_RANGE = "1h"
#: The chart's stacks, bottom up, and the words their tooltips use.
SERIES = (("completed", _("completed")), ("failed", _("failed")), ("cancelled", _("cancelled")))


@dataclass(frozen=True)
class TaskStats:
    """One task's row: its runs over the range, run times over the runs that started."""

    runs: TaskRuns
    url: str

    @property
    def short_name(self) -> str:
        return self.runs.name.rsplit(".", 1)[-1]

    @property
    def failure_rate(self) -> str:
        return percent(self.runs.failed / self.runs.runs) if self.runs.runs else ""

    @property
    def p50(self) -> str:
        return percentile(self.runs.histogram, 0.5)

    @property
    def p95(self) -> str:
        return percentile(self.runs.histogram, 0.95)

    @property
    def mean(self) -> str:
        started = self.runs.started
        return format_seconds(self.runs.seconds / started) if started else ""


def number(value: float, places: int) -> str:
    """``value`` rounded (Django's ``number_format`` alone truncates) and localized."""
    return formats.number_format(round(value, places), places)


def percent(fraction: float) -> str:
    return f"{number(fraction * 100, 1)} %"


def format_seconds(seconds: float) -> str:
    """A run time as people read it: 640 ms, 2.56 s, 41 s, 1.4 min, 2.3 h."""
    if seconds < 1:
        return gettext("%(value)s ms") % {"value": number(seconds * 1000, 0)}
    if seconds < 60:
        places = 2 if seconds < 10 else 1
        return gettext("%(value)s s") % {"value": number(seconds, places)}
    if seconds < 3600:
        return gettext("%(value)s min") % {"value": number(seconds / 60, 1)}
    return gettext("%(value)s h") % {"value": number(seconds / 3600, 1)}


def percentile(histogram: dict[int, int], fraction: float) -> str:
    """The upper bound of the run-time bucket holding the ``fraction`` quantile
    (nearest rank), "≤ 2.56 s"; the last bucket has no bound: "> 11.7 h"."""
    bucket = percentile_bucket(histogram, fraction)
    if bucket is None:
        return ""
    if bucket >= BUCKETS:
        return gettext("> %(duration)s") % {"duration": format_seconds(bucket_limit(BUCKETS - 1))}
    return gettext("≤ %(duration)s") % {"duration": format_seconds(bucket_limit(bucket))}


def change_url(site: str, model: str, pk: Any) -> str:
    return reverse(f"{site}:django_jobprogress_{model}_change", args=[pk])


def bin_start(now: datetime, minutes: int) -> datetime:
    """The start of the ``minutes``-long bin holding ``now`` (bins divide a day)."""
    now = now.replace(second=0, microsecond=0)
    return now - timedelta(minutes=(now.hour * 60 + now.minute) % minutes)


def _local(moment: datetime) -> datetime:
    return timezone.localtime(moment) if timezone.is_aware(moment) else moment


def chart_data(span: Range, start: datetime) -> tuple[Chart, list[dict[str, Any]], dict[str, int]]:
    """Jobs finished per bin since ``start``, by outcome: the chart, the rows of its
    table (bins with any job) and the totals."""
    width = timedelta(minutes=span.bin_minutes)
    values = finished_per_bin(start, span.bins, span.bin_minutes)
    starts = [_local(start + width * i) for i in range(span.bins)]
    labels = [formats.date_format(moment, span.bin_format) for moment in starts]
    ticks = [
        (i, formats.date_format(moment, span.tick_format))
        for i, moment in enumerate(starts)
        if (moment.hour * 60 + moment.minute) % span.tick_minutes == 0
    ]
    if not ticks:  # a time zone whose offset is not a whole number of bins
        every = max(span.bins // 6, 1)
        ticks = [
            (i, formats.date_format(starts[i], span.tick_format))
            for i in range(0, span.bins, every)
        ]
    chart = stacked_bars(labels, values, [(k, str(label)) for k, label in SERIES], ticks)
    rows = [
        {"label": label, **dict(zip(OUTCOMES, column, strict=True)), "total": sum(column)}
        for label, column in zip(labels, values, strict=True)
        if sum(column)
    ]
    totals = {outcome: sum(column[i] for column in values) for i, outcome in enumerate(OUTCOMES)}
    return chart, rows, totals


def describe_column(column: Column) -> str:
    """A bar's tooltip: "12:30: 7 finished, 5 completed, 2 failed"."""
    parts = [
        gettext("%(moment)s: %(total)d finished") % {"moment": column.label, "total": column.total}
    ]
    parts += [f"{segment.value} {segment.label}" for segment in column.segments]
    return ", ".join(parts)


def table_rows(rows: list[dict[str, Any]]) -> str:
    """The chart's figures as table rows (the chart's text alternative)."""
    return format_html_join(
        "\n",
        '<tr><th scope="row">{}</th><td class="jp-num">{}</td><td class="jp-num">{}</td>'
        '<td class="jp-num">{}</td><td class="jp-num">{}</td></tr>',
        (
            (
                row["label"],
                *(formats.localize(row[o]) for o in OUTCOMES),
                formats.localize(row["total"]),
            )
            for row in rows
        ),
    )


def recent_failures(site: str) -> list[dict[str, Any]]:
    """The last failed jobs, newest first, with the first line of their error (read
    from the database truncated, so a huge error costs nothing)."""
    failed = (
        JobRecord.objects.filter(status=JobRecord.Status.FAILED)
        .order_by("-finished_at")
        .values("id", "task_name", "finished_at", "attempts")
        .annotate(error_head=Substr("error", 1, ERROR_CHARS * 2))[:FAILURES_SHOWN]
    )
    found = []
    for row in failed:
        lines = row["error_head"].strip().splitlines()
        found.append(
            {
                **row,
                "short_name": row["task_name"].rsplit(".", 1)[-1],
                "error": Truncator(lines[0] if lines else "").chars(ERROR_CHARS),
                "url": change_url(site, "jobrecord", row["id"]),
            }
        )
    return found


def open_batches(site: str) -> list[dict[str, Any]]:
    """The newest unfinished batches with their counters; their running members are
    counted in one query on the members' (batch, status) index."""
    # One query per status, each in index order: with ``status IN (...)`` a planner
    # may sort every unfinished batch (SQLite scanned the table).
    newest = (
        Batch.objects.filter(status=status).order_by("-created_at")[:BATCHES_SHOWN]
        for status in Batch.UNFINISHED
    )
    batches = sorted(chain(*newest), key=lambda b: b.created_at, reverse=True)[:BATCHES_SHOWN]
    running: dict[Any, Any] = {}
    if batches:
        members = (
            JobRecord.objects.filter(
                batch_id__in=[b.pk for b in batches], status=JobRecord.Status.RUNNING
            )
            .values("batch_id")
            .annotate(n=Count("pk"), progress=Sum("progress"))
            .order_by()
        )
        running = {row["batch_id"]: row for row in members}
    shown = []
    for batch in batches:
        # As Batch.live_counts() reads them (pending ones are what the counters
        # leave), for all the batches at once: their bars then read nothing.
        row = running.get(batch.pk, {})
        counts = batch.counts_with(row.get("n", 0), row.get("progress"))
        url = change_url(site, "batch", batch.pk)
        shown.append({"batch": batch, "url": url, **counts, "counts": counts})
    return shown


def dashboard_view(request: HttpRequest, model_admin: Any) -> HttpResponse:
    """Render the dashboard; ``model_admin`` is the ``JobRecord`` admin (permission
    already checked). ``?range=`` is one of ``RANGES``; anything else shows 1 h."""
    site = model_admin.admin_site
    request.current_app = site.name
    span = RANGES.get(str(request.GET.get("range", "")), RANGES[DEFAULT_RANGE])
    start = bin_start(timezone.now(), span.bin_minutes) - timedelta(
        minutes=span.bin_minutes * (span.bins - 1)
    )
    end = start + timedelta(minutes=span.bin_minutes * span.bins)
    changelist = reverse(f"{site.name}:django_jobprogress_jobrecord_changelist")
    chart, chart_rows, finished = chart_data(span, start)

    Status = JobRecord.Status
    now_counts = {s: JobRecord.objects.filter(status=s).count() for s in JobRecord.UNFINISHED}
    counts = [
        {
            "status": status.value,
            "label": status.label,
            "count": now_counts[status] if status in now_counts else finished[status.value],
            "now": status in now_counts,
            "url": f"{changelist}?{urlencode({'status__exact': status.value})}",
        }
        for status in Status
    ]
    running = list(
        JobRecord.objects.filter(status=Status.RUNNING)
        .order_by("-created_at")
        .defer("args", "kwargs", "traceback")[:RUNNING_SHOWN]
    )
    show_batches = request.user.has_perm("django_jobprogress.view_batch")
    context = {
        **site.each_context(request),
        "title": gettext("Jobs dashboard"),
        "opts": model_admin.model._meta,
        "ranges": [
            {"key": r.key, "label": r.label, "selected": r is span, "url": f"?range={r.key}"}
            for r in RANGES.values()
        ],
        "range": span,
        "counts": counts,
        "chart": chart,
        "chart_rows": chart_rows,
        "chart_bars": bars_svg(chart, describe_column),
        "chart_table": table_rows(chart_rows),
        "chart_totals": finished,
        "busiest": max(chart_rows, key=lambda row: row["total"], default=None),
        "time_zone": timezone.get_current_timezone_name(),
        "series": [(s.value, s.label) for s in Status if s.value in OUTCOMES],
        "running": [
            {"record": r, "url": change_url(site.name, "jobrecord", r.pk)} for r in running
        ],
        "running_more": max(now_counts[Status.RUNNING] - len(running), 0),
        "running_url": f"{changelist}?{urlencode({'status__exact': Status.RUNNING.value})}",
        "failures": recent_failures(site.name),
        "failed_url": f"{changelist}?{urlencode({'status__exact': Status.FAILED.value})}",
        "tasks": [
            TaskStats(runs, f"{changelist}?{urlencode({'task_name__exact': runs.name})}")
            for runs in runs_per_task(start, end)
        ],
        "show_batches": show_batches,
        "batches": open_batches(site.name) if show_batches else [],
        "batch_changelist": reverse(f"{site.name}:django_jobprogress_batch_changelist"),
    }
    return TemplateResponse(request, "admin/django_jobprogress/dashboard.html", context)
