"""The admin's operations dashboard (``admin:jobprogress_dashboard``)."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse


def dashboard_view(request: HttpRequest, model_admin: Any) -> HttpResponse:
    """Render the dashboard; ``model_admin`` is the ``JobRecord`` admin (permission
    already checked)."""
    context = {
        **model_admin.admin_site.each_context(request),
        "title": "Jobs dashboard",
        "opts": model_admin.model._meta,
    }
    return TemplateResponse(request, "admin/django_jobprogress/dashboard.html", context)
