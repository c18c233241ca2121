"""``prune_jobs`` at a million rows on PostgreSQL and SQLite: its rate, its longest
chunk, and what it costs a django-q2 cluster that runs at the same time.

Run from the repository root (it fills and empties its own databases; the
cluster's broker is Redis database 12, which this script FLUSHES)::

    python bench/prune.py                      # both databases, 1,000,000 rows, 3 rounds each
    python bench/prune.py --db postgres        # one database
    python bench/prune.py --rows 50000 --jobs 1000 --rounds 1   # a quick run
    python bench/prune.py --rounds 0           # only the prune on its own

Each database runs in its own process (Django's settings are per process):
PostgreSQL ``jobprogress_bench_prune`` (created if missing), SQLite a file in a
temporary directory (removed at the end), both through ``bench/settings.py``
(``BENCH_DB``; SQLite with its 30 s busy timeout and, unless
``--sqlite-journal wal``, Django's default rollback journal).

1. **The prune alone.** The table is filled with ``--rows`` finished jobs
   (90 % completed, 10 % failed) that finished 1 to 15 days ago, by one
   ``INSERT ... SELECT`` (``generate_series`` on PostgreSQL, a recursive CTE on
   SQLite), then ``pruning.prune()`` runs with a cutoff one hour ago, as
   ``manage.py prune_jobs --older-than 1h`` would. Printed: rows/s, the number
   of chunks, the longest chunk transaction (goal <= 200 ms) and the time of
   its statements (the DELETE of a chunk, and the SELECT of its keys, which is
   outside the chunk's transaction).
2. **A cluster beside it.** Rounds of ``--jobs`` tracked no-op jobs
   (``bench.tasks.Noop``) through ``python -m django qcluster``, started with
   ``bench/throughput.py``'s ``Cluster``: baseline and prune rounds alternate.
   Every round starts from a freshly filled table of ``--rows`` old finished
   rows, enqueues its jobs with the cluster stopped and waits for an idle
   machine; a prune round then starts ``prune()`` in a thread of this process,
   then the cluster. The rate is counted as in ``bench/throughput.py``: jobs
   finished between the first and the last poll (every 20 ms) / that time. The
   cluster's jobs are new, so the prune's cutoff (an hour ago) never takes
   them. Printed per round: jobs/s, the CPU seconds by process group, failed
   jobs and ``database is locked`` lines in the cluster's log, and for a prune
   round what the prune did meanwhile; then the median rates and the ratio
   (goal >= 0.8).

Nothing is asserted: the script prints figures. See bench/README.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import cpu_snapshot, ensure_database, run_per_database  # noqa: E402
from bench.throughput import (  # noqa: E402
    CPU_GROUPS,
    NOISY,
    POLL,
    Cluster,
    cpu_used,
    enqueue_tracked,
    wait_for_quiet,
)

FILLER_TASK = "bench.prune.old"  # the old rows' task name: never one the cluster runs
CLUSTER_TASK = "bench.tasks.Noop"
CUTOFF_AGO_S = 3600  # the prune's cutoff; the old rows finished 1 to 15 days ago
CHUNK_GOAL_MS = 200
RATIO_GOAL = 0.8
JOIN_GRACE = 60.0  # seconds the prune thread gets past --prune-timeout to end its chunk


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--db",
        nargs="+",
        choices=["postgres", "sqlite"],
        default=["postgres", "sqlite"],
        help="databases to run on, one after the other, each in its own process (both)",
    )
    parser.add_argument("--rows", type=int, default=1_000_000, help="finished rows (1000000)")
    parser.add_argument("--chunk-size", type=int, default=1000, help="rows per chunk (1000)")
    parser.add_argument("--jobs", type=int, default=5000, help="cluster jobs per round (5000)")
    parser.add_argument("--workers", type=int, default=2, help="django-q2 workers (2)")
    parser.add_argument(
        "--rounds", type=int, default=3, help="rounds of each kind, alternating; 0: none (3)"
    )
    parser.add_argument("--pg-db-name", default="jobprogress_bench_prune")
    parser.add_argument(
        "--sqlite-journal",
        choices=["delete", "wal"],
        default="delete",
        help="SQLite journal mode: 'delete' (Django's default, as bench/settings.py leaves "
        "it) or 'wal' (set once on the file, so the cluster uses it too)",
    )
    parser.add_argument(
        "--redis-url",
        default="redis://127.0.0.1:6379/12",
        help="the cluster's broker; this Redis database is FLUSHED before every round",
    )
    parser.add_argument(
        "--idle-below", type=float, default=0.25, help="see bench/throughput.py (0.25)"
    )
    parser.add_argument("--idle-wait", type=float, default=120.0, help="see --idle-below (120)")
    parser.add_argument(
        "--timeout", type=float, default=600.0, help="give up on a round after this long (600)"
    )
    parser.add_argument(
        "--prune-timeout",
        type=float,
        default=1800.0,
        help="the prune's time_limit: it starts no chunk after this many seconds (1800)",
    )
    return parser.parse_args()


# -- set-up (in the child process of one database) -------------------------------------


def configure(db: str, args: argparse.Namespace, tmpdir: Path) -> str:
    """Set the environment bench/settings.py (and the cluster) read; return a label."""
    os.environ["DJANGO_SETTINGS_MODULE"] = "bench.settings"
    os.environ["BENCH_DB"] = db
    os.environ["BENCH_REDIS_URL"] = args.redis_url
    os.environ["BENCH_ADAPTER"] = "django_q2"
    os.environ["BENCH_WORKERS"] = str(args.workers)
    if db == "sqlite":
        os.environ["BENCH_DB_NAME"] = str(tmpdir / "bench.sqlite3")
        return f"SQLite {os.environ['BENCH_DB_NAME']}"
    ensure_database(args.pg_db_name)
    os.environ["BENCH_DB_NAME"] = args.pg_db_name
    return f"PostgreSQL {args.pg_db_name}"


def setup(args: argparse.Namespace) -> str:
    """Set Django up, migrate; on SQLite set the journal mode. Return a description."""
    import django
    from django.core.management import call_command
    from django.db import connection

    django.setup()
    call_command("migrate", verbosity=0)
    with connection.cursor() as cursor:
        if connection.vendor != "sqlite":
            cursor.execute("SHOW synchronous_commit")
            return f"synchronous_commit {cursor.fetchone()[0]}"
        cursor.execute(f"PRAGMA journal_mode={args.sqlite_journal}")
        mode = cursor.fetchone()[0]
        cursor.execute("PRAGMA busy_timeout")
        busy = cursor.fetchone()[0]
        cursor.execute("PRAGMA synchronous")
        sync = cursor.fetchone()[0]
    return f"journal_mode {mode}, busy_timeout {busy} ms, synchronous {sync}"


# -- the table ------------------------------------------------------------------------

FILL_COLUMNS = """
    id, task_name, status, args, kwargs, progress, current, stage, message, fields,
    result, error, traceback, queue, queue_task_id, cancellable, cancel_threshold,
    stall_timeout, max_attempts, attempts, created_at, started_at, finished_at,
    heartbeat_at, handed_off_at, worker_host, exception_class_path, worker_ids
