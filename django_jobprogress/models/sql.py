"""The state layer's hand-written SQL: guarded UPDATEs and the claim.

Compiling an ORM UPDATE costs more client CPU than the statement costs the
database, and a worker runs several per job. ``update_if`` writes the guarded
UPDATE of a status transition directly (values prepared by the fields
themselves), and ``claim_returning`` uses ``UPDATE ... RETURNING`` so a worker
reads and claims its job in one round trip. The SQL text, the fields that
prepare each value and the converters of the returned row are built once per
connection and statement shape, then reused. PostgreSQL and SQLite >= 3.35 are
supported; elsewhere the claim raises ``NotSupportedError``.
"""

from __future__ import annotations

import copy
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar, cast
from weakref import WeakKeyDictionary

from django.conf import settings
from django.db import NotSupportedError, connections
from django.db.models import DateTimeField, Field, Func, Model, Q, Value
from django.db.models.base import ModelState
from django.db.models.fields.related_descriptors import ForeignKeyDeferredAttribute
from django.db.models.query_utils import DeferredAttribute
from django.db.models.signals import post_init, pre_init
from django.utils import timezone

M = TypeVar("M", bound=Model)
if TYPE_CHECKING:
    AnyField = Field[Any, Any]
else:
    AnyField = Field  # Django's fields take no type arguments at run time

# connection -> statement shape -> what was built for it. Keyed by the connection
# object (one per thread and alias) because converters are bound to its backend.
_built: WeakKeyDictionary[Any, dict[tuple[Any, ...], Any]] = WeakKeyDictionary()


def _once(connection: Any, key: tuple[Any, ...], build: Callable[[], Any]) -> Any:
    per_connection = _built.get(connection)
    if per_connection is None:
        per_connection = _built[connection] = {}
    try:
        return per_connection[key]
    except KeyError:
        built = per_connection[key] = build()
        return built


def _fields(model: type[Model], names: tuple[str, ...]) -> tuple[AnyField, ...]:
    return tuple(cast(AnyField, model._meta.get_field(name)) for name in names)


def _assignments(connection: Any, fields: tuple[AnyField, ...]) -> list[str]:
    qn = connection.ops.quote_name
    return [f"{qn(field.column)} = %s" for field in fields]


def _prepare(fields: tuple[AnyField, ...], values: dict[str, Any], connection: Any) -> list[Any]:
    return [
        field.get_db_prep_save(value, connection)
        for field, value in zip(fields, values.values(), strict=True)
    ]


def _build_update(
    model: type[Model], connection: Any, names: tuple[str, ...], statuses: int
) -> tuple[str, tuple[AnyField, ...]]:
    qn = connection.ops.quote_name
    fields = _fields(model, names)
    placeholders = ", ".join(["%s"] * statuses)
    sql = (
        f"UPDATE {qn(model._meta.db_table)} SET {', '.join(_assignments(connection, fields))} "
        f"WHERE {qn(model._meta.pk.column)} = %s AND {qn('status')} IN ({placeholders})"
    )
    return sql, fields


def update_if(
    model: type[Model], using: str, pk: Any, statuses: Iterable[str], values: dict[str, Any]
) -> bool:
    """``UPDATE ... SET values WHERE pk = pk AND status IN statuses``; True if a row changed."""
    connection = connections[using]
    statuses = tuple(statuses)
    names = tuple(values)
    sql, fields = _once(
        connection,
        ("update", model, names, len(statuses)),
        lambda: _build_update(model, connection, names, len(statuses)),
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, _update_params(model, connection, fields, values, pk, statuses))
        return bool(cursor.rowcount == 1)


def _update_params(
    model: type[Model],
    connection: Any,
    fields: tuple[AnyField, ...],
    values: dict[str, Any],
    pk: Any,
    statuses: tuple[str, ...],
) -> list[Any]:
    """``_build_update``'s parameters: the values, then the key and the statuses."""
    params = _prepare(fields, values, connection)
    params.append(model._meta.pk.get_db_prep_value(pk, connection))
    params.extend(statuses)
    return params


