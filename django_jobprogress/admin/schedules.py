"""The schedules' admin: read-only, since ``JOBPROGRESS["SCHEDULES"]`` is their source."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib import admin
from django.utils.translation import gettext_lazy

from django_jobprogress.models import Schedule

if TYPE_CHECKING:  # Django's admin classes take type arguments only in the stubs
    ScheduleAdminBase = admin.ModelAdmin[Schedule]
else:
    ScheduleAdminBase = admin.ModelAdmin


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
