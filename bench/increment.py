"""Cost of ``progress.increment()`` and the writes it makes under the default throttle.

Run from the repository root::

    .venv/bin/python bench/increment.py                  # SQLite, then PostgreSQL
    .venv/bin/python bench/increment.py --db sqlite      # one database only
    .venv/bin/python bench/increment.py --n 200000

One job (``bench.tasks.Count``) calls ``self.progress.increment()`` ``n`` times
and is run in this process by the ``ImmediateQueue`` adapter, through the same
``run_job`` wrapper (claim, ticker thread, completion) a worker uses. Every SQL
statement of every connection (the task's thread and the ticker thread's) is
counted with an execute wrapper installed on each connection as it is created.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import run_per_database  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--db",
        nargs="+",
        choices=["sqlite", "postgres"],
        default=["sqlite", "postgres"],
        help="databases to run on, each in its own process (default: both)",
    )
    parser.add_argument("--n", type=int, default=1_000_000, help="increment() calls (1000000)")
    parser.add_argument(
        "--baseline-repeats",
        type=int,
        default=5,
        help="runs of the bare loop; the median is subtracted (default 5)",
    )
    parser.add_argument(
        "--pause-every",
        type=int,
        default=0,
        metavar="K",
        help="sleep --pause seconds after every K calls (default 0: no pauses), to exercise "
        "the ticker's trailing writes over a longer run; sleeps are not counted as call time",
    )
    parser.add_argument("--pause", type=float, default=0.25, help="seconds per pause (0.25)")
    parser.add_argument(
        "--pg-db-name", default="jobprogress_bench", help="PostgreSQL database (created if missing)"
    )
    return parser.parse_args()


class SQLCounter:
    """Counts the statements of every connection, by thread and by kind."""

    def __init__(self, table: str) -> None:
        self.table = table
        self.lock = threading.Lock()
        self.counts: Counter[tuple[str, str]] = Counter()
        self.enabled = False

    def __call__(self, execute, sql, params, many, context):
        if self.enabled:
            head = sql.lstrip()[:6].upper()
            kind = head if head in ("UPDATE", "INSERT", "SELECT", "DELETE") else "other"
            if self.table in sql:
                kind += " jobrecord"
            with self.lock:
                self.counts[(threading.current_thread().name, kind)] += 1
        return execute(sql, params, many, context)

    def install(self, connection) -> None:
        if self not in connection.execute_wrappers:
            connection.execute_wrappers.append(self)

    def on_connection_created(self, sender, connection, **kwargs) -> None:
        self.install(connection)

    def total(self, kind: str) -> int:
        return sum(c for (_thread, k), c in self.counts.items() if k == kind)


class CallCounter:
    """Counts the calls of ``JobRecord`` transition methods, by thread."""

    METHODS = ("save_progress", "beat", "complete", "fail_attempt")
    MANAGER_METHODS = ("claim",)  # run_job claims through JobRecord.objects

    def __init__(self) -> None:
        self.counts: Counter[tuple[str, str]] = Counter()
        self.lock = threading.Lock()

    def patch(self, model) -> None:
        self._patch(model, self.METHODS)
        self._patch(type(model.objects), self.MANAGER_METHODS)

    def _patch(self, owner, names) -> None:
        for name in names:
            original = getattr(owner, name)

            def wrapper(*args, _original=original, _name=name, **kwargs):
                with self.lock:
                    self.counts[(threading.current_thread().name, _name)] += 1
                return _original(*args, **kwargs)

            setattr(owner, name, wrapper)


def run_child(db: str, args: argparse.Namespace) -> None:
    """Measure on one database (Django can be set up once per process)."""
    tmpdir = Path(tempfile.mkdtemp(prefix="jobprogress-bench-inc-"))
    try:
        os.environ["DJANGO_SETTINGS_MODULE"] = "bench.settings"
        os.environ["BENCH_DB"] = db
        os.environ["BENCH_ADAPTER"] = "immediate"
        if db == "sqlite":
            os.environ["BENCH_DB_NAME"] = str(tmpdir / "bench.sqlite3")
        else:
            from bench.common import ensure_database

            ensure_database(args.pg_db_name)
            os.environ["BENCH_DB_NAME"] = args.pg_db_name
        measure(db, args)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


def measure(db: str, args: argparse.Namespace) -> None:
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)

    from django.db import connection
    from django.db.backends.signals import connection_created

    from bench.tasks import Count, bare_count, call_count
    from django_jobprogress import conf
    from django_jobprogress.models import JobRecord

    JobRecord.objects.all().delete()
    n = args.n
    throttle = conf.get("THROTTLE")

    sql = SQLCounter(JobRecord._meta.db_table)
    connection_created.connect(sql.on_connection_created)
    sql.install(connection)  # the main thread's connection, already open after migrate
    calls = CallCounter()
    calls.patch(JobRecord)

    # Baselines: the same loop shape without the handle.
    bare = statistics.median(bare_count(n)[0] for _ in range(args.baseline_repeats))
    empty_call = statistics.median(call_count(n) for _ in range(args.baseline_repeats))

    sql.enabled = True
    started = time.perf_counter()
    # ImmediateQueue: the job runs here, in run_job, as soon as its row is committed.
    record = Count.enqueue(n, args.pause_every, args.pause)
    wall = time.perf_counter() - started
    time.sleep(max(3 * throttle, 0.3))  # let the ticker make any trailing write it would
    sql.enabled = False

    record.refresh_from_db()
    handle = Count.last_handle
    if record.status != JobRecord.Status.COMPLETED:
        print(f"  job ended {record.status}: {record.error}")
        return
    loop = record.result["loop_seconds"]
    run_time = (record.finished_at - record.started_at).total_seconds()
    updates = sql.total("UPDATE jobrecord")
    bound = run_time / throttle + 3 if throttle > 0 else float("inf")
    per_call = (loop - bare) / n * 1e6

    pauses = f", a {args.pause:g} s pause every {args.pause_every:,}" if args.pause_every else ""
    print(f"\n{db}: {n:,} increment() calls in one job{pauses}, THROTTLE={throttle:g} s")
    print(f"  increment() loop          {loop:8.3f} s  = {loop / n * 1e6:6.3f} us/call")
    print(f"  bare loop (x += 1)        {bare:8.3f} s  = {bare / n * 1e6:6.3f} us/iteration")
    print(f"  empty method-call loop    {empty_call:8.3f} s  = {empty_call / n * 1e6:6.3f} us/call")
    print(f"  => increment() above the bare loop:        {per_call:6.3f} us/call  (target < 2)")
    above_call = (loop - empty_call) / n * 1e6
    print(f"  => increment() above an empty method call: {above_call:6.3f} us/call")
    print(
        f"  total run: {wall:.3f} s wall (enqueue -> completed), "
        f"{run_time:.3f} s run_time (started_at -> finished_at)"
    )
    print(
        f"  UPDATEs of the job row: {updates} (all threads, claim to completion)  "
        f"bound run_time/THROTTLE + 3 = {bound:.1f}  ->  "
        f"{'within' if updates <= bound else 'ABOVE'} the bound"
    )
    print(f"  handle.writes counter: {handle.writes} (progress writes + the final transition)")
    print("  statements by thread:")
    for (thread, kind), count in sorted(sql.counts.items()):
        print(f"    {thread:<20} {kind:<18} {count}")
    print("  JobRecord method calls by thread:")
    for (thread, name), count in sorted(calls.counts.items()):
        print(f"    {thread:<20} {name:<18} {count}")
    JobRecord.objects.all().delete()


def main() -> int:
    args = parse_args()
    if len(args.db) == 1:
        run_child(args.db[0], args)
        return 0
    return run_per_database(args.db)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