"""

PG_FILL = f"""
    INSERT INTO {{table}} ({FILL_COLUMNS})
    SELECT gen_random_uuid(), '{FILLER_TASK}',
           CASE WHEN g %% 10 = 0 THEN 'failed' ELSE 'completed' END,
           '[]', '{{{{}}}}', 1.0, 0, '', '', '{{{{}}}}', 'null', '', '', '', '', true,
           1.0, 60, 1, 1, t, t, t + interval '1 second', t, t, 'bench', '', '[]'
    FROM generate_series(1, %s) AS g,
         LATERAL (
             SELECT now() - interval '1 day' - (g %% 1209600) * interval '1 second' AS t
         ) AS at
"""

# Django keeps a UUID as 32 hex digits on SQLite, a datetime as 'YYYY-MM-DD HH:MM:SS'
# text in UTC, JSON as text, a boolean as 0/1.
SQLITE_FILL = f"""
    WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < %s)
    INSERT INTO {{table}} ({FILL_COLUMNS})
    SELECT lower(hex(randomblob(16))), '{FILLER_TASK}',
           CASE WHEN n %% 10 = 0 THEN 'failed' ELSE 'completed' END,
           '[]', '{{{{}}}}', 1.0, 0, '', '', '{{{{}}}}', 'null', '', '', '', '', 1,
           1.0, 60, 1, 1, t, t, datetime(t, '+1 second'), t, t, 'bench', '', '[]'
    FROM (
        SELECT n, datetime('now', '-1 day', '-' || (n %% 1209600) || ' seconds') AS t
        FROM g
    )
