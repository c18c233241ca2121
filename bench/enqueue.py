"""Enqueue rates: bare django-q2 ``async_task`` vs tracked ``enqueue()`` one by one vs
``enqueue_many()``, plain and into a batch.

Run from the repository root::

    python bench/enqueue.py                          # PostgreSQL + Redis, then SQLite + ORM broker
    python bench/enqueue.py --db postgres --jobs 10000 --rounds 5
    python bench/enqueue.py --channel-layer pubsub   # the push path configured (a web request's)
    python bench/enqueue.py --db postgres --profile tracked  # where an enqueue's time goes

Each round empties the broker and the tables, then times, in this process and with
no cluster running, ``--jobs`` hand-offs of each variant, each to a committed row
and a message on the broker:

``bare``          ``async_task("bench.tasks.noop")`` per job (django-q2 alone)
``tracked``       ``Noop.enqueue()`` per job: its own INSERT, commit and hand-off
``tasks``         ``noop_task.enqueue()`` per job: the same through ``django.tasks``
``bulk``          ``Noop.enqueue_many(...)``: an INSERT and a broker round trip per chunk
``batch``         ``Noop.enqueue(batch=b)`` per job inside ``Batch.open()``, sealed
``batch-bulk``    ``Noop.enqueue_many(..., batch=b)`` inside ``Batch.open()``, sealed
``bulk-args``     ``Count.enqueue_many([(1,), (2,), ...])``: each job with an argument of
                  its own (a mail blast's address), so its arguments are a column per row

PostgreSQL runs with django-q2's Redis broker, SQLite with its ORM broker (the
embedded default). Commits are durable (server defaults). Variants alternate
within a round; the figures are medians over rounds. Nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import ensure_database, run_per_database, wait_until_idle  # noqa: E402

VARIANTS = ("bare", "tracked", "tasks", "bulk", "batch", "batch-bulk", "bulk-args")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=["postgres", "sqlite"], action="append")
    parser.add_argument("--jobs", type=int, default=10_000, help="jobs per variant (10000)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (3)")
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument(
        "--channel-layer",
        choices=["memory", "pubsub", "redis"],
        default="memory",
        help="the channel layer configured: 'memory' pushes nothing, 'pubsub' / 'redis' "
        "are channels-redis's layers on the Redis URL",
    )
    parser.add_argument("--pg-db-name", default="jobprogress_bench_enqueue")
    parser.add_argument(
        "--redis-url",
        default="redis://127.0.0.1:6379/13",
        help="broker; this Redis database is FLUSHED before every variant",
    )
    parser.add_argument(
        "--profile",
        choices=VARIANTS,
        help="profile one run of this variant and print where its time goes",
    )
    parser.add_argument("--idle-below", type=float, default=0.3)
    parser.add_argument("--idle-wait", type=float, default=60.0)
    return parser.parse_args()


def setup(db: str, args: argparse.Namespace, tmpdir: Path) -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = "bench.settings"
    os.environ["BENCH_DB"] = db
    os.environ["BENCH_REDIS_URL"] = args.redis_url
    os.environ["BENCH_CHANNEL_LAYER"] = args.channel_layer
    if db == "sqlite":
        os.environ["BENCH_DB_NAME"] = str(tmpdir / "bench.sqlite3")
        os.environ["BENCH_BROKER"] = "orm"
    else:
        ensure_database(args.pg_db_name)
        os.environ["BENCH_DB_NAME"] = args.pg_db_name
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


def reset(args: argparse.Namespace) -> None:
    import redis
    from django.db import connection
    from django_q.models import OrmQ, Task

    from django_jobprogress.models import Batch, JobRecord

    redis.Redis.from_url(args.redis_url).flushdb()
    tables = [m._meta.db_table for m in (Task, OrmQ, JobRecord, Batch)]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("TRUNCATE " + ", ".join(connection.ops.quote_name(t) for t in tables))
        else:
            for table in tables:
                cursor.execute(f"DELETE FROM {connection.ops.quote_name(table)}")


def run_variant(variant: str, n: int) -> float:
    """Seconds to hand ``n`` jobs off, ``variant``'s way."""
    from django_q.tasks import async_task

    from bench.tasks import Count, Noop
    from django_jobprogress.models import Batch

    started = time.perf_counter()
    if variant == "bare":
        for _ in range(n):
            async_task("bench.tasks.noop")
    elif variant == "tracked":
        for _ in range(n):
            Noop.enqueue()
    elif variant == "tasks":
        from bench.tasks import noop_task

        for _ in range(n):
            noop_task.enqueue()
    elif variant == "bulk":
        Noop.enqueue_many([()] * n)
    elif variant == "batch":
        with Batch.open("bench") as batch:
            for _ in range(n):
                Noop.enqueue(batch=batch)
    elif variant == "bulk-args":
        Count.enqueue_many([(number,) for number in range(1, n + 1)])
    else:
        with Batch.open("bench") as batch:
            Noop.enqueue_many([()] * n, batch=batch)
    return time.perf_counter() - started


