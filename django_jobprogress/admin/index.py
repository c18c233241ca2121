"""The admin index's "Dashboard" entry: a proxy model's admin that links to the
dashboard, so projects need no custom ``AdminSite``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib import admin
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse

from django_jobprogress.models import JobDashboard

if TYPE_CHECKING:  # Django's admin classes take type arguments only in the stubs
    DashboardAdminBase = admin.ModelAdmin[JobDashboard]
else:
    DashboardAdminBase = admin.ModelAdmin


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
