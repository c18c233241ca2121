"""The admin at a million jobs: how long the dashboard and the job changelist take,
and how many queries they make, on PostgreSQL and SQLite.

Run from the repository root (it creates, fills and at the end drops its own
databases; no cluster and no Redis are needed)::

    python bench/admin.py                                  # both databases, both shapes, 1M rows
    python bench/admin.py --db postgres --shape burst      # one database, one shape
    python bench/admin.py --rows 50000 --requests 5        # a quick run
    python bench/admin.py --db postgres --explain          # + the plan of each page's slowest query

Each database runs in its own process (Django's settings are per process):
PostgreSQL ``jobprogress_bench_admin`` (created if missing, dropped at the end
unless ``--keep-db``), SQLite a file in a temporary directory (removed at the
end). The settings are ``bench/settings.py``'s plus what the admin needs (admin,
sessions, messages, templates, middleware, ``bench.admin_urls``).

For each shape the tables are emptied and filled again by one ``INSERT ...
SELECT`` (``generate_series`` on PostgreSQL, a recursive CTE on SQLite):

* ``week``: ``--rows`` jobs whose ends are spread evenly over the last 7 days;
* ``burst``: the same jobs, all finished within the last 3 hours.

Six task names (weights 8:5:3:2:1:1 of 20, run times from ~10 ms to ~17 min), about
93 % completed, 5 % failed (with an error and a traceback), 2 % cancelled (half of
them before they started); one job in 10 is a member of one of 1,000 batches (the
10 newest still running). Then ``min(500, rows / 100)`` unfinished jobs (2/5
running, 3/5 pending, created in the last minutes; one in 10 in the open
batches). The per-minute rollup the dashboard reads (``JobMinute``) is computed
from the finished jobs by one ``INSERT ... SELECT ... GROUP BY`` as the workers
would have written it: the minute of ``finished_at``, the run-time bucket of
``models.stats.bucket_of`` (as a sum of threshold tests), shard = the worker's pid
modulo 8 (the seeded jobs ran on 13 worker pids), then folded as the recovery
sweep's ``compact`` keeps it: shard 0 for minutes older than 5 minutes, one row
per hour for hours older than 26 hours. PostgreSQL then runs
``VACUUM ANALYZE`` on the three tables; SQLite gets no ``ANALYZE`` unless
``--sqlite-analyze`` (Django never runs it).

Then a staff superuser (``force_login``) requests each page through Django's test
client: one untimed request, then ``--requests`` timed ones, each inside
``CaptureQueriesContext`` (queries per page) and an execute wrapper that times each
statement. Pages: the dashboard with ``?range=`` 1h, 6h, 24h, 7d; the job
changelist's first page, filtered by status (failed), by task (the filter
parameter the admin's task filter uses, read from its ``list_filter``), and a
search by a job's id (``?q=<uuid>``). Printed per page: p50 / p95 of the request
time, the first (untimed) request, queries per request, the time spent in SQL, the
goal (p50 <= 150 ms on PostgreSQL, <= 300 ms on SQLite) and the statements that
took most of the SQL time. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import ensure_database, run_per_database  # noqa: E402

GOAL_MS = {"postgresql": 150.0, "sqlite": 300.0}
SHAPES = {"week": 7 * 86400, "burst": 3 * 3600}  # seconds over which the jobs finished
#: (task name, weight out of 20, typical run time in seconds, queue)
TASKS = (
    ("shop.images.tasks.MakeThumbnails", 8, 0.04, ""),
    ("shop.emails.tasks.SendReceipt", 5, 0.3, ""),
    ("shop.sync.tasks.PullInventory", 3, 2.5, ""),
    ("shop.billing.tasks.ChargeCards", 2, 1.2, ""),
    ("shop.exports.tasks.ZipExport", 1, 25.0, "slow"),
    ("shop.reports.tasks.MonthlyReport", 1, 240.0, "slow"),
)
BATCHES = 1000
OPEN_BATCHES = 10  # the newest batches still have unfinished members
MEMBER_EVERY = 10  # one finished job in 10 is a batch member
WORKER_PIDS = 13  # the finished jobs ran on pids 1000..1012
SHARDS = 8
SLOWEST_SHOWN = 3


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--db",
        choices=["postgres", "sqlite", "both"],
        default="both",
        help="database; 'both' runs PostgreSQL, then SQLite, each in its own process (both)",
    )
    parser.add_argument("--rows", type=int, default=1_000_000, help="jobs (1000000)")
    parser.add_argument("--shape", choices=["week", "burst", "both"], default="both")
    parser.add_argument("--requests", type=int, default=20, help="timed requests per page (20)")
    parser.add_argument("--pg-db-name", default="jobprogress_bench_admin")
    parser.add_argument(
        "--keep-db", action="store_true", help="do not drop the PostgreSQL database at the end"
    )
    parser.add_argument(
        "--sqlite-analyze", action="store_true", help="run ANALYZE on SQLite after the fill"
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="profile one more request of each page (cProfile: the package's functions by "
        "cumulative time, all by own time)",
    )
    parser.add_argument(
        "--statements",
        action="store_true",
        help="list every statement of each page's last timed request, with its time",
    )
    parser.add_argument(
        "--explain",
        action="store_true",
        help="print the plan of each page's slowest statement (EXPLAIN ANALYZE on PostgreSQL, "
        "EXPLAIN QUERY PLAN on SQLite)",
    )
    args = parser.parse_args()
    if args.rows < 10_000:
        parser.error("--rows must be at least 10000")
    if not 1 <= args.requests <= 1000:
        parser.error("--requests must be between 1 and 1000")
    return args


# -- settings -------------------------------------------------------------------------


def configure(db: str, args: argparse.Namespace, tmpdir: Path) -> str:
    """``bench/settings.py`` + the admin's apps, middleware, templates and URLs."""
    os.environ.pop("DJANGO_SETTINGS_MODULE", None)
    os.environ["BENCH_DB"] = db
    os.environ["BENCH_ADAPTER"] = "immediate"  # nothing is enqueued; no broker needed
    os.environ["BENCH_CONN_MAX_AGE"] = "600"
    if db == "sqlite":
        os.environ["BENCH_DB_NAME"] = str(tmpdir / "admin.sqlite3")
        label = f"SQLite {os.environ['BENCH_DB_NAME']}"
    else:
        ensure_database(args.pg_db_name)
        os.environ["BENCH_DB_NAME"] = args.pg_db_name
        label = f"PostgreSQL {args.pg_db_name}"

    from django.conf import settings

    import bench.settings as base

    values = {name: getattr(base, name) for name in dir(base) if name.isupper()}
    apps = ["django.contrib.sessions", "django.contrib.messages"]
    values["INSTALLED_APPS"] = [
        "django.contrib.admin",
        *values["INSTALLED_APPS"],
        *(app for app in apps if app not in values["INSTALLED_APPS"]),
    ]
    values.update(
        ROOT_URLCONF="bench.admin_urls",
        ALLOWED_HOSTS=["testserver"],
        STATIC_URL="/static/",
        MIDDLEWARE=[
            "django.contrib.sessions.middleware.SessionMiddleware",
            "django.middleware.common.CommonMiddleware",
            "django.middleware.csrf.CsrfViewMiddleware",
            "django.contrib.auth.middleware.AuthenticationMiddleware",
            "django.contrib.messages.middleware.MessageMiddleware",
        ],
        TEMPLATES=[
            {
                "BACKEND": "django.template.backends.django.DjangoTemplates",
                "APP_DIRS": True,
                "OPTIONS": {
                    "context_processors": [
                        "django.template.context_processors.request",
                        "django.contrib.auth.context_processors.auth",
                        "django.contrib.messages.context_processors.messages",
                    ]
                },
            }
        ],
    )
    settings.configure(**values)
    return label