def plain_values(values: dict[str, Any]) -> bool:
    """No expression (``F()``, ``Now()``...) among ``values``: the hand-written
    statements can take them."""
    return not any(hasattr(value, "resolve_expression") for value in values.values())


def guarded_update(
    obj: Model,
    changes: dict[str, Any],
    *,
    status_in: Iterable[str] | None = None,
    where: Q | None = None,
) -> bool:
    """The one way the state layer changes a row: ``UPDATE ... SET changes WHERE pk
    AND status IN status_in AND where``; True if the row matched (and changed).

    Plain values are mirrored on ``obj``. A guard on the status alone with plain
    values takes the hand-written statement; anything else goes through the ORM.
    """
    using = obj._state.db or "default"
    model = type(obj)
    if where is None and status_in is not None and plain_values(changes):
        won = update_if(model, using, obj.pk, status_in, changes)
    else:
        rows = model._base_manager.using(using).filter(pk=obj.pk)
        if status_in is not None:
            rows = rows.filter(status__in=tuple(status_in))
        if where is not None:
            rows = rows.filter(where)
        won = bool(rows.update(**changes) == 1)
    if won:
        for name, value in changes.items():
            if not hasattr(value, "resolve_expression"):
                setattr(obj, name, value)
    return won


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


def _build_claim(
    model: type[Model], connection: Any, names: tuple[str, ...]
) -> tuple[str, tuple[AnyField, ...]] | None:
    stale = _plus_seconds(connection, "stall_timeout")
    deadline = _plus_seconds(connection, "progress_timeout")
    if stale is None or deadline is None or not _supports_returning(connection):
        return None
    qn = connection.ops.quote_name
    fields = _fields(model, names)
    sets = [
        *_assignments(connection, fields),
        f"{qn('attempts')} = {qn('attempts')} + 1",
        f"{qn('stale_after')} = {stale}",
        f"{qn('progress_deadline')} = {deadline}",
    ]
    columns = ", ".join(qn(f.column) for f in model._meta.concrete_fields)
    sql = (
        f"UPDATE {qn(model._meta.db_table)} SET {', '.join(sets)} "
        f"WHERE {qn(model._meta.pk.column)} = %s AND ({qn('status')} = %s "
        f"OR ({qn('status')} = %s AND {qn('stale_after')} < %s "
        f"AND {qn('attempts')} < {qn('max_attempts')})) RETURNING {columns}"
    )
    return sql, fields


def _build_reader(model: type[M], connection: Any) -> Callable[[str, tuple[Any, ...]], M]:
    """A function turning a returned row (all concrete fields) into an instance."""
    fields = model._meta.concrete_fields
    attnames = [f.attname for f in fields]
    converting = [
        (index, _converter(col, connection))
        for index, col in enumerate(f.get_col(model._meta.db_table) for f in fields)
        if _has_converters(col, connection)
    ]

    def read(using: str, row: tuple[Any, ...]) -> M:
        values = list(row)
        for index, convert in converting:
            values[index] = convert(values[index])
        return model.from_db(using, attnames, values)

    return read


