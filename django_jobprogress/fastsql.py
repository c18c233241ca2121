"""Hand-built conditional UPDATEs for the transitions every job makes.

Compiling an ORM UPDATE costs more client CPU than the statement costs the
database, and a worker runs several per job. These helpers write the same
guarded UPDATE directly (values prepared by the fields themselves), and the
claim uses ``UPDATE ... RETURNING`` so a worker reads and claims its job in one
round trip. Backends without ``RETURNING`` get ``NotImplemented`` and the
caller falls back to the ORM.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from typing import Any

from django.db import connections
from django.db.models import Model


def _prepare(model: type[Model], connection: Any, values: dict[str, Any]) -> tuple[list, list]:
    qn = connection.ops.quote_name
    sets, params = [], []
    for name, value in values.items():
        field = model._meta.get_field(name)
        sets.append(f"{qn(field.column)} = %s")
        params.append(field.get_db_prep_save(value, connection))
    return sets, params


def _where(model: type[Model], connection: Any, pk: Any, statuses: Iterable[str]) -> tuple:
    qn = connection.ops.quote_name
    pk_field = model._meta.pk
    statuses = list(statuses)
    placeholders = ", ".join(["%s"] * len(statuses))
    sql = f"{qn(pk_field.column)} = %s AND {qn('status')} IN ({placeholders})"
    return sql, [pk_field.get_db_prep_value(pk, connection), *statuses]


def update_if(
    model: type[Model], using: str, pk: Any, statuses: Iterable[str], values: dict[str, Any]
) -> bool:
    """``UPDATE ... SET values WHERE pk = pk AND status IN statuses``; True if a row changed."""
    connection = connections[using]
    sets, params = _prepare(model, connection, values)
    where, where_params = _where(model, connection, pk, statuses)
    table = connection.ops.quote_name(model._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {table} SET {', '.join(sets)} WHERE {where}", params + where_params)
        return cursor.rowcount == 1


def _plus_seconds(connection: Any, column: str) -> str | None:
    """SQL for ``%s + <column> seconds`` on backends we know, else None."""
    qn = connection.ops.quote_name(column)
    if connection.vendor == "postgresql":
        return f"%s + make_interval(secs => {qn})"
    if connection.vendor == "sqlite":
        # Same text form Django reads back; NULL seconds give NULL, like PostgreSQL.
        return f"strftime('%%Y-%%m-%%d %%H:%%M:%%f', %s, '+' || {qn} || ' seconds')"
    return None


def _supports_returning(connection: Any) -> bool:
    if connection.vendor == "postgresql":
        return True
    return connection.vendor == "sqlite" and sqlite3.sqlite_version_info >= (3, 35)


def claim_returning(
    model: type[Model],
    using: str,
    pk: Any,
    *,
    pending: str,
    running: str,
    now: Any,
    values: dict[str, Any],
) -> Model | None:
    """Claim a PENDING job (or a RUNNING one whose heartbeat is stale) and return it.

    Sets ``values``, increments ``attempts`` and derives ``stale_after`` and
    ``progress_deadline`` from the row's own timeouts, all in one statement.
    """
    connection = connections[using]
    stale = _plus_seconds(connection, "stall_timeout")
    deadline = _plus_seconds(connection, "progress_timeout")
    if stale is None or deadline is None or not _supports_returning(connection):
        return NotImplemented
    qn = connection.ops.quote_name
    sets, params = _prepare(model, connection, values)
    when = model._meta.get_field("stale_after").get_db_prep_save(now, connection)
    sets += [
        f"{qn('attempts')} = {qn('attempts')} + 1",
        f"{qn('stale_after')} = {stale}",
        f"{qn('progress_deadline')} = {deadline}",
    ]
    params += [when, when]
    pk_field = model._meta.pk
    fields = model._meta.concrete_fields
    columns = ", ".join(qn(f.column) for f in fields)
    sql = (
        f"UPDATE {qn(model._meta.db_table)} SET {', '.join(sets)} "
        f"WHERE {qn(pk_field.column)} = %s AND ({qn('status')} = %s "
        f"OR ({qn('status')} = %s AND {qn('stale_after')} < %s)) RETURNING {columns}"
    )
    params += [pk_field.get_db_prep_value(pk, connection), pending, running, when]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    if row is None:
        return None
    table = model._meta.db_table
    values_out = []
    for field, value in zip(fields, row, strict=True):
        col = field.get_col(table)
        for convert in connection.ops.get_db_converters(col) + col.get_db_converters(connection):
            value = convert(value, col, connection)
        values_out.append(value)
    return model.from_db(using, [f.attname for f in fields], values_out)
