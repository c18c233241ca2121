"""Cost of one recovery sweep on PostgreSQL with a million job rows, and what it sends.

Run from the repository root (no cluster runs; the broker is a Redis database that
this script FLUSHES)::

    .venv/bin/python bench/sweep.py                 # 1,000,000 rows, 10,000-job backlog
    .venv/bin/python bench/sweep.py --rows 200000 --repeats 50

The table is filled once with finished jobs (reused by later runs with the same
``--rows``), then each scenario sets up its unfinished rows and times
``recovery.sweep()`` as a cluster's sweeper calls it, counting its SQL
statements and the messages it hands to the broker:

* steady: 100 healthy RUNNING jobs, nothing pending;
* honest backlog: ``--backlog`` PENDING jobs handed off 10 minutes ago whose
  messages all still wait in Redis (a slow queue): nothing may be sent again;
* lost messages: the same backlog after a broker restart that kept only the
  newest 8,000 messages: the 2,000 oldest are handed off again, at most 500
  per sweep, and none of the others;
* lost workers: 1,000 RUNNING jobs with stale heartbeats, half with attempts left.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import setup_django  # noqa: E402

REDIS_URL = "redis://127.0.0.1:6379/13"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="finished rows (1000000)")
    parser.add_argument("--backlog", type=int, default=10_000, help="pending backlog (10000)")
    parser.add_argument("--repeats", type=int, default=30, help="timed sweeps per case (30)")
    parser.add_argument("--db-name", default="jobprogress_bench_sweep")
    return parser.parse_args()


def configure(args: argparse.Namespace) -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = "bench.settings"
    os.environ["BENCH_DB"] = "postgres"
    os.environ["BENCH_DB_NAME"] = args.db_name
    os.environ["BENCH_REDIS_URL"] = REDIS_URL
    os.environ["BENCH_ADAPTER"] = "django_q2"


def fill(rows: int) -> None:
    """``rows`` finished jobs over the last two weeks, inserted by one statement."""
    from django.db import connection

    from django_jobprogress.models import JobRecord

    finished = JobRecord.objects.finished().count()
    if finished == rows:
        print(f"reusing {rows:,} finished rows")
        return
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {JobRecord._meta.db_table}")
        cursor.execute(
            f"""
            INSERT INTO {JobRecord._meta.db_table} (
                id, task_name, status, args, kwargs, progress, current, stage, message,
                fields, result, error, traceback, queue, queue_task_id, cancellable,
                cancel_threshold, stall_timeout, max_attempts, attempts, created_at,
                started_at, finished_at, heartbeat_at, handed_off_at, worker_host
            )
            SELECT gen_random_uuid(), 'bench.tasks.Noop',
                   CASE WHEN g %% 10 = 0 THEN 'failed' ELSE 'completed' END,
                   '[]', '{{}}', 1.0, 0, '', '', '{{}}', 'null', '', '', '', '', true,
                   1.0, 60, 1, 1, t, t, t + interval '1 second', t, t, 'bench'
            FROM generate_series(1, %s) AS g,
                 LATERAL (SELECT now() - (g %% 1209600) * interval '1 second' AS t) AS at
            """,
            [rows],
        )
        cursor.execute(f"ANALYZE {JobRecord._meta.db_table}")
    print(f"inserted {rows:,} finished rows in {time.perf_counter() - started:.1f} s")


def unfinished(status: str, n: int, **values) -> None:
    """Replace the unfinished rows with ``n`` new ones of ``status``."""
    from django.utils import timezone

    from django_jobprogress.models import JobRecord

    JobRecord.objects.unfinished().delete()
    now = timezone.now()
    JobRecord.objects.bulk_create(
        [
            JobRecord(task_name="bench.tasks.Noop", status=status, created_at=now, **values)
            for _ in range(n)
        ],
        batch_size=5000,
    )


def broker(keep: int) -> int:
    """Put ``keep`` placeholder messages in the broker's list (a queue nobody reads)."""
    import redis
    from django_q.brokers import get_broker

    client, key = redis.Redis.from_url(REDIS_URL), get_broker().list_key
    client.flushdb()
    for start in range(0, keep, 1000):
        client.rpush(key, *[b"waiting"] * min(1000, keep - start))
    return client.llen(key)


class Counter:
    """Counts the SQL statements of this thread's connection."""

    def __init__(self) -> None:
        self.statements = 0

    def __call__(self, execute, sql, params, many, context):
        self.statements += 1
        return execute(sql, params, many, context)


def timed_sweeps(repeats: int, now) -> tuple[list[float], list, int]:
    from django.db import connection

    from django_jobprogress.recovery import sweep

    times, reports, counter = [], [], Counter()
    with connection.execute_wrapper(counter):
        for _ in range(repeats):
            started = time.perf_counter()
            reports.append(sweep(now))
            times.append((time.perf_counter() - started) * 1000)
    return times, reports, counter.statements // repeats


def show(case: str, times: list[float], reports: list, statements: int) -> None:
    median, p95 = statistics.median(times), sorted(times)[int(len(times) * 0.95) - 1]
    sent = [r.handed_off for r in reports]
    done = [(r.rescued, r.failed_lost) for r in reports]
    print(
        f"  {case:<34} median {median:7.2f} ms  p95 {p95:7.2f} ms  "
        f"{statements} statements/sweep  handed off per sweep {sent[:6]}"
        + (f"  rescued/failed {done[:3]}" if any(map(any, done)) else "")
    )


def main() -> int:
    args = parse_args()
    configure(args)
    setup_django(args.db_name)

    from datetime import timedelta

    from django.utils import timezone

    fill(args.rows)
    print(
        f"one sweep, {args.rows:,} finished rows, PostgreSQL {args.db_name}, "
        f"{args.repeats} sweeps per case:"
    )
    now = timezone.now()

    unfinished("running", 100, attempts=1, stale_after=now + timedelta(minutes=5))
    broker(0)
    show("steady (100 healthy running)", *timed_sweeps(args.repeats, now))

    ago = now - timedelta(minutes=10)
    unfinished("pending", args.backlog, handed_off_at=ago)
    waiting = broker(args.backlog)
    show(f"honest backlog ({args.backlog:,} waiting)", *timed_sweeps(args.repeats, now))

    kept = args.backlog - 2000
    unfinished("pending", args.backlog, handed_off_at=ago)
    waiting = broker(kept)
    times, reports, statements = timed_sweeps(args.repeats, now)
    show(f"lost messages ({waiting:,} of {args.backlog:,} kept)", times, reports, statements)
    import redis
    from django_q.brokers import get_broker

    messages = redis.Redis.from_url(REDIS_URL).llen(get_broker().list_key)
    print(
        f"    the broker now holds {messages:,} messages for {args.backlog:,} pending jobs "
        f"({messages - args.backlog:+,} beyond them)"
    )

    unfinished("running", 1000, attempts=1, max_attempts=1, stale_after=ago)
    from django_jobprogress.models import JobRecord

    JobRecord.objects.filter(pk__in=JobRecord.objects.unfinished().values("pk")[:500]).update(
        max_attempts=3
    )
    broker(0)
    show("lost workers (1,000 stale)", *timed_sweeps(3, now))
    redis.Redis.from_url(REDIS_URL).flushdb()
    JobRecord.objects.unfinished().delete()
    return 0


if __name__ == "__main__":
    sys.exit(main())