"""


def empty_tables() -> None:
    """Empty the job table and django-q2's task and queue tables."""
    from django.db import connection
    from django_q.models import OrmQ, Task

    from django_jobprogress.models import JobRecord

    tables = [JobRecord._meta.db_table, Task._meta.db_table, OrmQ._meta.db_table]
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            for table in tables:  # a DELETE with no WHERE: SQLite's truncate optimisation
                cursor.execute(f"DELETE FROM {connection.ops.quote_name(table)}")
        else:
            cursor.execute("TRUNCATE " + ", ".join(connection.ops.quote_name(t) for t in tables))


def fill(rows: int) -> float:
    """Empty the tables, then insert ``rows`` old finished jobs by one statement; return
    the seconds it took (on PostgreSQL including VACUUM ANALYZE: autovacuum may be off,
    and a table that old would have been vacuumed)."""
    from django.db import connection

    from django_jobprogress.models import JobRecord

    started = time.perf_counter()
    empty_tables()
    table = connection.ops.quote_name(JobRecord._meta.db_table)
    sql = SQLITE_FILL if connection.vendor == "sqlite" else PG_FILL
    with connection.cursor() as cursor:
        cursor.execute(sql.format(table=table), [rows])
        if connection.vendor != "sqlite":
            cursor.execute(f"VACUUM ANALYZE {table}")
    count = JobRecord.objects.filter(task_name=FILLER_TASK).count()
    if count != rows:
        raise RuntimeError(f"the fill inserted {count:,} rows, not {rows:,}")
    return time.perf_counter() - started


def reset_broker(redis_url: str) -> None:
    import redis

    redis.Redis.from_url(redis_url).flushdb()


# -- the prune, in a thread -----------------------------------------------------------