def setup() -> str:
    import django
    from django.core.management import call_command
    from django.db import connection

    django.setup()
    call_command("migrate", verbosity=0)
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute("SELECT sqlite_version()")
            return f"SQLite {cursor.fetchone()[0]}"
        cursor.execute("SHOW server_version")
        return f"PostgreSQL {cursor.fetchone()[0]}"


# -- the fill ---------------------------------------------------------------------------


def _case(column: str, values: list[str]) -> str:
    """``CASE`` over the task slot (g % 20) by the tasks' weights."""
    parts, upto = [], 0
    for (_name, weight, _seconds, _queue), value in zip(TASKS, values, strict=True):
        upto += weight
        parts.append(f"WHEN {column} < {upto} THEN {value}")
    return "CASE " + " ".join(parts) + " END"


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


class Vendor:
    """The SQL fragments that differ between PostgreSQL and SQLite."""

    def __init__(self, vendor: str) -> None:
        self.pg = vendor == "postgresql"

    def at(self, seconds_ago: str) -> str:
        """A timestamp ``seconds_ago`` seconds before now (NULL stays NULL)."""
        if self.pg:
            return f"(now() - ({seconds_ago}) * interval '1 second')"
        # Django's SQLite text for a datetime in UTC: 'YYYY-MM-DD HH:MM:SS.fff'.
        return f"strftime('%%Y-%%m-%%d %%H:%%M:%%f', julianday('now') - ({seconds_ago}) / 86400.0)"

    def batch_id(self, index: str) -> str:
        """The id of batch number ``index`` (as ``batch_uuid`` makes it)."""
        if self.pg:
            return f"('bbbbbbbb' || lpad(to_hex({index}), 24, '0'))::uuid"
        return f"printf('bbbbbbbb%%024x', {index})"

    def new_uuid(self) -> str:
        return "gen_random_uuid()" if self.pg else "lower(hex(randomblob(16)))"

    def json_rows(self, value: str) -> str:
        return (
            f"jsonb_build_object('rows', {value})" if self.pg else f"json_object('rows', {value})"
        )

    def run_seconds(self, finished: str, started: str) -> str:
        if self.pg:
            return f"EXTRACT(EPOCH FROM {finished} - {started})"
        return f"((julianday({finished}) - julianday({started})) * 86400.0)"

    def minute(self, column: str) -> str:
        if self.pg:
            return f"date_trunc('minute', {column})"
        return f"strftime('%%Y-%%m-%%d %%H:%%M:00', {column})"

    def hour(self, column: str) -> str:
        if self.pg:
            return f"date_trunc('hour', {column})"
        return f"strftime('%%Y-%%m-%%d %%H:00:00', {column})"