def handed_off(args: argparse.Namespace) -> int:
    """Messages on the broker: the check that every variant really handed off."""
    import redis
    from django.db import connection
    from django_q.models import OrmQ

    if connection.vendor == "sqlite":
        return OrmQ.objects.count()
    client = redis.Redis.from_url(args.redis_url)
    return sum(client.llen(key) for key in client.keys("django_q:*:q"))


def run_child(db: str, args: argparse.Namespace) -> None:
    import logging

    tmpdir = Path(tempfile.mkdtemp(prefix="jobprogress-bench-enqueue-"))
    setup(db, args, tmpdir)
    logging.getLogger("django-q").setLevel(logging.WARNING)  # one INFO line per async_task
    broker = "Redis broker" if db == "postgres" else "ORM broker"
    print(f"\n{db} + {broker}, channel layer {args.channel_layer}, {args.jobs} jobs per variant")
    if args.profile:
        reset(args)
        profiler = cProfile.Profile()
        profiler.enable()
        run_variant(args.profile, args.jobs)
        profiler.disable()
        print(f"profile of {args.jobs} jobs by {args.profile} (by own time, then cumulative):")
        stats = pstats.Stats(profiler).strip_dirs()
        stats.sort_stats("tottime").print_stats(18)
        stats.sort_stats("cumulative").print_stats(30)
        return
    rates: dict[str, list[float]] = {variant: [] for variant in args.variants}
    for round_number in range(1, args.rounds + 1):
        line = []
        for variant in args.variants:
            reset(args)
            wait_until_idle(args.idle_below, args.idle_wait)
            seconds = run_variant(variant, args.jobs)
            sent = handed_off(args)
            if sent != args.jobs:
                raise SystemExit(f"{variant}: {sent} of {args.jobs} jobs reached the broker")
            rates[variant].append(args.jobs / seconds)
            line.append(f"{variant} {seconds:6.3f} s ({args.jobs / seconds:7.0f}/s)")
        print(f"  round {round_number}: " + " | ".join(line), flush=True)
    median = {variant: statistics.median(values) for variant, values in rates.items()}
    print("  median jobs/s:  " + "  ".join(f"{v} {r:.0f}" for v, r in median.items()))
    if "bare" in median:
        for variant in args.variants:
            if variant != "bare":
                print(f"  {variant}/bare: {median[variant] / median['bare']:.2f}")
        ratios = [t / b for b, t in zip(rates["bare"], rates.get("tracked", []), strict=False)]
        if ratios:
            print("  per-round tracked/bare: " + "  ".join(f"{r:.2f}" for r in ratios))
    for variant in ("bulk", "batch-bulk", "bulk-args"):
        if variant in median:
            print(f"  {args.jobs} jobs by {variant}: {args.jobs / median[variant]:.3f} s (median)")
    reset(args)


def main() -> int:
    args = parse_args()
    databases = args.db or ["postgres", "sqlite"]
    if len(databases) > 1:
        return run_per_database(databases)
    run_child(databases[0], args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
