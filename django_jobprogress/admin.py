"""Admin for jobs and batches, an operations console that stays fast at a million
rows, and for schedules (read-only: settings are their source).

The job list never counts the whole table (``CappedCountPaginator``), sorts along
an index, finds a job by its id through the primary key, and takes its filter
choices from a loose index scan; its unfinished rows follow their jobs through one
poll of ``live/`` per page. Cancel and retry, from the actions and from a job's
buttons, are permission-checked and written to the admin history.
"""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar, cast

from django.contrib import admin, messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.utils import quote, unquote
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db import connections, router
from django.db.models import Model, Q, QuerySet
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseNotAllowed,
    HttpResponseRedirect,
    JsonResponse,
)
from django.urls import URLPattern, path, reverse
from django.utils import formats, timezone
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from django_jobprogress import dashboard
from django_jobprogress.exceptions import (
    DuplicateJob,
    JobProgressConfigurationError,
    NotRetryable,
)
from django_jobprogress.models import Batch, JobDashboard, JobRecord, Schedule

if TYPE_CHECKING:  # Django's admin classes take type arguments only in the stubs
    JobAdminBase = admin.ModelAdmin[JobRecord]
    BatchAdminBase = admin.ModelAdmin[Batch]
    ScheduleAdminBase = admin.ModelAdmin[Schedule]
    DashboardAdminBase = admin.ModelAdmin[JobDashboard]
    PaginatorBase = Paginator[Any]
else:
    JobAdminBase = BatchAdminBase = ScheduleAdminBase = DashboardAdminBase = admin.ModelAdmin
    PaginatorBase = Paginator

#: Rows a list counts at most; more are shown as "10,000+".
COUNT_CAP = 10_000
#: Distinct tasks or queues offered by a filter (and searched by name).
FILTER_CHOICES = 100
SEARCHED_TASKS = 1000
#: Jobs one poll of ``live/`` reports, and jobs one action handles.
LIVE_IDS = 200
ACTION_LIMIT = 1000
#: Batch members shown on the batch's page (the rest are a link away).
MEMBERS_SHOWN = 20
#: Characters of JSON or traceback a page shows before cutting.
SHOWN_TEXT = 100_000
RETRYABLE = (JobRecord.Status.FAILED, JobRecord.Status.CANCELLED)
# Loaded when a job is opened, never for the list.
HEAVY = ("args", "kwargs", "result", "traceback", "fields", "error", "message")


# -- showing ------------------------------------------------------------------


def short_name(task_name: str) -> str:
    """``app.tasks.ZipExport`` -> ``ZipExport``."""
    return task_name.rsplit(".", 1)[-1]


def job_label(record: JobRecord) -> str:
    return f"{short_name(record.task_name)} {str(record.pk)[:8]}"


def task_html(task_name: str) -> SafeString:
    """The short name, with the full dotted path on hover."""
    return format_html('<span title="{}">{}</span>', task_name, short_name(task_name))


def status_label(obj: JobRecord | Batch) -> str:
    """The status's human label ("Running"), and whether a cancel is on its way."""
    try:
        label = str(type(obj).Status(obj.status).label)
    except ValueError:
        label = str(obj.status)
    if obj.cancel_requested_at is not None and not obj.is_finished:
        return _("%(status)s, cancel requested") % {"status": label}
    return label


def badge(obj: JobRecord | Batch) -> SafeString:
    return format_html(
        '<span class="jp-badge jp-badge--{}" data-jp-badge>{}</span>', obj.status, status_label(obj)
    )


def pretty_json(value: Any) -> SafeString:
    text = json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False, default=str)
    return preformatted(text)


def preformatted(text: str, css: str = "") -> SafeString:
    """``text`` in an escaped ``<pre>``, cut after ``SHOWN_TEXT`` characters."""
    cut = ""
    if len(text) > SHOWN_TEXT:
        cut = _("(%(shown)s of %(total)s characters shown)") % {
            "shown": formats.number_format(SHOWN_TEXT, force_grouping=True),
            "total": formats.number_format(len(text), force_grouping=True),
        }
        text = text[:SHOWN_TEXT]
    return format_html(
        '<pre class="{}">{}</pre>{}',
        f"jp-pre {css}".strip(),
        text,
        format_html('<p class="help">{}</p>', cut) if cut else "",
    )


def duration(seconds: float) -> str:
    if seconds < 60:
        return _("%(seconds).1f s") % {"seconds": seconds}
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return _("%(minutes)d min %(seconds)d s") % {"minutes": minutes, "seconds": secs}
    hours, minutes = divmod(minutes, 60)
    return _("%(hours)d h %(minutes)d min") % {"hours": hours, "minutes": minutes}