def batch_uuid(index: int) -> uuid.UUID:
    return uuid.UUID(f"bbbbbbbb{index:024x}")


def insert_select(model, columns: dict[str, str], connection) -> tuple[str, str, list]:
    """The column list and the SELECT list of an ``INSERT ... SELECT`` into ``model``:
    ``columns`` (column -> SQL) where given, NULL for other nullable columns, and the
    field's default (as a parameter) for the rest, so columns added later get a value."""
    names, exprs, params = [], [], []
    for field in model._meta.concrete_fields:
        names.append(connection.ops.quote_name(field.column))
        if field.column in columns:
            exprs.append(columns[field.column])
        elif field.null:
            exprs.append("NULL")
        else:
            exprs.append("%s")
            params.append(field.get_db_prep_save(field.get_default(), connection))
    unknown = set(columns) - {f.column for f in model._meta.concrete_fields}
    if unknown:
        raise RuntimeError(f"{model.__name__} has no column {sorted(unknown)}")
    return ", ".join(names), ", ".join(exprs), params


def fill_finished(finished: int, window: int) -> None:
    """``finished`` finished jobs ending evenly over the last ``window`` seconds (job g
    ends (g - 1) * window / finished seconds ago), by one statement."""
    from django.db import connection

    from django_jobprogress.models import JobRecord

    v = Vendor(connection.vendor)
    per_job = window / finished
    task = _case("g %% 20", [_quote(name) for name, *_ in TASKS])
    base_seconds = _case("g %% 20", [repr(seconds) for _n, _w, seconds, _q in TASKS])
    queue = _case("g %% 20", [_quote(q) for *_rest, q in TASKS])
    # ~5.2 % failed, ~1 % cancelled before starting, ~1 % cancelled while running.
    status = (
        "CASE WHEN g %% 97 < 5 THEN 'failed' WHEN g %% 97 IN (5, 6) THEN 'cancelled' "
        "ELSE 'completed' END"
    )
    inner = f"""
        SELECT g, task, queue, status, run_s, fin_ago,
               CASE WHEN g %% 97 = 5 THEN NULL ELSE fin_ago + run_s END AS start_ago,
               fin_ago + run_s + (g %% 30) + 1 AS created_ago
        FROM (
            SELECT g, {task} AS task, {queue} AS queue, {status} AS status,
                   {base_seconds} * (0.25 + (g %% 41) / 10.0) AS run_s,
                   (g - 1) * {per_job!r} AS fin_ago
            FROM series
        ) AS x
    """
    started = "start_ago IS NOT NULL"
    traceback = (
        "Traceback (most recent call last):\n"
        '  File "shop/sync/tasks.py", line 42, in run\n'
        "    response.raise_for_status()\n"
        "RuntimeError: upstream returned 503"
    )
    columns = {
        "id": v.new_uuid(),
        "task_name": "task",
        "status": "status",
        "progress": "CASE WHEN status = 'completed' THEN 1.0 ELSE (g %% 90) / 100.0 END",
        "result": f"CASE WHEN status = 'completed' THEN {v.json_rows('g')} ELSE NULL END",
        "error": "CASE WHEN status = 'failed' THEN 'RuntimeError: upstream returned 503 "
        "for item ' || g ELSE '' END",
        "traceback": f"CASE WHEN status = 'failed' THEN {_quote(traceback)} ELSE '' END",
        "batch_id": f"CASE WHEN g %% {MEMBER_EVERY} = 0 THEN "
        f"{v.batch_id(f'((g - 1) * {BATCHES}) / {finished}')} ELSE NULL END",
        "queue": "queue",
        "attempts": f"CASE WHEN {started} THEN 1 ELSE 0 END",
        "created_at": v.at("created_ago"),
        "handed_off_at": v.at("created_ago"),
        "started_at": v.at("start_ago"),
        "finished_at": v.at("fin_ago"),
        "heartbeat_at": v.at(f"CASE WHEN {started} THEN fin_ago ELSE NULL END"),
        "progress_at": v.at(f"CASE WHEN {started} THEN fin_ago ELSE NULL END"),
        "cancel_requested_at": v.at("CASE WHEN status = 'cancelled' THEN fin_ago + 1 END"),
        "worker_host": f"CASE WHEN {started} THEN 'worker-' || (g %% 4) ELSE '' END",
        "worker_pid": f"CASE WHEN {started} THEN 1000 + g %% {WORKER_PIDS} ELSE NULL END",
    }
    names, exprs, params = insert_select(JobRecord, columns, connection)
    table = connection.ops.quote_name(JobRecord._meta.db_table)
    if v.pg:
        inner = inner.replace("FROM series", "FROM generate_series(1, %s::bigint) AS series(g)")
        sql = f"INSERT INTO {table} ({names}) SELECT {exprs} FROM ({inner}) AS j"
        params = [*params, finished]
    else:
        sql = (
            "WITH RECURSIVE series(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM series "
            f"WHERE g < %s) INSERT INTO {table} ({names}) SELECT {exprs} FROM ({inner}) AS j"
        )
        params = [finished, *params]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def fill_unfinished(n: int) -> None:
    """``n`` unfinished jobs: 2/5 running, 3/5 pending, created in the last minutes;
    one in 10 a member of the open batches."""
    from datetime import timedelta

    from django.utils import timezone

    from django_jobprogress.models import JobRecord

    now = timezone.now()
    slots = [name for name, weight, *_ in TASKS for _ in range(weight)]
    running = n * 2 // 5
    rows = []
    for i in range(n):
        batch = batch_uuid(i % OPEN_BATCHES) if i % MEMBER_EVERY == 0 else None
        task = slots[i % len(slots)]
        if i < running:
            began = now - timedelta(seconds=5 + i)
            rows.append(
                JobRecord(
                    task_name=task,
                    status=JobRecord.Status.RUNNING,
                    batch_id=batch,
                    created_at=began - timedelta(seconds=2),
                    handed_off_at=began - timedelta(seconds=2),
                    started_at=began,
                    heartbeat_at=now,
                    progress_at=now,
                    stale_after=now + timedelta(minutes=5),
                    progress=(i % 97) / 100,
                    current=i % 97,
                    total=100,
                    stage="working",
                    message=f"item {i % 97} of 100",
                    attempts=1,
                    worker_host=f"worker-{i % 4}",
                    worker_pid=2000 + i % WORKER_PIDS,
                )
            )
        else:
            created = now - timedelta(seconds=(i - running) * 0.5)
            rows.append(
                JobRecord(
                    task_name=task,
                    status=JobRecord.Status.PENDING,
                    batch_id=batch,
                    created_at=created,
                    handed_off_at=created,
                )
            )
    JobRecord.objects.bulk_create(rows, batch_size=500)


