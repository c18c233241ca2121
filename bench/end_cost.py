"""What one job's end costs, with and without the dashboard's count (its stamp by the
database's clock; the sweep's count of it is not timed here).

Run from the repository root::

    python bench/end_cost.py                       # PostgreSQL, 2,000 ends per round, 6 rounds
    python bench/end_cost.py --synchronous-commit off
    python bench/end_cost.py --server-side-binding   # statements prepared by psycopg 3

Each round creates and claims N jobs (not timed), then ends them one by one with
``complete()`` in this process, timing the ends: wall time, this process's CPU
the PostgreSQL backend's CPU (read from ``/proc``) and the WAL written. Rounds alternate
"counted" (the product as shipped) and "uncounted" (the end's write with the
worker's clock, as ``throughput.py --uncounted`` runs it), and the summary gives
the medians and the difference. Nothing is asserted: it prints figures.
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

from bench.common import HZ, setup_django  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ends", type=int, default=2000, help="ends per round (2000)")
    parser.add_argument("--rounds", type=int, default=6, help="rounds, alternating (6)")
    parser.add_argument("--synchronous-commit", choices=("on", "off"), default="on")
    parser.add_argument(
        "--server-side-binding",
        action="store_true",
        help="psycopg 3's server-side binding, which prepares statements run 5 times",
    )
    parser.add_argument("--db-name", default="jobprogress_bench")
    return parser.parse_args()


KEYS = ("wall", "client", "backend", "wal")


def backend_cpu(pid: int) -> float:
    """CPU seconds (user + system) the PostgreSQL backend ``pid`` has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / HZ


def one_round(n: int, counted: bool) -> dict[str, float]:
    from django.db import connection
    from django.db.models import Sum

    from bench.tasks import Noop, uncount_ends
    from django_jobprogress.models import EndsCounted, JobMinute, JobRecord
    from django_jobprogress.models import stats as stats_module

    with connection.cursor() as cursor:
        tables = (JobRecord, EndsCounted, JobMinute)
        cursor.execute("TRUNCATE " + ", ".join(m._meta.db_table for m in tables))
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    records = Noop.enqueue_many([()] * n)
    claimed = [JobRecord.objects.claim(r.pk, host="bench", pid=os.getpid()) for r in records]
    shipped = JobRecord._stamp_end, stats_module.count_ends
    if not counted:
        uncount_ends()
    try:
        wal = wal_position()
        wall, cpu, server = time.perf_counter(), time.process_time(), backend_cpu(pid)
        for record in claimed:
            record.complete()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        server = backend_cpu(pid) - server
        wal = wal_position() - wal
    finally:
        JobRecord._stamp_end, stats_module.count_ends = shipped
    ended = JobRecord.objects.filter(status=JobRecord.Status.COMPLETED).count()
    if ended != n:
        raise RuntimeError(f"expected {n} completed jobs, found {ended}")
    figures = {
        "wall": wall / n * 1e6,
        "client": cpu / n * 1e6,
        "backend": server / n * 1e6,
        "wal": wal / n,
    }
    if counted:  # the sweep's count of these ends, as its passes would make it
        wall, cpu, server = time.perf_counter(), time.process_time(), backend_cpu(pid)
        count_all(stats_module)
        figures["count_wall"] = (time.perf_counter() - wall) / n * 1e6
        figures["count_client"] = (time.process_time() - cpu) / n * 1e6
        figures["count_backend"] = (backend_cpu(pid) - server) / n * 1e6
        counts = JobMinute.objects.aggregate(n=Sum("completed"))["n"]
        if counts != n:
            raise RuntimeError(f"expected {n} ends counted, found {counts}")
    return figures


def count_all(stats_module) -> None:
    """Count passes until every end so far is counted (two on PostgreSQL)."""
    from django_jobprogress.models.sql import database_now

    now = database_now("default")
    if stats_module.count_ends_through(now, passes=10) < now:
        raise RuntimeError("the ends were not counted in 10 passes")


def wal_position() -> int:
    """PostgreSQL's WAL insert position, in bytes (the whole server's: run it alone)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '0/0')")
        return int(cursor.fetchone()[0])


def main() -> int:
    args = parse_args()
    os.environ["DJANGO_SETTINGS_MODULE"] = "bench.settings"
    os.environ["BENCH_ADAPTER"] = "memory"
    os.environ["BENCH_PG_OPTIONS"] = f"-c synchronous_commit={args.synchronous_commit}"
    os.environ["BENCH_SERVER_SIDE_BINDING"] = "1" if args.server_side_binding else "0"
    setup_django(args.db_name)
    print(
        f"{args.ends} ends per round, {args.rounds} rounds, PostgreSQL {args.db_name}, "
        f"synchronous_commit {args.synchronous_commit}, server-side binding "
        f"{'on' if args.server_side_binding else 'off'}; µs per end",
        flush=True,
    )
    results: dict[bool, list[dict[str, float]]] = {True: [], False: []}
    for i in range(args.rounds):
        counted = i % 2 == 0
        r = one_round(args.ends, counted)
        results[counted].append(r)
        label = "counted" if counted else "uncounted"
        print(
            f"  round {i + 1} {label:>9}: wall {r['wall']:7.1f}  client CPU {r['client']:6.1f}"
            f"  backend CPU {r['backend']:6.1f}  WAL {r['wal']:6.0f} bytes",
            flush=True,
        )
    print("  medians:")
    med = {
        counted: {k: statistics.median(r[k] for r in rounds) for k in KEYS}
        for counted, rounds in results.items()
    }
    for counted, label in ((True, "counted"), (False, "uncounted")):
        m = med[counted]
        print(
            f"    {label:>9}: wall {m['wall']:7.1f}  client CPU {m['client']:6.1f}"
            f"  backend CPU {m['backend']:6.1f}  WAL {m['wal']:6.0f} bytes"
        )
    diff = {k: med[True][k] - med[False][k] for k in KEYS}
    print(
        f"    the stamp adds: wall {diff['wall']:+.1f}  client CPU {diff['client']:+.1f}"
        f"  backend CPU {diff['backend']:+.1f}  WAL {diff['wal']:+.0f} bytes"
    )
    counts = {k: statistics.median(r[f"count_{k}"] for r in results[True]) for k in KEYS[:3]}
    print(
        f"    the sweep's count, per end: wall {counts['wall']:.1f}  client CPU "
        f"{counts['client']:.1f}  backend CPU {counts['backend']:.1f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