def timeline_html(events: Iterable[tuple[str, datetime | None, str]]) -> SafeString | None:
    """An ordered list of (what, when, note) moments; those that never came are left out."""
    rows = [
        (what, when.isoformat(), formats.localize(timezone.localtime(when)), note)
        for what, when, note in events
        if when is not None
    ]
    if not rows:
        return None
    items = format_html_join(
        "",
        '<li><span class="jp-timeline__what">{}</span> <time datetime="{}">{}</time> '
        '<span class="jp-timeline__note">{}</span></li>',
        rows,
    )
    return format_html('<ol class="jp-timeline">{}</ol>', items)


def or_empty(method: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    """For a read-only field's method that may have nothing to show (None): the
    admin's empty value ("-") is shown then, as for an empty model field."""

    @functools.wraps(method)
    def shown(model_admin: Any, obj: Any) -> Any:
        value = method(model_admin, obj)
        return model_admin.get_empty_value_display() if value is None else value

    return shown


# -- cheap lists at a million rows ----------------------------------------------


def planned_rows(queryset: QuerySet[Any]) -> int | None:
    """How many rows PostgreSQL's planner expects ``queryset`` to return (from its
    table statistics, without running it); None on other databases."""
    connection = connections[queryset.db]
    if connection.vendor != "postgresql":
        return None
    query = queryset.select_related(None).order_by().values("pk").query
    sql, params = query.get_compiler(using=queryset.db).as_sql()
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
        row = cursor.fetchone()
    plan = json.loads(row[0]) if isinstance(row[0], str) else row[0]
    return int(plan[0]["Plan"]["Plan Rows"])


class CappedCountPaginator(PaginatorBase):
    """Never counts more than ``COUNT_CAP + 1`` rows, so no page counts the whole
    table. On PostgreSQL, a list the planner expects to be longer than that shows its
    estimate instead, and nothing is counted. ``shown_count`` says which it is:
    "42", "10,000+" or "about 1,000,000"."""

    exact = True
    estimated = False

    @functools.cached_property
    def count(self) -> int:
        queryset = cast(QuerySet[Any], self.object_list)
        planned = planned_rows(queryset)
        if planned is not None and planned > COUNT_CAP:
            self.exact, self.estimated = False, True
            return planned
        counted = int(queryset.select_related(None).order_by()[: COUNT_CAP + 1].count())
        self.exact = counted <= COUNT_CAP
        return counted

    @property
    def shown_count(self) -> str:
        count = self.count
        if self.estimated:
            shown = formats.number_format(round(count, -3), force_grouping=True)
            return _("about %(count)s") % {"count": shown}
        if not self.exact:
            shown = formats.number_format(COUNT_CAP, force_grouping=True)
            return _("%(count)s+") % {"count": shown}
        return str(formats.number_format(count, force_grouping=True))


def distinct_values(model: type[Model], field: str, limit: int) -> list[str]:
    """The first ``limit`` distinct values of an indexed column, in order, by a loose
    index scan: one index probe per value, never a scan of the table."""
    connection = connections[router.db_for_read(model)]
    qn = connection.ops.quote_name
    table = qn(model._meta.db_table)
    column = qn(cast(Any, model._meta.get_field(field)).column)
    sql = (
        f"WITH RECURSIVE seen(value, n) AS ("
        f" SELECT (SELECT {column} FROM {table} ORDER BY {column} LIMIT 1), 1"
        f" UNION ALL"
        f" SELECT (SELECT {column} FROM {table} WHERE {column} > seen.value"
        f" ORDER BY {column} LIMIT 1), n + 1"
        f" FROM seen WHERE seen.value IS NOT NULL AND n < %s"
        f") SELECT value FROM seen WHERE value IS NOT NULL"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [limit])
        return [row[0] for row in cursor.fetchall()]


class IndexedValueFilter(admin.SimpleListFilter):
    """Choices from ``distinct_values`` of an indexed column (the chosen one always
    shown); filtering is an equality on that column."""

    field = ""

    def label(self, value: str, values: list[str]) -> Any:
        return value

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        values = distinct_values(model_admin.model, self.field, FILTER_CHOICES)
        chosen = self.value()
        if chosen is not None and chosen not in values:
            values.append(chosen)
        return [(value, self.label(value, values)) for value in values]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        return queryset if value is None else queryset.filter(**{self.field: value})


class TaskFilter(IndexedValueFilter):
    title = gettext_lazy("task")
    parameter_name = "task_name__exact"
    field = "task_name"

    def label(self, value: str, values: list[str]) -> Any:
        shorts = [short_name(v) for v in values]
        if shorts.count(short_name(value)) > 1:  # two tasks of one name: tell them apart
            return value
        return task_html(value)


class QueueFilter(IndexedValueFilter):
    title = gettext_lazy("queue")
    parameter_name = "queue__exact"
    field = "queue"

    def label(self, value: str, values: list[str]) -> Any:
        return value or _("default")


class BatchFilter(admin.SimpleListFilter):
    """Shown only while a batch is chosen (links bring ``?batch__id__exact=<id>``):
    listing every batch would not scale."""

    title = gettext_lazy("batch")
    parameter_name = "batch__id__exact"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        value = self.value()
        if value is None:
            return []
        try:
            pk = uuid.UUID(value)
        except ValueError:
            raise IncorrectLookupParameters(f"not a batch id: {value!r}") from None
        name = Batch.objects.filter(pk=pk).values_list("name", flat=True).first()
        return [(value, name if name is not None else value)]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        return queryset if value is None else queryset.filter(batch_id=uuid.UUID(value))


class JobChangeList(ChangeList):
    """Leaves the large columns (arguments, result, traceback) out of the list."""

    def get_queryset(self, request: HttpRequest, *args: Any, **kwargs: Any) -> QuerySet[Any]:
        return super().get_queryset(request, *args, **kwargs).defer(*HEAVY)


class ConsoleAdmin:
    """What the job and batch admins share: read-only rows (jobs write them), a
    ``cancel_<model>`` permission, cheap counts and no facet counts."""

    opts: Any
    paginator: ClassVar[type] = CappedCountPaginator
    show_full_result_count = False
    if hasattr(admin, "ShowFacets"):  # Django 5.0+: "Show counts" would count every choice
        show_facets = admin.ShowFacets.NEVER

    def has_add_permission(self, request: Any) -> bool:
        return False

    def has_change_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    def has_cancel_permission(self, request: Any) -> bool:
        return bool(request.user.has_perm(f"django_jobprogress.cancel_{self.opts.model_name}"))

    def search_by_id(self, queryset: QuerySet[Any], term: str) -> QuerySet[Any] | None:
        """A term that is a UUID finds that row through the primary key."""
        try:
            pk = uuid.UUID(term.strip())
        except ValueError:
            return None
        return queryset.filter(pk=pk)


# -- jobs ---------------------------------------------------------------------


@admin.register(JobRecord)
class JobRecordAdmin(ConsoleAdmin, JobAdminBase):
    list_display = ("task", "status_badge", "progress_cell", "stage", "owner", "created_at")
    list_display_links = ("task",)
    list_filter = ("status", TaskFilter, QueueFilter, BatchFilter)
    # Shown in the search box's help; get_search_results decides what is searched.
    search_fields = ("=id", "=key", "task_name")
    search_help_text = gettext_lazy("A job's id, its exact key, or part of a task's name.")
    # Only orders an index serves (default: -created_at, then -id; see Meta.indexes).
    sortable_by = ("created_at",)
    list_select_related = ("owner",)
    actions = ["cancel_jobs", "retry_jobs"]
    readonly_fields = [
        *(f.name for f in JobRecord._meta.fields),
        "task_full",
        "status_badge",
        "progress_summary",
        "fields_json",
        "result_json",
        "error_text",
        "traceback_text",
        "timeline",
        "attempts_summary",
        "worker",
        "batch_link",
        "retry_of_link",
        "retries",
        "args_json",
        "kwargs_json",
    ]
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "task_full",
                    "status_badge",
                    "progress_summary",
                    "stage",
                    "message",
                    "fields_json",
                ]
            },
        ),
        (gettext_lazy("Outcome"), {"fields": ["result_json", "error_text", "traceback_text"]}),
        (gettext_lazy("Timeline"), {"fields": ["timeline"]}),
        (
            gettext_lazy("Run"),
            {
                "fields": [
                    "attempts_summary",
                    "worker",
                    "queue",
                    "key",
                    "owner",
                    "batch_link",
                    "retry_of_link",
                    "retries",
                    "queue_task_id",
                ]
            },
        ),
        (
            gettext_lazy("Limits"),
            {
                "classes": ["collapse"],
                "fields": [
                    "cancellable",
                    "cancel_threshold",
                    "stall_timeout",
                    "progress_timeout",
                    "max_attempts",
                ],
            },
        ),
        (
            gettext_lazy("Arguments"),
            {"classes": ["collapse"], "fields": ["args_json", "kwargs_json"]},
        ),
    ]

    # -- URLs and views --------------------------------------------------------

    def get_urls(self) -> list[URLPattern]:
        wrap = self.admin_site.admin_view
        name = f"{self.opts.app_label}_{self.opts.model_name}"
        return [
            path("dashboard/", wrap(self.dashboard_view), name="jobprogress_dashboard"),
            path("live/", wrap(self.live_view), name=f"{name}_live"),
            path("<path:object_id>/cancel/", wrap(self.cancel_view), name=f"{name}_cancel"),
            path("<path:object_id>/retry/", wrap(self.retry_view), name=f"{name}_retry"),
            *super().get_urls(),
        ]

    def dashboard_view(self, request: HttpRequest) -> HttpResponse:
        """The operations dashboard, for staff who may view jobs."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        return dashboard.dashboard_view(request, self)

    def live_view(self, request: HttpRequest) -> JsonResponse:
        """``?id=<uuid>&id=...``: the state of up to ``LIVE_IDS`` jobs, which the list
        polls for its unfinished rows (one request per page, not one per row)."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        ids = []
        for raw in request.GET.getlist("id")[:LIVE_IDS]:
            try:
                ids.append(uuid.UUID(raw))
            except ValueError:
                continue
        fields = ("id", "status", "progress", "stage", "cancel_requested_at")
        jobs = {
            str(record.pk): {
                "status": record.status,
                "label": status_label(record),
                "percent": int(record.progress * 100),
                "stage": record.stage,
                "finished": record.is_finished,
            }
            for record in JobRecord.objects.filter(pk__in=ids).only(*fields)
        }
        return JsonResponse({"jobs": jobs})

    def _button_target(
        self, request: HttpRequest, object_id: str, allowed: bool
    ) -> JobRecord | HttpResponse:
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not allowed:
            raise PermissionDenied
        record = self.get_object(request, unquote(object_id))
        if record is None:
            text = _("There is no job with id “%(id)s”; perhaps it was deleted.")
            self.message_user(request, text % {"id": object_id}, messages.WARNING)
            name = f"{self.admin_site.name}:{self.opts.app_label}_{self.opts.model_name}"
            return HttpResponseRedirect(reverse(f"{name}_changelist"))
        return record

    def cancel_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """POST from the Cancel button of a job's page."""
        record = self._button_target(request, object_id, self.has_cancel_permission(request))
        if isinstance(record, HttpResponse):
            return record
        done, text = self.cancel_one(request, record)
        self.message_user(request, text, messages.SUCCESS if done else messages.ERROR)
        return HttpResponseRedirect(self.change_url(record.pk))

    def retry_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """POST from the Retry button of a job's page; shows the new job on success."""
        record = self._button_target(request, object_id, self.has_retry_permission(request))
        if isinstance(record, HttpResponse):
            return record
        retried, text = self.retry_one(request, record)
        self.message_user(request, text, messages.SUCCESS if retried else messages.ERROR)
        return HttpResponseRedirect(self.change_url((retried or record).pk))

    def change_url(self, pk: Any) -> str:
        name = f"{self.admin_site.name}:{self.opts.app_label}_{self.opts.model_name}_change"
        return reverse(name, args=[quote(pk)])

    # -- cancel and retry --------------------------------------------------------

    def has_retry_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.has_perm("django_jobprogress.retry_jobrecord"))

    def has_delete_permission(self, request: HttpRequest, obj: JobRecord | None = None) -> bool:
        """Never for an unfinished job: cancel it first."""
        if obj is not None and not obj.is_finished:
            return False
        return super().has_delete_permission(request, obj)

    def cancel_one(self, request: HttpRequest, record: JobRecord) -> tuple[bool, str]:
        """Cancel ``record`` for the request's user; (done, what to tell them). A cancel
        that took effect is written to the admin history."""
        if record.request_cancel(by=request.user):
            if record.status == JobRecord.Status.CANCELLED:
                text = _("%(job)s cancelled.") % {"job": job_label(record)}
            else:
                text = _("%(job)s asked to stop; it stops at its next checkpoint.") % {
                    "job": job_label(record)
                }
            self.log_change(request, record, text)
            return True, text
        record.refresh_from_db(fields=["status", "progress", "cancellable", "cancel_threshold"])
        if record.is_finished:
            reason = _("it has already ended (%(status)s)") % {
                "status": record.get_status_display()
            }
        elif not record.cancellable:
            reason = _("its task cannot be cancelled")
        else:
            reason = _("it is past its cancel threshold (%(percent)d%%)") % {
                "percent": record.cancel_threshold * 100
            }
        return False, _("%(job)s was not cancelled: %(reason)s.") % {
            "job": job_label(record),
            "reason": reason,
        }

    def retry_one(self, request: HttpRequest, record: JobRecord) -> tuple[JobRecord | None, str]:
        """Retry ``record`` for the request's user; (the new job or None, what to tell
        them). A retry is written to the history of both jobs."""
        label = job_label(record)
        try:
            retried = record.retry(by=request.user)
        except NotRetryable:
            reason = _(
                "its status is “%(status)s”; only failed or cancelled jobs can be retried"
            ) % {"status": record.get_status_display()}
        except DuplicateJob as exc:
            reason = _("job %(other)s holds its key “%(key)s” and has not ended") % {
                "other": job_label(exc.existing),
                "key": record.key,
            }
        except JobProgressConfigurationError:
            reason = _("its task %(task)s cannot be loaded") % {"task": record.task_name}
        else:
            text = _("%(job)s retried as %(new)s.") % {"job": label, "new": job_label(retried)}
            self.log_change(request, record, text)
            self.log_addition(request, retried, _("Retry of %(job)s.") % {"job": label})
            return retried, text
        return None, _("%(job)s was not retried: %(reason)s.") % {"job": label, "reason": reason}

    def _report(self, request: HttpRequest, done: str, refused: list[str], more: int) -> None:
        parts = [done] if done else []
        if refused:
            parts.append(" ".join(refused[:5]))
            if len(refused) > 5:
                parts.append(_("(%(count)d more refused.)") % {"count": len(refused) - 5})
        if more:
            parts.append(
                _("Only the first %(limit)s selected jobs were handled; run it again for the rest.")
                % {"limit": formats.number_format(ACTION_LIMIT, force_grouping=True)}
            )
        level = messages.WARNING if refused or more else messages.SUCCESS
        if not done:
            level = messages.ERROR
        self.message_user(request, " ".join(parts), level)

    def _selected(self, queryset: QuerySet[Any]) -> tuple[list[JobRecord], int]:
        """At most ``ACTION_LIMIT`` of the selected jobs, fully loaded; and whether
        more were selected ("select all" on a large list)."""
        records = list(queryset.defer(None)[: ACTION_LIMIT + 1])
        return records[:ACTION_LIMIT], int(len(records) > ACTION_LIMIT)

    @admin.action(description=gettext_lazy("Cancel selected jobs"), permissions=["cancel"])
    def cancel_jobs(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        records, more = self._selected(queryset)
        outcomes = [self.cancel_one(request, record) for record in records]
        cancelled = sum(done for done, _text in outcomes)
        refused = [text for done, text in outcomes if not done]
        done = ""
        if cancelled:
            done = ngettext(
                "%(count)d job cancelled or asked to stop.",
                "%(count)d jobs cancelled or asked to stop.",
                cancelled,
            ) % {"count": cancelled}
        self._report(request, done, refused, more)

    @admin.action(description=gettext_lazy("Retry selected jobs"), permissions=["retry"])
    def retry_jobs(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        records, more = self._selected(queryset)
        outcomes = [self.retry_one(request, record) for record in records]
        retried = sum(new is not None for new, _text in outcomes)
        refused = [text for new, text in outcomes if new is None]
        done = ""
        if retried:
            done = ngettext("%(count)d job retried.", "%(count)d jobs retried.", retried) % {
                "count": retried
            }
        self._report(request, done, refused, more)

    # -- the list ----------------------------------------------------------------

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return JobChangeList

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Any], search_term: str
    ) -> tuple[QuerySet[Any], bool]:
        """A UUID finds that job by its primary key; any other term finds the jobs
        whose key is exactly it, and the jobs of the tasks whose name contains it
        (names taken from ``distinct_values``, then matched through the task index).
        Nothing here scans the table."""
        term = search_term.strip()
        if not term:
            return queryset, False
        found = self.search_by_id(queryset, term)
        if found is not None:
            return found, False
        wanted = term.casefold()
        tasks = [
            name
            for name in distinct_values(JobRecord, "task_name", SEARCHED_TASKS)
            if wanted in name.casefold()
        ]
        match = Q(key=term)
        if tasks:
            match |= Q(task_name__in=tasks)
        return queryset.filter(match), False

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        name = f"{self.admin_site.name}:{self.opts.app_label}_{self.opts.model_name}_live"
        context = {
            "jp_live": {
                "url": reverse(name),
                "empty": self.get_empty_value_display(),
                "interval": 2000,
            },
            "jp_dashboard_url": reverse(f"{self.admin_site.name}:jobprogress_dashboard"),
            **(extra_context or {}),
        }
        return super().changelist_view(request, context)

    @admin.display(description=gettext_lazy("task"))
    def task(self, obj: JobRecord) -> SafeString:
        return task_html(obj.task_name)

    @admin.display(description=gettext_lazy("status"))
    def status_badge(self, obj: JobRecord) -> SafeString:
        return badge(obj)

    @admin.display(description=gettext_lazy("progress"))
    def progress_cell(self, obj: JobRecord) -> SafeString | str:
        """Unfinished rows get a bar that the page keeps up to date."""
        percent = int(obj.progress * 100)
        if obj.is_finished:
            return f"{percent}%"
        label = _("Progress of %(task)s") % {"task": short_name(obj.task_name)}
        return format_html(
            '<div class="jp-minibar" data-jp-live="{}">'
            '<div class="jp-minibar__track" role="progressbar" aria-label="{}" '
            'aria-valuemin="0" aria-valuemax="100" aria-valuenow="{}">'
            '<div class="jp-minibar__fill" style="width: {}%"></div></div>'
            '<span class="jp-minibar__percent">{}%</span></div>',
            obj.pk,
            label,
            percent,
            percent,
            percent,
        )

    # -- a job's page ----------------------------------------------------------

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: JobRecord | None = None,
    ) -> HttpResponse:
        if obj is not None:
            name = f"{self.admin_site.name}:{self.opts.app_label}_{self.opts.model_name}"
            context.update(
                jp_task=task_html(obj.task_name),
                jp_status=badge(obj),
                jp_can_cancel=self.has_cancel_permission(request)
                and obj.can_be_cancelled
                and obj.cancel_requested_at is None,
                jp_can_retry=self.has_retry_permission(request) and obj.status in RETRYABLE,
                jp_cancel_url=reverse(f"{name}_cancel", args=[quote(obj.pk)]),
                jp_retry_url=reverse(f"{name}_retry", args=[quote(obj.pk)]),
            )
        return super().render_change_form(request, context, add, change, form_url, obj)

    @admin.display(description=gettext_lazy("task"))
    def task_full(self, obj: JobRecord) -> SafeString:
        return format_html("{} <code>{}</code>", short_name(obj.task_name), obj.task_name)

    @admin.display(description=gettext_lazy("progress"))
    def progress_summary(self, obj: JobRecord) -> str:
        percent = int(obj.progress * 100)
        if obj.total is None:
            return f"{percent}%"
        return _("%(percent)d%% (%(current)s of %(total)s)") % {
            "percent": percent,
            "current": formats.number_format(obj.current, force_grouping=True),
            "total": formats.number_format(obj.total, force_grouping=True),
        }

    @admin.display(description=gettext_lazy("status fields"))
    @or_empty
    def fields_json(self, obj: JobRecord) -> SafeString | None:
        return pretty_json(obj.fields) if obj.fields else None

    @admin.display(description=gettext_lazy("result"))
    @or_empty
    def result_json(self, obj: JobRecord) -> SafeString | None:
        if obj.result is None and obj.status != JobRecord.Status.COMPLETED:
            return None
        return pretty_json(obj.result)

    @admin.display(description=gettext_lazy("error"))
    @or_empty
    def error_text(self, obj: JobRecord) -> SafeString | None:
        return preformatted(obj.error, "jp-pre--error") if obj.error else None

    @admin.display(description=gettext_lazy("traceback"))
    @or_empty
    def traceback_text(self, obj: JobRecord) -> SafeString | None:
        return preformatted(obj.traceback) if obj.traceback else None

    @admin.display(description=gettext_lazy("timeline"))
    @or_empty
    def timeline(self, obj: JobRecord) -> SafeString | None:
        ran = ""
        if obj.started_at and obj.finished_at:
            seconds = (obj.finished_at - obj.started_at).total_seconds()
            ran = _("after %(duration)s") % {"duration": duration(seconds)}
        by = ""
        if obj.cancel_requested_at and obj.cancel_requested_by_id:
            by = _("by %(user)s") % {"user": obj.cancel_requested_by}
        return timeline_html(
            [
                (_("created"), obj.created_at, ""),
                (_("scheduled for"), obj.scheduled_for, ""),
                (_("started"), obj.started_at, ""),
                (_("last progress"), obj.progress_at, ""),
                (_("last heartbeat"), obj.heartbeat_at, ""),
                (_("cancel requested"), obj.cancel_requested_at, by),
                (_("finished"), obj.finished_at, ran),
            ]
        )

    @admin.display(description=gettext_lazy("attempts"))
    def attempts_summary(self, obj: JobRecord) -> str:
        return _("%(attempts)d of %(max)d") % {"attempts": obj.attempts, "max": obj.max_attempts}

    @admin.display(description=gettext_lazy("worker"))
    @or_empty
    def worker(self, obj: JobRecord) -> str | None:
        if obj.worker_pid is None:
            return obj.worker_host or None
        return _("%(host)s, pid %(pid)s") % {"host": obj.worker_host, "pid": obj.worker_pid}

    @admin.display(description=gettext_lazy("batch"))
    @or_empty
    def batch_link(self, obj: JobRecord) -> SafeString | None:
        if obj.batch_id is None:
            return None
        batch = obj.batch
        if batch is None:
            return None
        url = reverse(
            f"{self.admin_site.name}:django_jobprogress_batch_change", args=[quote(batch.pk)]
        )
        return format_html('<a href="{}">{}</a> {}', url, batch.name, badge(batch))

    @admin.display(description=gettext_lazy("retry of"))
    @or_empty
    def retry_of_link(self, obj: JobRecord) -> SafeString | None:
        if obj.retry_of is None:
            return None
        original = JobRecord.objects.filter(pk=obj.retry_of).only("id", "task_name", "status")
        record = original.first()
        if record is None:  # pruned since
            return format_html("<code>{}</code> ({})", obj.retry_of, _("deleted"))
        return self._job_link(record)

    @admin.display(description=gettext_lazy("retries"))
    @or_empty
    def retries(self, obj: JobRecord) -> SafeString | None:
        fields = ("id", "task_name", "status", "cancel_requested_at", "created_at")
        records = JobRecord.objects.filter(retry_of=obj.pk).only(*fields).order_by("created_at")
        links = [self._job_link(record) for record in records[:MEMBERS_SHOWN]]
        if not links:
            return None
        return format_html_join(", ", "{}", ((link,) for link in links))

    def _job_link(self, record: JobRecord) -> SafeString:
        return format_html(
            '<a href="{}">{}</a> {}', self.change_url(record.pk), job_label(record), badge(record)
        )

    @admin.display(description=gettext_lazy("arguments"))
    def args_json(self, obj: JobRecord) -> SafeString:
        return pretty_json(obj.args)

    @admin.display(description=gettext_lazy("keyword arguments"))
    def kwargs_json(self, obj: JobRecord) -> SafeString:
        return pretty_json(obj.kwargs)