def fill_batches() -> None:
    """The 1,000 batches (before their members); their counters come after."""
    from django.utils import timezone

    from django_jobprogress.models import Batch

    now = timezone.now()
    Batch.objects.bulk_create(
        [
            Batch(
                id=batch_uuid(i),
                name=f"nightly import {BATCHES - i}",
                status=Batch.Status.RUNNING if i < OPEN_BATCHES else Batch.Status.COMPLETED,
                sealed=True,
                allow_failures=True,
                created_at=now,
                finished_at=None if i < OPEN_BATCHES else now,
            )
            for i in range(BATCHES)
        ],
        batch_size=500,
    )


def batch_counters() -> None:
    """Each batch's counters, created_at and finished_at from its members: one GROUP BY
    of the members joined to the batches (UPDATE ... FROM: PostgreSQL, SQLite 3.33+)."""
    from django.db import connection

    from django_jobprogress.models import Batch, JobRecord

    qn = connection.ops.quote_name
    batch, job = qn(Batch._meta.db_table), qn(JobRecord._meta.db_table)
    counted = "SUM(CASE WHEN status = '{0}' THEN 1 ELSE 0 END) AS {0}"
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            UPDATE {batch} SET
                total = m.total, succeeded = m.completed, failed = m.failed,
                cancelled = m.cancelled, created_at = m.first_created,
                finished_at = CASE WHEN {batch}.status = 'completed' THEN m.last_finished END
            FROM (
                SELECT batch_id, COUNT(*) AS total, {counted.format("completed")},
                       {counted.format("failed")}, {counted.format("cancelled")},
                       MIN(created_at) AS first_created, MAX(finished_at) AS last_finished
                FROM {job} WHERE batch_id IS NOT NULL GROUP BY batch_id
            ) AS m
            WHERE {batch}.id = m.batch_id
            """,
            [],
        )


def fill_rollup() -> None:
    """``JobMinute`` from the finished jobs, as their ends would have written it and
    the sweep would have folded it (``compact``): minutes older than
    ``FOLD_SHARDS_AFTER`` in shard 0, hours older than ``COMPACT_AFTER`` in hour rows."""
    from django.db import connection
    from django.utils import timezone

    from django_jobprogress.models import JobMinute, JobRecord
    from django_jobprogress.models.stats import (
        BUCKETS,
        COMPACT_AFTER,
        FIRST_LIMIT,
        FOLD_SHARDS_AFTER,
        HOURLY,
    )

    v = Vendor(connection.vendor)
    qn = connection.ops.quote_name
    # bucket_of(): 0 without a start, else 1 + the number of limits 10 ms * 2**k
    # (k = 0 .. BUCKETS - 2) the run time is above.
    steps = " + ".join(
        f"CASE WHEN run_s > {FIRST_LIMIT * 2**k!r} THEN 1 ELSE 0 END" for k in range(BUCKETS - 1)
    )
    outcome = "SUM(CASE WHEN status = '{0}' THEN 1 ELSE 0 END)"
    job = JobRecord._meta.db_table
    sql = f"""
        INSERT INTO {qn(JobMinute._meta.db_table)}
            (minute, task_name, bucket, shard, completed, failed, cancelled, seconds)
        SELECT minute, task_name, bucket, shard, {outcome.format("completed")},
               {outcome.format("failed")}, {outcome.format("cancelled")},
               SUM(COALESCE(run_s, 0))
        FROM (
            SELECT minute, task_name, status, run_s, shard,
                   CASE WHEN run_s IS NULL THEN 0 ELSE 1 + {steps} END AS bucket
            FROM (
                SELECT CASE WHEN finished_at < %s THEN {v.hour("finished_at")}
                            ELSE {v.minute("finished_at")} END AS minute,
                       task_name, status,
                       {v.run_seconds("finished_at", "started_at")} AS run_s,
                       CASE WHEN finished_at < %s THEN {HOURLY}
                            WHEN finished_at < %s THEN 0
                            ELSE COALESCE(worker_pid, 0) %% {SHARDS} END AS shard
                FROM {qn(job)} WHERE finished_at IS NOT NULL
            ) AS ends
        ) AS counted
        GROUP BY minute, task_name, bucket, shard
    """
    now = timezone.now()
    hours_before = (now - COMPACT_AFTER).replace(minute=0, second=0, microsecond=0)
    shards_before = (now - FOLD_SHARDS_AFTER).replace(second=0, microsecond=0)
    moments = [connection.ops.adapt_datetimefield_value(m) for m in (hours_before,) * 2]
    moments.append(connection.ops.adapt_datetimefield_value(shards_before))
    with connection.cursor() as cursor:
        cursor.execute(sql, moments)
    # Every seeded end is counted: the sweep's next count starts after the last one.
    from datetime import timedelta

    from django.db.models import Max

    from django_jobprogress.models import EndsCounted

    last = JobRecord.objects.aggregate(last=Max("finished_at"))["last"] or now
    before = max(now, last + timedelta(microseconds=1))
    EndsCounted.objects.update_or_create(pk=1, defaults={"before": before})


def empty_tables() -> None:
    from django.db import connection

    from django_jobprogress.models import Batch, EndsCounted, JobMinute, JobRecord

    tables = [m._meta.db_table for m in (JobRecord, Batch, JobMinute, EndsCounted)]
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            for table in tables:
                cursor.execute(f"DELETE FROM {connection.ops.quote_name(table)}")
        else:
            cursor.execute("TRUNCATE " + ", ".join(connection.ops.quote_name(t) for t in tables))


def fill(rows: int, shape: str, analyze: bool) -> dict:
    """Empty the tables and fill them for ``shape``; return what is there."""
    from django.db import connection, transaction
    from django.db.models import Count, Sum

    from django_jobprogress.models import Batch, JobMinute, JobRecord

    started = time.perf_counter()
    unfinished = min(500, rows // 100)
    with transaction.atomic():
        empty_tables()
        fill_batches()
        fill_finished(rows - unfinished, SHAPES[shape])
        fill_unfinished(unfinished)
        batch_counters()
        fill_rollup()
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            for model in (JobRecord, Batch, JobMinute):
                cursor.execute(f"VACUUM ANALYZE {connection.ops.quote_name(model._meta.db_table)}")
    elif analyze:
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
    seconds = time.perf_counter() - started
    by_status = dict(
        JobRecord.objects.values_list("status").annotate(n=Count("pk")).order_by("status")
    )
    rolled = JobMinute.objects.aggregate(
        completed=Sum("completed"), failed=Sum("failed"), cancelled=Sum("cancelled")
    )
    return {
        "seconds": seconds,
        "by_status": by_status,
        "rollup_rows": JobMinute.objects.count(),
        "rollup_ends": sum(rolled.values()),
        "members": JobRecord.objects.exclude(batch=None).count(),
        "batches": Batch.objects.count(),
    }


# -- the pages --------------------------------------------------------------------------


class StatementTimer:
    """Every statement of one request: (SQL, parameters, seconds)."""

    def __init__(self) -> None:
        self.statements: list[tuple[str, tuple, float]] = []

    def __call__(self, execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            self.statements.append((sql, tuple(params or ()), time.perf_counter() - started))


def task_filter_parameter() -> str:
    """The query parameter the job changelist filters a task by, from its list_filter."""
    from django.contrib import admin

    from django_jobprogress.models import JobRecord

    for item in admin.site._registry[JobRecord].list_filter:
        field = item[0] if isinstance(item, tuple) else item
        if isinstance(field, str):
            if field.split("__")[0] == "task_name":
                return "task_name__exact" if field == "task_name" else field
        elif "task" in str(getattr(field, "parameter_name", "")):
            return field.parameter_name
    raise RuntimeError("the JobRecord admin has no task filter in its list_filter")


def pages(task: str, job_id: uuid.UUID) -> list[tuple[str, str, dict, object]]:
    """(label, url, query, check): check(response) says what the page showed."""
    from django.urls import reverse

    dashboard = reverse("admin:jobprogress_dashboard")
    changelist = reverse("admin:django_jobprogress_jobrecord_changelist")
    task_param = task_filter_parameter()

    def shown(predicate=None, expect=None):
        def check(response) -> str:
            context = getattr(response, "context_data", None) or {}
            cl = context.get("cl")
            if cl is None:
                return "no changelist in the response"
            rows = list(cl.result_list)
            ok = all(predicate(r) for r in rows) if predicate else True
            if expect is not None:
                ok = ok and [r.pk for r in rows] == expect
            count = getattr(cl.paginator, "shown_count", None) or cl.result_count
            return f"{len(rows)} rows shown of {count}{'' if ok else ', WRONG ROWS'}"

        return check

    def dashboard_check(response) -> str:
        return f"{len(response.content) // 1024} KiB"

    return [
        *(
            (f"dashboard ?range={r}", dashboard, {"range": r}, dashboard_check)
            for r in ("1h", "6h", "24h", "7d")
        ),
        ("changelist, first page", changelist, {}, shown()),
        (
            "changelist ?status__exact=failed",
            changelist,
            {"status__exact": "failed"},
            shown(lambda r: r.status == "failed"),
        ),
        (
            f"changelist ?{task_param}=<{task.rsplit('.', 1)[-1]}>",
            changelist,
            {task_param: task},
            shown(lambda r: r.task_name == task),
        ),
        ("changelist ?q=<a job's id>", changelist, {"q": str(job_id)}, shown(expect=[job_id])),
    ]


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def time_page(client, url: str, query: dict, requests: int, check) -> dict:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    started = time.perf_counter()
    response = client.get(url, query)
    first = time.perf_counter() - started
    if response.status_code != 200:
        raise RuntimeError(f"GET {url} {query}: HTTP {response.status_code}")
    shown = check(response)
    times, counts, sql_seconds = [], [], []
    per_statement: dict[str, list[float]] = {}
    slowest: tuple[float, str, tuple] = (0.0, "", ())
    for _ in range(requests):
        timer = StatementTimer()
        with CaptureQueriesContext(connection) as queries, connection.execute_wrapper(timer):
            started = time.perf_counter()
            response = client.get(url, query)
            times.append(time.perf_counter() - started)
        if response.status_code != 200:
            raise RuntimeError(f"GET {url} {query}: HTTP {response.status_code}")
        counts.append(len(queries.captured_queries))
        sql_seconds.append(sum(s for _sql, _p, s in timer.statements))
        this_request: dict[str, float] = {}
        for sql, params, seconds in timer.statements:
            this_request[sql] = this_request.get(sql, 0.0) + seconds
            if seconds > slowest[0]:
                slowest = (seconds, sql, params)
        for sql, seconds in this_request.items():
            per_statement.setdefault(sql, []).append(seconds)
    medians = [(statistics.median(s), sql) for sql, s in per_statement.items()]
    top = sorted(medians, reverse=True)[:SLOWEST_SHOWN]
    return {
        "p50": statistics.median(times) * 1000,
        "p95": percentile(times, 0.95) * 1000,
        "first": first * 1000,
        "queries": statistics.median(counts),
        "queries_range": (min(counts), max(counts)),
        "sql_p50": statistics.median(sql_seconds) * 1000,
        "top": top,
        "slowest": slowest,
        "shown": shown,
        "last": timer.statements,
    }


def explain(sql: str, params: tuple) -> list[str]:
    from django.db import connection

    prefix = "EXPLAIN (ANALYZE, BUFFERS) " if connection.vendor == "postgresql" else ""
    prefix = prefix or "EXPLAIN QUERY PLAN "
    with connection.cursor() as cursor:
        cursor.execute(prefix + sql, params)
        rows = cursor.fetchall()
    if connection.vendor == "postgresql":
        return [row[0] for row in rows]
    depth: dict[int, int] = {}  # SQLite's rows: (id, parent, notused, detail)
    lines = []
    for node, parent, _notused, detail in rows:
        depth[node] = depth.get(parent, -1) + 1
        lines.append("  " * depth[node] + str(detail))
    return lines


def profile(client, url: str, query: dict, shown: int = 12) -> list[str]:
    """Where one request spent its time (cProfile): the package's functions by
    cumulative time, and all functions by their own time."""
    import cProfile
    import io
    import pstats

    profiler = cProfile.Profile()
    profiler.enable()
    client.get(url, query)
    profiler.disable()
    lines = ["profile of one request (cProfile):"]
    for order, restriction in (("cumulative", "django_jobprogress"), ("tottime", "")):
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out).sort_stats(order)
        stats.print_stats(*(r for r in (restriction,) if r), shown)
        text = out.getvalue().splitlines()
        start = next((i for i, line in enumerate(text) if "ncalls" in line), 0)
        where = f"in {restriction}, " if restriction else ""
        lines.append(f"{where}by {order} time:")
        lines += [line.replace(str(ROOT) + "/", "") for line in text[start:] if line.strip()]
    return lines


def short_sql(sql: str, width: int = 150) -> str:
    text = " ".join(sql.split())
    return text if len(text) <= width else text[: width - 3] + "..."


def run_pages(args: argparse.Namespace, goal: float) -> list[tuple[str, dict]]:
    from django.contrib.auth import get_user_model
    from django.test import Client

    from django_jobprogress.models import JobRecord

    User = get_user_model()
    user = User.objects.filter(username="bench-admin").first()
    if user is None:
        user = User.objects.create_superuser("bench-admin", "bench@example.com", None)
    client = Client()
    client.force_login(user)

    task = TASKS[2][0]  # 15 % of the jobs
    failed = JobRecord.objects.filter(status="failed").order_by("-created_at")
    job_id = failed.values_list("pk", flat=True)[failed.count() // 2]

    print(
        f"    {'page':<44} {'p50 ms':>8} {'p95 ms':>8} {'first':>8} {'queries':>8} "
        f"{'SQL p50':>8}  goal p50 <= {goal:g} ms"
    )
    results = []
    for label, url, query, check in pages(task, job_id):
        r = time_page(client, url, query, args.requests, check)
        results.append((label, r))
        low, high = r["queries_range"]
        queries = f"{r['queries']:g}" if low == high else f"{low}-{high}"
        verdict = "ok" if r["p50"] <= goal else "OVER"
        print(
            f"    {label:<44} {r['p50']:8.1f} {r['p95']:8.1f} {r['first']:8.1f} {queries:>8} "
            f"{r['sql_p50']:8.1f}  {verdict}   ({r['shown']})",
            flush=True,
        )
        for seconds, sql in r["top"]:
            print(f"        {seconds * 1000:7.2f} ms  {short_sql(sql)}")
        if args.statements:
            print("        every statement of the last request:")
            for sql, _params, seconds in r["last"]:
                print(f"        {seconds * 1000:7.2f} ms  {short_sql(sql, 110)}")
        if args.profile:
            for line in profile(client, url, query):
                print(f"        {line}")
        if args.explain and r["slowest"][1]:
            seconds, sql, params = r["slowest"]
            print(f"        plan of the slowest statement ({seconds * 1000:.1f} ms):")
            for line in explain(sql, params):
                print(f"          {line}")
    return results


# -- one database -----------------------------------------------------------------------


def drop_database(name: str) -> None:
    import psycopg
    from django.db import connections
    from psycopg import sql

    connections.close_all()
    with psycopg.connect(
        dbname="postgres",
        user=os.environ.get("PGUSER", "postgres"),
        host=os.environ.get("PGHOST", "127.0.0.1"),
        port=os.environ.get("PGPORT", "5432"),
        autocommit=True,
    ) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
    print(f"  dropped database {name}")


def run_child(db: str, args: argparse.Namespace) -> int:
    tmpdir = Path(tempfile.mkdtemp(prefix="jobprogress-bench-admin-"))
    try:
        label = configure(db, args, tmpdir)
        version = setup()
        from django.db import connection

        goal = GOAL_MS[connection.vendor]
        shapes = ["week", "burst"] if args.shape == "both" else [args.shape]
        for shape in shapes:
            seeded = fill(args.rows, shape, args.sqlite_analyze)
            statuses = ", ".join(f"{s} {n:,}" for s, n in seeded["by_status"].items())
            print(
                f"\n{label} ({version}), shape {shape}: {sum(seeded['by_status'].values()):,} "
                f"jobs ({statuses}), {seeded['members']:,} in {seeded['batches']:,} batches; "
                f"{seeded['rollup_rows']:,} JobMinute rows holding {seeded['rollup_ends']:,} "
                f"ends; filled in {seeded['seconds']:.1f} s"
                + ("; ANALYZEd" if args.sqlite_analyze and db == "sqlite" else ""),
                flush=True,
            )
            run_pages(args, goal)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
        if db == "postgres" and not args.keep_db:
            try:
                drop_database(args.pg_db_name)
            except Exception as exc:  # shown, not hidden: the database is left behind
                print(f"  could not drop {args.pg_db_name}: {exc}")
    return 0


def main() -> int:
    args = parse_args()
    if args.db == "both":
        return run_per_database(["postgres", "sqlite"])
    return run_child(args.db, args)


def _terminate(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds through run_child's finally: cleans up


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _terminate)
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("\ninterrupted")
        sys.exit(130)