def claim_returning(
    model: type[M],
    using: str,
    pk: Any,
    *,
    pending: str,
    running: str,
    now: Any,
    values: dict[str, Any],
) -> M | None:
    """Claim a PENDING job (or a RUNNING one whose heartbeat is stale, while it has
    attempts left) and return it.

    Sets ``values``, increments ``attempts`` and derives ``stale_after`` and
    ``progress_deadline`` from the row's own timeouts, all in one statement.
    """
    connection = connections[using]
    names = tuple(values)
    statement = _once(
        connection, ("claim", model, names), lambda: _build_claim(model, connection, names)
    )
    if statement is None:
        raise NotSupportedError(
            f"django-jobprogress claims jobs with UPDATE ... RETURNING: it needs PostgreSQL "
            f"or SQLite >= 3.35, not {connection.vendor}"
        )
    sql, fields = statement
    when = cast(AnyField, model._meta.get_field("stale_after")).get_db_prep_save(now, connection)
    pk_value = model._meta.pk.get_db_prep_value(pk, connection)
    # SET values, the two timeouts' start, then WHERE pk, statuses, staleness cut-off.
    params = [*_prepare(fields, values, connection), when, when, pk_value, pending, running, when]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    if row is None:
        return None
    read: Callable[[str, tuple[Any, ...]], M] = _once(
        connection, ("read", model), lambda: _build_reader(model, connection)
    )
    return read(using, row)


def _build_upsert_add(
    model: type[Model],
    connection: Any,
    keys: tuple[str, ...],
    added: tuple[str, ...],
    source: str | None = None,
) -> tuple[str, tuple[AnyField, ...]]:
    """The upsert's SQL and fields: ``_build_insert`` (``source`` as its rows) that
    adds ``added`` to the row of ``keys`` when there is one."""
    qn = connection.ops.quote_name
    table = qn(model._meta.db_table)
    insert, fields = _build_insert(model, connection, keys + added, source)
    conflict = ", ".join(qn(field.column) for field in fields[: len(keys)])
    sums = ", ".join(
        f"{qn(field.column)} = {table}.{qn(field.column)} + excluded.{qn(field.column)}"
        for field in fields[len(keys) :]
    )
    return f"{insert} ON CONFLICT ({conflict}) DO UPDATE SET {sums}", fields


def upsert_add(
    model: type[Model], connection: Any, keys: dict[str, Any], added: dict[str, Any]
) -> None:
    """Insert the row of ``keys`` with ``added``, or add ``added`` to it: one statement
    (``keys`` must be the columns of a unique constraint)."""
    shape = ("upsert_add", model, tuple(keys), tuple(added))
    sql, fields = _once(
        connection, shape, lambda: _build_upsert_add(model, connection, shape[2], shape[3])
    )
    params = _prepare(fields, {**keys, **added}, connection)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def _build_member_end(model: type[Model], connection: Any, counter: str) -> str:
    qn = connection.ops.quote_name
    c = {name: qn(_fields(model, (name,))[0].column) for name in _BATCH_COLUMNS}
    done_after = f"{c['succeeded']} + {c['failed']} + {c['cancelled']} + 1"
    failed_after = f"{c['failed']} + 1" if counter == "failed" else c["failed"]
    last = f"{c['sealed']} = %s AND {c['finished_at']} IS NULL AND {c['total']} <= {done_after}"
    final = (
        f"CASE WHEN {c['cancel_requested_at']} IS NOT NULL THEN %s "
        f"WHEN {c['allow_failures']} = %s AND {failed_after} > 0 THEN %s ELSE %s END"
    )
    return (
        f"UPDATE {qn(model._meta.db_table)} SET {c[counter]} = {c[counter]} + 1, "
        f"{c['status']} = CASE WHEN {last} THEN {final} ELSE {c['status']} END, "
        f"{c['finished_at']} = CASE WHEN {last} THEN {_batch_clock(connection)} "
        f"ELSE {c['finished_at']} END "
        f"WHERE {qn(model._meta.pk.column)} = %s RETURNING {c['finished_at']}"
    )


_BATCH_COLUMNS = (
    "succeeded",
    "failed",
    "cancelled",
    "sealed",
    "finished_at",
    "total",
    "cancel_requested_at",
    "allow_failures",
    "status",
)


def _batch_clock(connection: Any) -> str:
    """The batch's end time: the database's clock (read after the batch row is
    locked, so never before a member's stamp), else the caller's ``now``."""
    return clock_sql(connection) or "%s"


