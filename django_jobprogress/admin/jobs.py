"""The job admin's list: cheap at a million rows, with live bars on its
unfinished rows; and its extra URLs (the dashboard, the live rows' fallback,
the buttons)."""

from __future__ import annotations

import uuid
from typing import Any

from django.contrib import admin
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import URLPattern, get_script_prefix, path, reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from django_jobprogress import dashboard
from django_jobprogress.admin.display import short_name, task_html
from django_jobprogress.admin.filters import BatchFilter, QueueFilter, TaskFilter, distinct_values
from django_jobprogress.admin.job_page import JobPage
from django_jobprogress.models import JobRecord

#: Task names a search looks through (matched by name, then found on the index).
SEARCHED_TASKS = 1000
#: Jobs one request of ``live/`` reports (a page shows at most ``list_per_page``).
LIVE_IDS = 200
#: How often, in ms, the list asks ``live/`` when sockets cannot open.
LIVE_INTERVAL_MS = 2000
# Loaded when a job is opened, never for the list.
HEAVY = ("args", "kwargs", "result", "traceback", "fields", "error", "message")


class JobChangeList(ChangeList):
    """Leaves the large columns (arguments, result, traceback) out of the list."""

    def get_queryset(self, request: HttpRequest, *args: Any, **kwargs: Any) -> QuerySet[Any]:
        return super().get_queryset(request, *args, **kwargs).defer(*HEAVY)


class JobRecordAdmin(JobPage):
    """Jobs: the list, a job's page (``JobPage``), cancel and retry (``JobActions``)
    and the dashboard's URL."""

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

    class Media:
        css = {"all": ["django_jobprogress/admin.css"]}
        # progress.js opens the page's one shared socket; admin.js puts the rows on it.
        js = ["django_jobprogress/progress.js", "django_jobprogress/admin.js"]

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
        """``?id=<uuid>&id=...``: the state of up to ``LIVE_IDS`` jobs, in the keys of
        their snapshots. The list's fallback when its socket cannot open: one request
        per page every ``LIVE_INTERVAL_MS``, not one per row."""
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
                "id": str(record.pk),
                "status": record.status,
                "progress": record.progress,
                "stage": record.stage,
                "cancel_requested": record.cancel_requested_at is not None,
            }
            for record in JobRecord.objects.filter(pk__in=ids).only(*fields)
        }
        return JsonResponse({"jobs": jobs})

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
        context = {
            "jp_live": self.live_config(),
            "jp_dashboard_url": reverse(f"{self.admin_site.name}:jobprogress_dashboard"),
            **(extra_context or {}),
        }
        return super().changelist_view(request, context)

    def live_config(self) -> dict[str, Any]:
        """What ``admin.js`` needs to keep the rows live (the page's JSON data island):
        the shared socket's path, the fallback's URL, and the badges' texts."""
        name = f"{self.admin_site.name}:{self.opts.app_label}_{self.opts.model_name}_live"
        return {
            "watch": f"{get_script_prefix()}ws/watch/",
            "url": reverse(name),
            "interval": LIVE_INTERVAL_MS,
            "empty": str(self.get_empty_value_display()),
            "labels": {status.value: str(status.label) for status in JobRecord.Status},
            "cancel_requested": _("%(status)s, cancel requested"),
        }

    @admin.display(description=gettext_lazy("task"))
    def task(self, obj: JobRecord) -> SafeString:
        return task_html(obj.task_name)

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
