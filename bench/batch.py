"""Per-job bookkeeping cost of batches, and the delay from the last member to the callback.

Run from the repository root::

    .venv/bin/python bench/batch.py                       # SQLite, then PostgreSQL
    .venv/bin/python bench/batch.py --db postgres --rounds 5
    .venv/bin/python bench/batch.py --sync on             # durable commits (server defaults)
    .venv/bin/python bench/batch.py --via run_job         # finish through the worker wrapper

For each size N (1,000 and 10,000), in this process and without a cluster:
enqueue N no-op jobs plainly and N into one batch, then finish them all (claim
+ ``complete()`` through the model methods, or ``run_job(id)`` with ``--via
run_job``). Every call is timed on its own, and every SQL statement is timed
by an execute wrapper, so the statements on the batch row are measured
separately from the rest. A member costs one UPDATE of the batch row in the
transaction of its insert, and two (count it, try to finish the batch) in the
transaction of its final transition: the per-job cost must not grow with N,
so the 10,000/1,000 ratios should be ~1. The last member's transition finishes
the batch and enqueues its two callbacks in the same transaction; the delay to
the callbacks is read from the rows (callback ``created_at`` - member
``finished_at``) and from the clock around that last call.

Jobs are queued by an in-memory adapter (nothing runs them) and nothing is
pushed (in-process channel layer): only the database bookkeeping is measured.
By default commits do not wait for the disk (``--sync off``: PostgreSQL
``synchronous_commit=off``, SQLite ``PRAGMA synchronous=OFF``): both variants
make one commit per enqueue and per final transition, and a flush per commit
(~1-5 ms on a shared VM disk) would only add the same noise to both.
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
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import run_per_database  # noqa: E402
from django_jobprogress.adapters.queue_memory import InMemoryQueue  # noqa: E402

DEFAULT_PG_DB = "jobprogress_bench_batch"
HOST, PID = "bench", os.getpid()


class TimedQueue(InMemoryQueue):
    """``InMemoryQueue`` that notes when each job reached the queue (perf_counter)."""

    handed: dict[str, float] = {}

    def enqueue(self, record, options):
        type(self).handed[str(record.pk)] = time.perf_counter()
        return super().enqueue(record, options)

    @classmethod
    def clear(cls) -> None:
        super().clear()
        cls.handed.clear()


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--db",
        nargs="+",
        choices=["sqlite", "postgres"],
        default=["sqlite", "postgres"],
        help="databases to run on, each in its own process (default: both)",
    )
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[1000, 10000], help="jobs per batch (1000 10000)"
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="rounds per size, variants alternating (3)"
    )
    parser.add_argument(
        "--via",
        choices=["model", "run_job"],
        default="model",
        help="finish jobs by claim() + complete() (model, default) or run_job(id)",
    )
    parser.add_argument(
        "--sync",
        choices=["on", "off"],
        default="off",
        help="wait for the disk at each commit (default off; see the module docstring)",
    )
    parser.add_argument(
        "--pg-db-name", default=DEFAULT_PG_DB, help=f"PostgreSQL database ({DEFAULT_PG_DB})"
    )
    return parser.parse_args()


# -- measuring (in the child process, Django set up) ----------------------------------------


class StatementTimer:
    """Time spent in SQL statements, split into the batch row's and the others."""

    def __init__(self, batch_table: str) -> None:
        self.target = f'UPDATE "{batch_table}"'
        self.count: dict[str, int] = defaultdict(int)
        self.seconds: dict[str, float] = defaultdict(float)
        self.owner = threading.get_ident()

    def __call__(self, execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            if threading.get_ident() == self.owner:
                kind = "batch" if sql.startswith(self.target) else "other"
                self.count[kind] += 1
                self.seconds[kind] += time.perf_counter() - started


def setup(db: str, args: argparse.Namespace, tmpdir: Path) -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = "bench.settings"
    os.environ["BENCH_DB"] = db
    if db == "sqlite":
        os.environ["BENCH_DB_NAME"] = str(tmpdir / "bench.sqlite3")
    else:
        from bench.common import ensure_database

        ensure_database(args.pg_db_name)
        os.environ["BENCH_DB_NAME"] = args.pg_db_name
        if args.sync == "off":
            os.environ["BENCH_PG_OPTIONS"] = "-c synchronous_commit=off"

    import django
    from django.core.management import call_command
    from django.db.backends.signals import connection_created
    from django.test.utils import override_settings

    if db == "sqlite" and args.sync == "off":

        def no_sync(sender, connection, **kwargs):
            with connection.cursor() as cursor:
                cursor.execute("PRAGMA synchronous=OFF")

        connection_created.connect(no_sync, weak=False)
    django.setup()
    call_command("migrate", verbosity=0)
    # Queue into TimedQueue; nothing is pushed with the in-process channel layer.
    override_settings(JOBPROGRESS={"QUEUE_ADAPTER": "bench.batch.TimedQueue"}).enable()


def queue():
    from django.utils.module_loading import import_string

    return import_string("bench.batch.TimedQueue")  # the class the adapter loader uses


def empty_tables() -> None:
    from django.db import connection

    from django_jobprogress.models import Batch, JobRecord

    tables = [JobRecord._meta.db_table, Batch._meta.db_table]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(f"TRUNCATE {', '.join(tables)}")
        else:
            for table in tables:
                cursor.execute(f"DELETE FROM {table}")
    queue().clear()


def timed(calls, timer_table: str):
    """Run ``calls`` (an iterable of zero-argument callables) one by one; return
    (per-call seconds, results, the statement timer, when the last call began)."""
    from django.db import connection

    timer = StatementTimer(timer_table)
    times, results, began = [], [], 0.0
    clock = time.perf_counter
    with connection.execute_wrapper(timer):
        for call in calls:
            began = clock()
            results.append(call())
            times.append(clock() - began)
    return times, results, timer, began


def run_variant(n: int, via: str, in_batch: bool) -> dict:
    """Enqueue ``n`` jobs (into a new batch if ``in_batch``), then finish them."""
    from functools import partial

    from bench.tasks import Noop
    from django_jobprogress.execution import run_job
    from django_jobprogress.models import Batch, JobRecord

    table = Batch._meta.db_table
    empty_tables()
    out: dict = {}
    batch = None
    if in_batch:
        # Two callbacks due at the end (Noop: they are only queued here, never run).
        block = Batch.open("bench", on_complete=Noop, on_success=Noop)
        batch = block.__enter__()
    enqueue = partial(Noop.enqueue, batch=batch)
    times, records, timer, _ = timed((enqueue for _ in range(n)), table)
    if in_batch:
        block.__exit__(None, None, None)  # the seal
    out["enqueue"], out["enqueue_sql"] = times, timer

    ids = [record.pk for record in records]
    if via == "run_job":
        calls = (partial(run_job, str(job_id)) for job_id in ids)
    else:
        claimed = [JobRecord.objects.claim(job_id, host=HOST, pid=PID) for job_id in ids]
        calls = (partial(record.complete, None) for record in claimed)
    times, _, timer, last_began = timed(calls, table)
    out["finish"], out["finish_sql"] = times, timer

    if in_batch:
        done = Batch.objects.get(pk=batch.pk)
        assert (done.status, done.succeeded, done.total) == ("completed", n, n), done
        last = JobRecord.objects.get(pk=ids[-1])
        callbacks = list(JobRecord.objects.filter(batch__isnull=True))
        assert len(callbacks) == 2, callbacks
        created = sorted(c.created_at for c in callbacks)
        out["rows_delay"] = [(c - last.finished_at).total_seconds() for c in created]
        out["queue_delay"] = max(queue().handed[str(c.pk)] for c in callbacks) - last_began
        out["last_call"] = times[-1]
    return out


def us(seconds: float) -> str:
    return f"{seconds * 1e6:7.1f}"


def summarize(n: int, rounds: list[tuple[dict, dict]]) -> dict:
    """Print the medians over rounds; return the per-job figures."""
    med = statistics.median

    def per_job(variant: int, phase: str, stat) -> float:
        return med(stat(r[variant][phase]) for r in rounds)

    def sql_per_job(variant: int, phase: str, kind: str) -> tuple[float, float]:
        timers = [r[variant][f"{phase}_sql"] for r in rounds]
        return (
            med(t.count[kind] / n for t in timers),
            med(t.seconds[kind] / n for t in timers),
        )

    figures = {}
    print(f"  N = {n:,} jobs; us per job: mean [median] of the calls, median of the rounds")
    for phase in ("enqueue", "finish"):
        plain_mean, batch_mean = (
            per_job(0, phase, statistics.fmean),
            per_job(1, phase, statistics.fmean),
        )
        plain_med, batch_med = per_job(0, phase, med), per_job(1, phase, med)
        count, seconds = sql_per_job(1, phase, "batch")
        figures.update(
            {
                f"{phase} plain mean": plain_mean,
                f"{phase} batch mean": batch_mean,
                f"{phase} plain median": plain_med,
                f"{phase} batch median": batch_med,
                f"{phase} batch-row SQL": seconds,
            }
        )
        print(
            f"    {phase:<8} plain {us(plain_mean)} [{us(plain_med)}]   "
            f"batch {us(batch_mean)} [{us(batch_med)}]   "
            f"extra {us(batch_mean - plain_mean)} [{us(batch_med - plain_med)}]   "
            f"batch-row SQL {count:.2f} statements {us(seconds)}"
        )
    rows = [med(r[1]["rows_delay"][i] for r in rounds) for i in (0, 1)]
    handed = med(r[1]["queue_delay"] for r in rounds)
    last = med(r[1]["last_call"] for r in rounds)
    print(
        f"    last member -> callbacks: created_at - finished_at = {us(rows[0]).strip()} / "
        f"{us(rows[1]).strip()} us (1st / 2nd callback)"
    )
    print(
        f"      the last member's complete() took {us(last).strip()} us (a member's median: "
        f"{us(figures['finish batch median']).strip()}); both callbacks were on the queue "
        f"{us(handed).strip()} us after it began"
    )
    return figures


RATIOS = [
    ("enqueue batch mean", "enqueue into a batch, mean"),
    ("enqueue batch median", "enqueue into a batch, median"),
    ("enqueue plain median", "enqueue, no batch, median"),
    ("enqueue batch-row SQL", "enqueue, batch-row SQL"),
    ("finish batch mean", "finish a member, mean"),
    ("finish batch median", "finish a member, median"),
    ("finish plain median", "finish, no batch, median"),
    ("finish batch-row SQL", "finish, batch-row SQL"),
]


def run_child(db: str, args: argparse.Namespace) -> None:
    tmpdir = Path(tempfile.mkdtemp(prefix="jobprogress-bench-batch-"))
    try:
        setup(db, args, tmpdir)
        from django.db import connection

        connection.ensure_connection()
        version = f" {connection.connection.info.server_version}" if db == "postgres" else ""
        sizes = ", ".join(f"{n:,}" for n in args.sizes)
        print(
            f"\n{db}{version}: batches of {sizes} jobs, {args.rounds} rounds, "
            f"finished via {args.via}, sync {args.sync}"
        )
        summary = {}
        for n in args.sizes:
            rounds = []
            for number in range(args.rounds):
                # Alternate which variant goes first; each starts from empty tables.
                order = (False, True) if number % 2 == 0 else (True, False)
                results = {flag: run_variant(n, args.via, flag) for flag in order}
                rounds.append((results[False], results[True]))
            summary[n] = summarize(n, rounds)
        if len(args.sizes) >= 2:
            small, large = args.sizes[0], args.sizes[-1]
            print(f"  per-job ratio {large:,} / {small:,} (1.00: the cost per job is constant)")
            for key, label in RATIOS:
                a, b = summary[small][key], summary[large][key]
                print(f"    {label:<30} {b / a:5.2f}   ({us(a).strip()} -> {us(b).strip()} us)")
        empty_tables()
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


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