def count_member_end(
    model: type[Model], using: str, pk: Any, counter: str, statuses: dict[str, str], now: Any
) -> datetime | None:
    """Count a batch member's end in ``counter`` and, if it was the sealed batch's last
    member, finish the batch (status from ``statuses``: cancelled, failed, completed)
    in the same ``UPDATE ... RETURNING``; the batch's end time if this call finished
    it, else None.

    The old values on the right of SET are the row's before this update, so
    "the last member" is judged with this member counted.
    """
    connection = connections[using]
    sql = _once(
        connection,
        ("member_end", model, counter),
        lambda: _build_member_end(model, connection, counter),
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, _member_end_params(model, connection, pk, statuses, now))
        row = cursor.fetchone()
    return _finished_by_this(model, connection, None if row is None else row[0], now)


def _finished_by_this(model: type[Model], connection: Any, finished_at: Any, now: Any) -> Any:
    """The batch's end time, as the ORM reads it, if this member's count ended it.

    With the database's clock: once a member is counted into a finished batch, it
    was this count that ended it (a batch ends only when every member is counted).
    """
    if finished_at is None:
        return None
    if clock_sql(connection) is None and _naive_utc(finished_at) != _naive_utc(now):
        return None
    convert = _once(
        connection,
        ("read_finished", model),
        lambda: _converter(_column(model, "finished_at"), connection),
    )
    return convert(finished_at)


def _member_end_params(
    model: type[Model], connection: Any, pk: Any, statuses: dict[str, str], now: Any
) -> list[Any]:
    pk_value = model._meta.pk.get_db_prep_value(pk, connection)
    final = [statuses["cancelled"], False, statuses["failed"], statuses["completed"]]
    if clock_sql(connection) is not None:
        return [True, *final, True, pk_value]
    finished_at = _fields(model, ("finished_at",))[0].get_db_prep_value(now, connection)
    return [True, *final, True, finished_at, pk_value]


