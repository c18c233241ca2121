"""What the job and batch admins share."""

from __future__ import annotations

import uuid
from typing import Any, ClassVar

from django.contrib import admin
from django.db.models import QuerySet

from django_jobprogress.admin.paginators import CappedCountPaginator


class ConsoleAdmin:
    """Read-only rows (jobs write them), a ``cancel_<model>`` permission, cheap
    counts and no facet counts."""

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