class StatementTimer:
    """Durations of the prune's DELETE and SELECT statements (its connection only)."""

    def __init__(self) -> None:
        self.seconds: dict[str, list[float]] = {"DELETE": [], "SELECT": []}

    def __call__(self, execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            kind = sql.lstrip().split(None, 1)[0].upper()
            if kind in self.seconds:
                self.seconds[kind].append(time.perf_counter() - started)


class Pruner(threading.Thread):
    """``pruning.prune()`` with the bench's cutoff, on this thread's own connection."""

    def __init__(self, chunk_size: int, time_limit: float) -> None:
        super().__init__(name="prune", daemon=True)  # never keeps the process alive
        self.chunk_size = chunk_size
        self.time_limit = time_limit
        self.timer = StatementTimer()
        self.report = None
        self.error: BaseException | None = None
        self.backend_pid: int | None = None
        self.started_at: float | None = None
        self.finished_at: float | None = None

    def run(self) -> None:
        from datetime import timedelta

        from django.db import connection
        from django.utils import timezone

        from django_jobprogress.pruning import prune

        try:
            if connection.vendor == "postgresql":
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_backend_pid()")
                    self.backend_pid = cursor.fetchone()[0]
            before = timezone.now() - timedelta(seconds=CUTOFF_AGO_S)
            self.started_at = time.perf_counter()
            with connection.execute_wrapper(self.timer):
                self.report = prune(before, chunk_size=self.chunk_size, time_limit=self.time_limit)
        except BaseException as exc:  # e.g. "database is locked": a finding, shown
            self.error = exc
        finally:
            self.finished_at = time.perf_counter()
            connection.close()

    def finish(self) -> None:
        """Wait (bounded) for the prune to end."""
        self.join(self.time_limit + JOIN_GRACE)
        if self.is_alive():
            raise RuntimeError(
                f"the prune still runs {self.time_limit + JOIN_GRACE:g} s after it started"
            )

    @property
    def deleted(self) -> int:
        return sum(self.report.jobs.values()) if self.report else 0

    @property
    def seconds(self) -> float:
        return (self.finished_at or time.perf_counter()) - (self.started_at or 0.0)


def ms_stats(values: list[float]) -> str:
    if not values:
        return "none"
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return (
        f"median {statistics.median(ordered) * 1000:.1f} / p99 {p99 * 1000:.1f} / "
        f"max {ordered[-1] * 1000:.1f} ms"
    )


def show_prune(label: str, pruner: Pruner, indent: str = "  ") -> None:
    if pruner.error is not None:
        print(
            f"{indent}{label}: the prune FAILED after {pruner.seconds:.1f} s and "
            f"{pruner.deleted:,} rows: {type(pruner.error).__name__}: {pruner.error}"
        )
        return
    report = pruner.report
    rate = pruner.deleted / pruner.seconds if pruner.seconds > 0 else float("inf")
    longest = report.longest_chunk_s * 1000
    print(
        f"{indent}{label}: pruned {pruner.deleted:,} rows in {pruner.seconds:.1f} s "
        f"({rate:,.0f} rows/s), {report.chunks} chunks of {pruner.chunk_size}, "
        f"longest chunk {longest:.0f} ms (goal <= {CHUNK_GOAL_MS} ms"
        f"{'' if longest <= CHUNK_GOAL_MS else ': MISSED'}); by status "
        + ", ".join(f"{status} {count:,}" for status, count in report.jobs.items())
        + ("; STOPPED at --prune-timeout" if report.stopped_early else "")
    )
    timer = pruner.timer.seconds
    print(
        f"{indent}  statements: DELETE of a chunk {ms_stats(timer['DELETE'])}; "
        f"SELECT of its keys (outside the chunk) {ms_stats(timer['SELECT'])}"
    )


def prune_alone(args: argparse.Namespace) -> None:
    seconds = fill(args.rows)
    print(f"  filled {args.rows:,} finished rows in {seconds:.1f} s", flush=True)
    pruner = Pruner(args.chunk_size, args.prune_timeout)
    pruner.start()
    pruner.finish()
    show_prune("prune alone", pruner)


# -- the cluster beside it ------------------------------------------------------------


def count_done() -> int:
    """The cluster's finished jobs (through the (task_name, created_at) index)."""
    from django_jobprogress.models import JobRecord

    return JobRecord.objects.filter(task_name=CLUSTER_TASK).exclude(finished_at=None).count()


def locked_lines(log: Path) -> int:
    if not log.exists():
        return 0
    with open(log, errors="replace") as f:
        return sum("database is locked" in line for line in f)


def run_round(kind: str, args: argparse.Namespace, log: Path) -> dict:
    from django_q.models import Task

    from django_jobprogress.models import JobRecord

    n = args.jobs
    reset_broker(args.redis_url)
    fill_seconds = fill(args.rows)
    enqueue_tracked(n)
    idle = wait_for_quiet(args)

    pruner = Pruner(args.chunk_size, args.prune_timeout) if kind == "prune" else None
    cluster = Cluster(int(os.environ.get("BENCH_CONN_MAX_AGE", "600")), log)
    samples: list[tuple[float, int]] = []
    try:
        if pruner is not None:
            pruner.start()
        cluster.start()
        t_start = time.perf_counter()
        t_first = t_all = None
        for _poll in range(int(args.timeout / POLL) + 1):  # bounded in count and in time
            done = count_done()
            now = time.perf_counter()
            samples.append((now, done))
            if done and t_first is None:
                t_first, done_first = now, done
                cpu_first = cpu_snapshot({cluster.proc.pid: "cluster"})
            if done >= n:
                t_all = now
                cpu_last = cpu_snapshot({cluster.proc.pid: "cluster"})
                break
            if not cluster.alive():
                raise RuntimeError(f"the cluster exited early; see {log}")
            if now - t_start > args.timeout:
                break
            time.sleep(POLL)
        if t_all is None:
            raise RuntimeError(f"only {done}/{n} jobs done after {args.timeout:g} s; see {log}")
    finally:
        cluster.stop()
    if pruner is not None:
        pruner.finish()

    span = t_all - t_first
    by_group, busy, total = cpu_used(cpu_first, cpu_last)
    result = {
        "kind": kind,
        "rate": (n - done_first) / span if span > 0 else float("inf"),
        "span": span,
        "cpu_s": by_group,
        "busy": busy / total if total else 0.0,
        "other_share": by_group["other"] / busy if busy else 0.0,
        "busy_before": idle,
        "fill_s": fill_seconds,
        "not_completed": JobRecord.objects.filter(task_name=CLUSTER_TASK)
        .exclude(status=JobRecord.Status.COMPLETED)
        .count(),
        "q_failures": Task.objects.filter(success=False).count(),
        "locked_lines": locked_lines(log),
        "pruner": pruner,
    }
    if pruner is not None:
        backend = pruner.backend_pid
        if backend in cpu_first[0] and backend in cpu_last[0]:
            result["prune_backend_cpu_s"] = cpu_last[0][backend][1] - cpu_first[0][backend][1]
        # The part of the window the prune ran through, and the rate over that part.
        end = pruner.finished_at
        result["overlap"] = max(0.0, min(end, t_all) - t_first) / span if span > 0 else 0.0
        if end < t_all:
            inside = [(t, d) for t, d in samples if t_first < t <= end]
            if inside:
                t_k, d_k = inside[-1]
                result["rate_while_pruning"] = (d_k - done_first) / (t_k - t_first)
    return result


def show_round(i: int, r: dict) -> None:
    print(
        f"  round {i} {r['kind']:>8}: {r['rate']:7.1f} jobs/s ({r['span']:.2f} s first..last "
        f"job finished; table refilled in {r['fill_s']:.1f} s)",
        flush=True,
    )
    cpu = "  ".join(f"{g} {r['cpu_s'][g]:.2f}" for g in CPU_GROUPS)
    backend = r.get("prune_backend_cpu_s")
    noisy = r["other_share"] > NOISY
    print(
        f"      CPU s in the window: {cpu}"
        + (f" (the prune's backend {backend:.2f})" if backend is not None else "")
        + f"; CPUs busy {r['busy']:.0%} ({r['busy_before']:.0%} before)"
        + ("  NOISY" if noisy else "")
    )
    if r["not_completed"] or r["q_failures"] or r["locked_lines"]:
        print(
            f"      WARNING: {r['not_completed']} jobs not completed, {r['q_failures']} "
            f"django-q2 failures, {r['locked_lines']} 'database is locked' log lines"
        )
    pruner = r["pruner"]
    if pruner is not None:
        show_prune("meanwhile", pruner, indent="      ")
        if r["overlap"] < 1.0:
            inside = r.get("rate_while_pruning")
            print(
                f"      the prune ended before the cluster: it ran through {r['overlap']:.0%} "
                f"of the window"
                + (f", {inside:.1f} jobs/s over that part" if inside is not None else "")
                + " (more --rows or fewer --jobs to cover it all)"
            )


def summarize(label: str, results: list[dict]) -> None:
    base = [r["rate"] for r in results if r["kind"] == "baseline"]
    # A prune that ended before the cluster: its rate over the part the prune ran through.
    pruned = [r.get("rate_while_pruning", r["rate"]) for r in results if r["kind"] == "prune"]
    if not base or not pruned:
        return
    ratios = [p / b for b, p in zip(base, pruned, strict=False)]
    ratio = statistics.median(pruned) / statistics.median(base)
    noisy = sum(r["other_share"] > NOISY for r in results)
    print(
        f"\n  summary, {label}: baseline median {statistics.median(base):.1f} jobs/s, "
        f"during the prune median {statistics.median(pruned):.1f} jobs/s, ratio {ratio:.3f} "
        f"(goal >= {RATIO_GOAL}{'' if ratio >= RATIO_GOAL else ': MISSED'}); per-round "
        f"ratios {'  '.join(f'{x:.3f}' for x in ratios)} ({noisy} of {len(results)} NOISY)"
    )
    if noisy:  # the same without the rounds that other work on the machine disturbed
        quiet = [r for r in results if r["other_share"] <= NOISY]
        q_base = [r["rate"] for r in quiet if r["kind"] == "baseline"]
        q_pruned = [r.get("rate_while_pruning", r["rate"]) for r in quiet if r["kind"] == "prune"]
        if q_base and q_pruned:
            q_ratio = statistics.median(q_pruned) / statistics.median(q_base)
            print(
                f"  quiet rounds only ({len(q_base)} baseline, {len(q_pruned)} prune): "
                f"baseline median {statistics.median(q_base):.1f} jobs/s, during the prune "
                f"median {statistics.median(q_pruned):.1f} jobs/s, ratio {q_ratio:.3f}"
            )
        else:
            print("  no quiet round of one kind or the other: no quiet-only ratio")
    prunes = [r["pruner"] for r in results if r["pruner"] is not None]
    ok = [p for p in prunes if p.error is None and p.report is not None]
    if ok:
        longest = max(p.report.longest_chunk_s for p in ok) * 1000
        rates = [p.deleted / p.seconds for p in ok if p.seconds > 0]
        print(
            f"  the prune beside the cluster: median {statistics.median(rates):,.0f} rows/s, "
            f"longest chunk {longest:.0f} ms (goal <= {CHUNK_GOAL_MS} ms); "
            f"{len(prunes) - len(ok)} of {len(prunes)} prunes failed"
        )


def run_child(db: str, args: argparse.Namespace) -> int:
    tmpdir = Path(tempfile.mkdtemp(prefix="jobprogress-bench-prune-"))
    log_dir = Path(tempfile.mkdtemp(prefix="jobprogress-bench-prune-logs-"))
    try:
        label = configure(db, args, tmpdir)
        details = setup(args)
        print(
            f"\n{label} ({details}): {args.rows:,} finished rows, chunks of "
            f"{args.chunk_size}; {args.rounds} rounds of {args.jobs} tracked jobs each way, "
            f"{args.workers} workers, Redis broker {args.redis_url}; cluster logs in {log_dir}",
            flush=True,
        )
        prune_alone(args)
        results = []
        for i in range(1, args.rounds + 1):
            for kind in ("baseline", "prune"):
                log = log_dir / f"qcluster-{db}-{i}-{kind}.log"
                result = run_round(kind, args, log)
                results.append(result)
                show_round(i, result)
        summarize(label, results)
        empty_tables()
        reset_broker(args.redis_url)
    finally:
        for cluster in list(Cluster.live):
            cluster.kill()
        shutil.rmtree(tmpdir, ignore_errors=True)
        for log in log_dir.iterdir():  # keep only the logs that say something
            if log.stat().st_size == 0:
                log.unlink()
        if not any(log_dir.iterdir()):
            log_dir.rmdir()
    return 0


def main() -> int:
    args = parse_args()
    if len(args.db) == 1:
        return run_child(args.db[0], args)
    return run_per_database(args.db)


def _terminate(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds through the finally blocks: stops the cluster


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _terminate)
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("\ninterrupted")
        sys.exit(130)
    finally:
        for cluster in list(Cluster.live):  # e.g. a second Ctrl-C during a graceful stop
            cluster.kill()