def _naive_utc(value: Any) -> Any:
    """A timestamp as naive UTC (or naive local with ``USE_TZ = False``), however the
    database returned it (SQLite: text or a naive datetime; PostgreSQL: aware)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if isinstance(value, datetime) and value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value


def insert_many(template: M, using: str, rows: list[dict[str, Any]]) -> list[M]:
    """INSERT one row per dict of ``rows`` (all with the same keys, attnames): the
    values of ``template`` (an unsaved instance: shared fields and defaults), with
    each dict's fields on top; return the saved instances, in order.

    The shared values are prepared once and only each row's own fields per row (a
    fraction of ``bulk_create``'s work, which prepares every field of every row).
    PostgreSQL gets one statement: ``INSERT ... SELECT`` of the shared values with
    the rows' own ones from ``unnest`` of one array per column; SQLite, in-process,
    one prepared statement executed per row (``executemany``).
    """
    model = type(template)
    if not rows:
        return []
    connection: Any = connections[using]
    fields = _fields(model, tuple(f.name for f in model._meta.concrete_fields))
    names = [field.attname for field in fields]
    own = [names.index(name) for name in rows[0]]
    base = [getattr(template, name) for name in names]
    own_params = [
        [fields[index].get_db_prep_save(row[name], connection) for row in rows]
        for index, name in zip(own, rows[0], strict=True)
    ]
    prepared = [
        field.get_db_prep_save(value, connection) for field, value in zip(fields, base, strict=True)
    ]
    qn = connection.ops.quote_name
    table, columns = qn(model._meta.db_table), ", ".join(qn(f.column) for f in fields)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # One array per own column, unnested into rows: a handful of parameters
            # however many rows (the arrays' element types spelled out).
            unnested = ", ".join(f"%s::{fields[i].db_type(connection)}[]" for i in own)
            picked = ", ".join(
                f"v.c{own.index(i)}" if i in own else "%s" for i in range(len(fields))
            )
            aliases = ", ".join(f"c{n}" for n in range(len(own)))
            cursor.execute(
                f"INSERT INTO {table} ({columns}) SELECT {picked} "
                f"FROM unnest({unnested}) AS v({aliases})",
                [value for i, value in enumerate(prepared) if i not in own] + own_params,
            )
        else:
            params = []
            for row_values in zip(*own_params, strict=True):
                row_params = list(prepared)
                for index, value in zip(own, row_values, strict=True):
                    row_params[index] = value
                params.append(row_params)
            placeholders = ", ".join(["%s"] * len(fields))
            cursor.executemany(f"INSERT INTO {table} ({columns}) VALUES ({placeholders})", params)
    return _saved_instances(model, using, names, base, rows)


@contextmanager
def pipelined(using: str) -> Iterator[None]:
    """Send the block's statements without waiting for each one's result (psycopg 3's
    pipeline mode), so the client prepares the next INSERT while PostgreSQL runs the
    last; a failed statement raises (as Django's error) when the block ends, still
    inside the caller's transaction. Elsewhere a plain block.

    Only for statements whose results (rows, ``rowcount``) nobody reads.
    """
    connection: Any = connections[using]
    if connection.vendor != "postgresql":
        yield
        return
    connection.ensure_connection()
    pipeline = getattr(connection.connection, "pipeline", None)  # psycopg 3, not psycopg2
    if pipeline is None or not _pipeline_supported():
        yield
        return
    with connection.wrap_database_errors, pipeline():
        yield


def _pipeline_supported() -> bool:
    import psycopg

    return bool(psycopg.Pipeline.is_supported())


def _saved_instances(
    model: type[M], using: str, names: list[str], base: list[Any], rows: list[dict[str, Any]]
) -> list[M]:
    """What ``model.from_db`` gives for each row (``base`` with the row on top), each
    with its own copy of a shared list or dict value.

    Without ``Model.__init__`` (most of ``from_db``'s time at 40 fields) when that
    makes no difference: the model keeps Django's ``__init__`` and ``from_db``, its
    fields Django's descriptors, and nothing listens to ``pre_init``/``post_init``.
    """
    mutable = [
        (name, value)
        for name, value in zip(names, base, strict=True)
        if isinstance(value, list | dict)
    ]
    if not _plain_init(model) or pre_init.has_listeners(model) or post_init.has_listeners(model):
        instances = []
        for row in rows:
            values = dict(zip(names, base, strict=True))
            values.update((name, _copied(value)) for name, value in mutable)
            values.update(row)
            instances.append(model.from_db(using, names, list(values.values())))
        return instances
    shared = dict(zip(names, base, strict=True))
    instances = []
    for row in rows:
        instance = model.__new__(model)
        state = ModelState()
        state.adding, state.db = False, using
        values = instance.__dict__
        values["_state"] = state
        values.update(shared)
        for name, value in mutable:
            values[name] = _copied(value)
        values.update(row)
        instances.append(instance)
    return instances


def _plain_init(model: type[Model]) -> bool:
    """Would ``model.from_db`` only set each field's attname in ``__dict__``?"""
    plain = (DeferredAttribute, ForeignKeyDeferredAttribute)
    return (
        model.__init__ is Model.__init__
        and getattr(model.from_db, "__func__", None) is getattr(Model.from_db, "__func__", 0)
        and all(
            type(model.__dict__.get(f.attname, getattr(model, f.attname, None))) in plain
            for f in model._meta.concrete_fields
        )
    )


def _copied(value: Any) -> Any:
    return copy.deepcopy(value) if value else type(value)()


def _build_insert(
    model: type[Model], connection: Any, names: tuple[str, ...], source: str | None = None
) -> tuple[str, tuple[AnyField, ...]]:
    """``INSERT INTO model (names) VALUES (%s, ...)``, or ``source`` instead of VALUES."""
    qn = connection.ops.quote_name
    fields = _fields(model, names)
    columns = ", ".join(qn(field.column) for field in fields)
    if source is None:
        source = f"VALUES ({', '.join(['%s'] * len(fields))})"
    return f"INSERT INTO {qn(model._meta.db_table)} ({columns}) {source}", fields


# -- the database's clock, and the dashboard's count of ended jobs --------------------


def clock_sql(connection: Any) -> str | None:
    """SQL for the time a job's end is stamped with, on backends we know, else None.

    PostgreSQL: ``clock_timestamp()``, read only after the transaction has its id (a
    ``CASE`` evaluates in order), so an end whose stamp is earlier than a moment ``T``
    has an id lower than any transaction's that began writing after ``T`` (what
    ``count_ended`` relies on). SQLite: the time read while the statement holds the
    database's one write lock, in the text form Django stores.
    """
    if connection.vendor == "postgresql":
        return "CASE WHEN pg_current_xact_id() IS NOT NULL THEN clock_timestamp() END"
    if connection.vendor == "sqlite":
        # Six digits of fraction, as Django writes a datetime, so that the stored text
        # compares with Django's parameters as the times do.
        zone = "" if settings.USE_TZ else ", 'localtime'"
        return f"(strftime('%%Y-%%m-%%d %%H:%%M:%%f', 'now'{zone}) || '000')"
    return None


def database_now(using: str) -> datetime:
    """The database's clock now (PostgreSQL: without giving the transaction an id);
    the caller's clock on other backends."""
    connection: Any = connections[using]
    if connection.vendor == "postgresql":
        sql = "SELECT clock_timestamp()"
    elif connection.vendor == "sqlite":
        sql = f"SELECT {clock_sql(connection)}"
    else:
        return timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(sql, [])  # with parameters: the %% are read as %
        value = cursor.fetchone()[0]
    convert = _once(
        connection,
        ("clock",),
        lambda: _converter(Value(None, output_field=DateTimeField()), connection),
    )
    return cast(datetime, convert(value))


class DatabaseClock(Func):
    """``clock_sql`` as an ORM expression (for the ORM's UPDATEs)."""

    output_field = DateTimeField()

    def as_sql(
        self,
        compiler: Any,
        connection: Any,
        function: str | None = None,
        template: str | None = None,
        arg_joiner: str | None = None,
        **extra: Any,
    ) -> tuple[str, tuple[Any, ...]]:
        clock = clock_sql(connection)
        if clock is None:
            raise NotSupportedError(f"no database clock on {connection.vendor}")
        return clock, ()


def _converters(expression: Any, connection: Any) -> list[Any]:
    return list(
        connection.ops.get_db_converters(expression) + expression.get_db_converters(connection)
    )


def _has_converters(expression: Any, connection: Any) -> bool:
    return bool(_converters(expression, connection))


def _converter(expression: Any, connection: Any) -> Callable[[Any], Any]:
    """Turns a value returned for ``expression`` into what the ORM would have read."""
    converters = _converters(expression, connection)

    def convert(value: Any) -> Any:
        for converter in converters:
            value = converter(value, expression, connection)
        return value

    return convert


def _column(model: type[Model], name: str) -> Any:
    return model._meta.get_field(name).get_col(model._meta.db_table)  # type: ignore[union-attr]


def _build_stamped(
    model: type[Model], connection: Any, names: tuple[str, ...], statuses: int, stamp: str
) -> tuple[str, tuple[AnyField, ...], Callable[[Any], Any]] | None:
    clock = clock_sql(connection)
    if clock is None or not _supports_returning(connection):
        return None
    update, fields = _build_update(model, connection, names, statuses)
    column = connection.ops.quote_name(_fields(model, (stamp,))[0].column)
    head, where = update.split(" WHERE ", 1)
    sql = f"{head}, {column} = {clock} WHERE {where} RETURNING {column}"
    return sql, fields, _converter(_column(model, stamp), connection)


def update_stamped(
    obj: Model,
    changes: dict[str, Any],
    stamp: str,
    *,
    status_in: Iterable[str] | None = None,
    where: Q | None = None,
) -> datetime | None:
    """``guarded_update`` that also sets the field ``stamp`` to the database's clock
    (``clock_sql``; the caller's clock on other backends); the time stamped if the
    row changed, else None. One statement (``RETURNING``) for plain values guarded
    by the status alone."""
    using = obj._state.db or "default"
    model = type(obj)
    connection: Any = connections[using]
    statuses = tuple(status_in) if status_in is not None else None
    stamped: Any = None
    if where is None and statuses is not None and plain_values(changes):
        names = tuple(changes)
        statement = _once(
            connection,
            ("stamped", model, names, len(statuses), stamp),
            lambda: _build_stamped(model, connection, names, len(statuses), stamp),
        )
        if statement is not None:
            sql, fields, convert = statement
            params = _update_params(model, connection, fields, changes, obj.pk, statuses)
            with connection.cursor() as cursor:
                cursor.execute(sql, params)
                row = cursor.fetchone()
            if row is None:
                return None
            stamped = convert(row[0])
            for name, value in changes.items():
                setattr(obj, name, value)
    if stamped is None:  # the ORM's guarded UPDATE, then the stamp read back
        clock = DatabaseClock() if clock_sql(connection) else timezone.now()
        changes = {**changes, stamp: clock}
        if not guarded_update(obj, changes, status_in=statuses, where=where):
            return None
        stamped = clock
        if isinstance(clock, DatabaseClock):
            stamped = model._base_manager.using(using).values_list(stamp, flat=True).get(pk=obj.pk)
    setattr(obj, stamp, stamped)
    return cast(datetime, stamped)


def update_stamped_and_count(
    obj: Model,
    changes: dict[str, Any],
    stamp: str,
    statuses: Iterable[str],
    batch_model: type[Model],
    batch_pk: Any,
    counter: str,
    final: dict[str, str],
    now: Any,
) -> tuple[datetime, datetime | None] | None:
    """PostgreSQL: ``update_stamped`` of a batch member (plain values, guarded by the
    status) and ``count_member_end`` of its batch in one statement (a data-modifying
    ``WITH``): atomic by itself, one round trip. None if the member did not change;
    else its stamp and, if this call finished the batch, the batch's end time."""
    connection: Any = connections[obj._state.db or "default"]
    model, statuses = type(obj), tuple(statuses)
    names = tuple(changes)

    def build() -> tuple[str, tuple[AnyField, ...], Callable[[Any], Any]]:
        built = _build_stamped(model, connection, names, len(statuses), stamp)
        if built is None or connection.vendor != "postgresql":
            raise NotSupportedError("one statement for a member's end needs PostgreSQL")
        member, fields, convert = built
        member = member.rsplit(" RETURNING ", 1)[0]
        column = connection.ops.quote_name(_fields(model, (stamp,))[0].column)
        head, where = _build_member_end(batch_model, connection, counter).split(" WHERE ", 1)
        sql = (
            f"WITH ended AS ({member} RETURNING {column} AS stamped), "
            f"counted AS ({head} FROM ended WHERE {where}) "
            "SELECT (SELECT stamped FROM ended), (SELECT * FROM counted)"
        )
        return sql, fields, convert

    sql, fields, convert = _once(
        connection, ("stamped_member", model, names, len(statuses), stamp, counter), build
    )
    params = _update_params(model, connection, fields, changes, obj.pk, statuses)
    params.extend(_member_end_params(batch_model, connection, batch_pk, final, now))
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        stamped, batch_finished_at = cursor.fetchone()
    if stamped is None:
        return None
    for name, value in changes.items():
        setattr(obj, name, value)
    setattr(obj, stamp, convert(stamped))
    return getattr(obj, stamp), _finished_by_this(batch_model, connection, batch_finished_at, now)


def run_seconds_sql(connection: Any, finished: str, started: str) -> str:
    """SQL for a run's length in seconds (never below 0; NULL if it never started)."""
    if connection.vendor == "postgresql":
        length = f"date_part('epoch', {finished} - {started})"
    elif connection.vendor == "sqlite":
        length = f"(julianday({finished}) - julianday({started})) * 86400.0"
    else:
        raise NotSupportedError("the dashboard's counts need PostgreSQL or SQLite")
    return f"(CASE WHEN {started} IS NULL THEN NULL WHEN {length} < 0 THEN 0.0 ELSE {length} END)"


def bucket_sql(seconds: str, limits: Iterable[float]) -> str:
    """SQL for the run-time bucket of ``seconds`` (``models.stats.bucket_of``): 0 if
    NULL, else the first ``b`` (from 1) with ``seconds <= limits[b - 1]``, or one past
    the last limit."""
    limits = list(limits)
    steps = " ".join(
        f"WHEN {seconds} <= {limit!r} THEN {bucket}" for bucket, limit in enumerate(limits, 1)
    )
    return f"(CASE WHEN {seconds} IS NULL THEN 0 {steps} ELSE {len(limits) + 1} END)"


def _minute_sql(connection: Any, column: str) -> str:
    if connection.vendor == "postgresql":
        return f"date_trunc('minute', {column})"
    return f"strftime('%%Y-%%m-%%d %%H:%%M:00', {column})"


def _build_count_ended(
    jobs: type[Model],
    counts: type[Model],
    connection: Any,
    outcomes: tuple[str, ...],
    limits: tuple[float, ...],
) -> str:
    qn = connection.ops.quote_name
    finished, started = qn("finished_at"), qn("started_at")
    status, task = qn("status"), qn("task_name")
    seconds = run_seconds_sql(connection, finished, started)
    ended = (
        f"SELECT {_minute_sql(connection, finished)} AS m, {task} AS t, "
        f"{bucket_sql('r', limits)} AS b, {status} AS s, r FROM (SELECT {task}, {status}, "
        f"{finished}, {seconds} AS r FROM {qn(jobs._meta.db_table)} "
        f"WHERE {status} IN ({', '.join(['%s'] * len(outcomes))}) "
        f"AND {finished} >= %s AND {finished} < %s) AS ended"
    )
    sums = ", ".join("SUM(CASE WHEN s = %s THEN 1 ELSE 0 END)" for _outcome in outcomes)
    return _build_upsert_add(
        counts,
        connection,
        ("minute", "task_name", "bucket", "shard"),
        (*outcomes, "seconds"),
        source=(
            f"SELECT m, t, b, 0, {sums}, COALESCE(SUM(r), 0.0) FROM ({ended}) AS binned "
            "WHERE true GROUP BY m, t, b ORDER BY m, t, b"  # one lock order for every folder
        ),
    )[0]


def count_ended(
    jobs: type[Model],
    counts: type[Model],
    using: str,
    start: datetime,
    end: datetime,
    outcomes: tuple[str, ...],
    limits: tuple[float, ...],
) -> None:
    """Add the jobs that ended (``outcomes``) in [start, end) to ``counts`` (shard 0),
    per minute, task and run-time bucket: one ``INSERT ... SELECT ... GROUP BY`` on the
    jobs' (status, finished_at) index that adds to the rows already there."""
    connection: Any = connections[using]
    sql = _once(
        connection,
        ("count_ended", jobs, counts, outcomes, limits),
        lambda: _build_count_ended(jobs, counts, connection, outcomes, limits),
    )
    bounds = _fields(jobs, ("finished_at",))[0]
    span = [bounds.get_db_prep_value(moment, connection) for moment in (start, end)]
    with connection.cursor() as cursor:
        # The sums' outcomes come first in the text, then the WHERE's, then the span.
        cursor.execute(sql, [*outcomes, *outcomes, *span])
