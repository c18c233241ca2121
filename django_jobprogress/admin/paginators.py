"""Counts that stay cheap at a million rows: no list page counts the whole table."""

from __future__ import annotations

import functools
import json
from typing import TYPE_CHECKING, Any, cast

from django.core.paginator import Paginator
from django.db import connections
from django.db.models import QuerySet
from django.utils import formats
from django.utils.translation import gettext as _

if TYPE_CHECKING:  # Paginator takes a type argument only in the stubs
    PaginatorBase = Paginator[Any]
else:
    PaginatorBase = Paginator

#: Rows a list counts at most; more are shown as "10,000+".
COUNT_CAP = 10_000


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