# -- batches ------------------------------------------------------------------


@admin.register(Batch)
class BatchAdmin(ConsoleAdmin, BatchAdminBase):
    list_display = ("name", "status_badge", "done", "failed", "cancelled", "members", "created_at")
    list_filter = ("status",)
    search_fields = ("=id", "name")
    search_help_text = gettext_lazy("A batch's id, or part of its name.")
    sortable_by = ("created_at",)
    actions = ["cancel_batches"]
    readonly_fields = [
        *(f.name for f in Batch._meta.fields),
        "status_badge",
        "counters",
        "callbacks",
        "timeline",
        "callback_kwargs_json",
    ]
    fieldsets = [
        (None, {"fields": ["name", "status_badge", "owner", "sealed", "allow_failures"]}),
        (gettext_lazy("Members"), {"fields": ["counters"]}),
        (gettext_lazy("Callbacks"), {"fields": ["callbacks"]}),
        (gettext_lazy("Timeline"), {"fields": ["timeline"]}),
        (
            gettext_lazy("Callback arguments"),
            {"classes": ["collapse"], "fields": ["callback_kwargs_json"]},
        ),
    ]

    def has_delete_permission(self, request: HttpRequest, obj: Batch | None = None) -> bool:
        """Never for an unfinished batch: its callbacks have yet to run."""
        if obj is not None and not obj.is_finished:
            return False
        return super().has_delete_permission(request, obj)

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Any], search_term: str
    ) -> tuple[QuerySet[Any], bool]:
        """A UUID finds that batch by its primary key, anything else searches names."""
        found = self.search_by_id(queryset, search_term)
        if found is not None:
            return found, False
        return queryset.filter(name__icontains=search_term.strip()), False

    def members_url(self, batch: Batch, **params: str) -> str:
        changelist = reverse(f"{self.admin_site.name}:django_jobprogress_jobrecord_changelist")
        return f"{changelist}?{urlencode({'batch__id__exact': str(batch.pk), **params})}"

    @admin.display(description=gettext_lazy("status"))
    def status_badge(self, obj: Batch) -> SafeString:
        return badge(obj)

    @admin.display(description=gettext_lazy("done"))
    def done(self, obj: Batch) -> str:
        finished = obj.succeeded + obj.failed + obj.cancelled
        return _("%(done)s of %(total)s") % {"done": finished, "total": obj.total}

    @admin.display(description=gettext_lazy("members"))
    def members(self, obj: Batch) -> SafeString:
        return format_html('<a href="{}">{}</a>', self.members_url(obj), _("list"))

    @admin.display(description=gettext_lazy("counts"))
    def counters(self, obj: Batch) -> SafeString:
        live = obj.live_counts()
        rows = [
            (_("all"), obj.total, {}),
            (_("pending"), live["pending"], {"status__exact": "pending"}),
            (_("running"), live["running"], {"status__exact": "running"}),
            (_("succeeded"), obj.succeeded, {"status__exact": "completed"}),
            (_("failed"), obj.failed, {"status__exact": "failed"}),
            (_("cancelled"), obj.cancelled, {"status__exact": "cancelled"}),
        ]
        cells = format_html_join(
            "",
            '<tr><th scope="row">{}</th><td><a href="{}">{}</a></td></tr>',
            ((what, self.members_url(obj, **params), count) for what, count, params in rows),
        )
        return format_html('<table class="jp-counters"><tbody>{}</tbody></table>', cells)

    @admin.display(description=gettext_lazy("callbacks"))
    @or_empty
    def callbacks(self, obj: Batch) -> SafeString | None:
        rows = []
        for name, label in (
            ("on_complete", _("on complete")),
            ("on_success", _("on success")),
            ("on_failure", _("on failure")),
        ):
            task_name = getattr(obj, name)
            if not task_name:
                continue
            enqueued_at = getattr(obj, f"{name}_enqueued_at")
            when: Any = _("not enqueued")
            if enqueued_at is not None:
                when = formats.localize(timezone.localtime(enqueued_at))
                job = callback_job(obj, task_name, enqueued_at)
                if job is not None:
                    url = reverse(
                        f"{self.admin_site.name}:django_jobprogress_jobrecord_change",
                        args=[quote(job.pk)],
                    )
                    when = format_html(
                        '{} <a href="{}">{}</a> {}', when, url, job_label(job), badge(job)
                    )
            rows.append((label, task_html(task_name), when))
        if not rows:
            return None
        cells = format_html_join("", "<tr><th>{}</th><td>{}</td><td>{}</td></tr>", rows)
        return format_html('<table class="jp-callbacks"><tbody>{}</tbody></table>', cells)

    @admin.display(description=gettext_lazy("timeline"))
    @or_empty
    def timeline(self, obj: Batch) -> SafeString | None:
        return timeline_html(
            [
                (_("created"), obj.created_at, ""),
                (_("cancel requested"), obj.cancel_requested_at, ""),
                (_("finished"), obj.finished_at, ""),
            ]
        )

    @admin.display(description=gettext_lazy("callback arguments"))
    def callback_kwargs_json(self, obj: Batch) -> SafeString:
        return pretty_json(obj.callback_kwargs)

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: Batch | None = None,
    ) -> HttpResponse:
        if obj is not None and request.user.has_perm("django_jobprogress.view_jobrecord"):
            fields = (
                "id",
                "task_name",
                "status",
                "progress",
                "stage",
                "cancel_requested_at",
                "batch",
            )
            members = obj.jobs.only(*fields).order_by("-created_at", "-id")[:MEMBERS_SHOWN]
            context.update(
                jp_members=[
                    {
                        "record": member,
                        "task": task_html(member.task_name),
                        "status": badge(member),
                        "percent": int(member.progress * 100),
                        "url": reverse(
                            f"{self.admin_site.name}:django_jobprogress_jobrecord_change",
                            args=[quote(member.pk)],
                        ),
                    }
                    for member in members
                ],
                jp_members_url=self.members_url(obj),
            )
        return super().render_change_form(request, context, add, change, form_url, obj)

    @admin.action(description=gettext_lazy("Cancel selected batches"), permissions=["cancel"])
    def cancel_batches(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        cancelled = 0
        for batch in queryset[:ACTION_LIMIT]:
            if batch.request_cancel(by=request.user):
                cancelled += 1
                self.log_change(request, batch, _("Cancel requested."))
        self.message_user(
            request,
            ngettext("%d batch cancelled.", "%d batches cancelled.", cancelled) % cancelled,
            messages.SUCCESS if cancelled else messages.WARNING,
        )


def callback_job(batch: Batch, task_name: str, enqueued_at: datetime) -> JobRecord | None:
    """The job a batch's callback was enqueued as: of that task, created just after
    the claim, with the batch's snapshot as its first argument (task index)."""
    return (
        JobRecord.objects.filter(
            task_name=task_name,
            created_at__gte=enqueued_at,
            created_at__lt=enqueued_at + timedelta(minutes=5),
            args__0__id=str(batch.pk),
        )
        .only("id", "task_name", "status", "cancel_requested_at")
        .order_by("created_at")
        .first()
    )


# -- schedules and the dashboard's index entry -----------------------------------


@admin.register(Schedule)
class ScheduleAdmin(ScheduleAdminBase):
    """Schedules come from ``JOBPROGRESS["SCHEDULES"]``: shown here, changed there."""

    list_display = ("name", "task_name", "when", "next_run_at", "last_slot_at")
    search_fields = ("name", "task_name")
    readonly_fields = [f.name for f in Schedule._meta.fields]

    @admin.display(description=gettext_lazy("when"))
    def when(self, obj: Schedule) -> str:
        try:
            return obj.spec.describe()
        except (TypeError, ValueError):
            return "?"

    def has_add_permission(self, request: Any) -> bool:
        return False

    def has_change_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: Any, obj: Any = None) -> bool:
        return False


@admin.register(JobDashboard)
class DashboardAdmin(DashboardAdminBase):
    """Puts "Dashboard" in the admin index, for staff who may view jobs."""

    def has_module_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.has_perm("django_jobprogress.view_jobrecord"))

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.has_module_permission(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        return HttpResponseRedirect(reverse(f"{self.admin_site.name}:jobprogress_dashboard"))
