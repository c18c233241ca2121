"""The job list's filters, whose choices never scan the table: task and queue
from a loose index scan, batch only from a link."""

from __future__ import annotations

import uuid
from typing import Any, cast

from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.db import connections, router
from django.db.models import Model, QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from django_jobprogress.admin.display import short_name, task_html
from django_jobprogress.models import Batch

#: Distinct tasks or queues offered by a filter.
FILTER_CHOICES = 100


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
