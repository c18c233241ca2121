"""Admin for jobs and batches (filters, search, a cancel action guarded by a
permission) and for schedules (read-only: settings are their source)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import URLPattern, path, reverse
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from django_jobprogress import dashboard
from django_jobprogress.models import Batch, JobDashboard, JobRecord, Schedule

if TYPE_CHECKING:  # Django's admin classes take type arguments only in the stubs
    JobAdminBase = admin.ModelAdmin[JobRecord]
    MemberInlineBase = admin.TabularInline[JobRecord, Batch]
    BatchAdminBase = admin.ModelAdmin[Batch]
    ScheduleAdminBase = admin.ModelAdmin[Schedule]
    DashboardAdminBase = admin.ModelAdmin[JobDashboard]
else:
    JobAdminBase = BatchAdminBase = ScheduleAdminBase = DashboardAdminBase = admin.ModelAdmin
    MemberInlineBase = admin.TabularInline


class ReadOnlyWithCancel:
    """Rows are written by jobs, never by hand; cancelling needs ``cancel_<model>``."""

    opts: Any

    def has_add_permission(self, request: Any) -> bool:
        return False

    def has_change_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    def has_cancel_permission(self, request: Any) -> bool:
        return bool(request.user.has_perm(f"django_jobprogress.cancel_{self.opts.model_name}"))


@admin.register(JobRecord)
class JobRecordAdmin(ReadOnlyWithCancel, JobAdminBase):
    list_display = ("task_name", "status", "progress_percent", "stage", "owner", "created_at")
    list_filter = ("status", "task_name", "queue", "batch")
    search_fields = ("=id", "task_name", "key", "stage", "message", "error")
    date_hierarchy = "created_at"
    list_select_related = ("owner",)
    actions = ["cancel_jobs"]
    readonly_fields = [f.name for f in JobRecord._meta.fields]

    def get_urls(self) -> list[URLPattern]:
        dashboard_url = path(
            "dashboard/",
            self.admin_site.admin_view(self.dashboard_view),
            name="jobprogress_dashboard",
        )
        return [dashboard_url, *super().get_urls()]

    def dashboard_view(self, request: HttpRequest) -> HttpResponse:
        """The operations dashboard, for staff who may view jobs."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        return dashboard.dashboard_view(request, self)

    @admin.display(description=_("progress"), ordering="progress")
    def progress_percent(self, obj: JobRecord) -> str:
        return f"{obj.progress:.0%}"

    @admin.action(description=_("Cancel selected jobs"), permissions=["cancel"])
    def cancel_jobs(self, request: Any, queryset: Any) -> None:
        cancelled = sum(record.request_cancel(by=request.user) for record in queryset.unfinished())
        self.message_user(
            request,
            ngettext(
                "%d job cancelled or asked to stop.",
                "%d jobs cancelled or asked to stop.",
                cancelled,
            )
            % cancelled,
            messages.SUCCESS if cancelled else messages.WARNING,
        )


class MemberInline(MemberInlineBase):
    model = JobRecord
    fields = ("task_name", "status", "progress", "stage", "error", "finished_at")
    readonly_fields = fields
    extra = 0
    max_num = 0
    show_change_link = True
    can_delete = False


@admin.register(Batch)
class BatchAdmin(ReadOnlyWithCancel, BatchAdminBase):
    list_display = ("name", "status", "total", "succeeded", "failed", "cancelled", "created_at")
    list_filter = ("status",)
    search_fields = ("=id", "name")
    date_hierarchy = "created_at"
    actions = ["cancel_batches"]
    readonly_fields = [f.name for f in Batch._meta.fields]
    inlines = [MemberInline]

    @admin.action(description=_("Cancel selected batches"), permissions=["cancel"])
    def cancel_batches(self, request: Any, queryset: Any) -> None:
        cancelled = sum(batch.request_cancel(by=request.user) for batch in queryset)
        self.message_user(
            request,
            ngettext("%d batch cancelled.", "%d batches cancelled.", cancelled) % cancelled,
            messages.SUCCESS if cancelled else messages.WARNING,
        )


@admin.register(Schedule)
class ScheduleAdmin(ScheduleAdminBase):
    """Schedules come from ``JOBPROGRESS["SCHEDULES"]``: shown here, changed there."""

    list_display = ("name", "task_name", "when", "next_run_at", "last_slot_at")
    search_fields = ("name", "task_name")
    readonly_fields = [f.name for f in Schedule._meta.fields]

    @admin.display(description=_("when"))
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
