"""Throughput of no-op jobs through a real django-q2 cluster: bare vs tracked.

Run from the repository root::

    .venv/bin/python bench/throughput.py                       # 2000 jobs, 2 workers, 3 rounds
    .venv/bin/python bench/throughput.py --conn-max-age 600 0  # also with CONN_MAX_AGE = 0
    .venv/bin/python bench/throughput.py --sweep-interval none 15 1  # the recovery sweep's cost
    .venv/bin/python bench/throughput.py --django-tasks  # also a django.tasks @task (tracked)
    .venv/bin/python bench/throughput.py --jobs 10000 --batch  # also one 10,000-member batch
    .venv/bin/python bench/throughput.py --uncounted  # also tracked with the end's count off

Each round (bare and tracked alternate) starts from an empty broker and empty
tables, enqueues all jobs while the cluster is stopped, then starts
``python -m django qcluster`` and waits until every job's outcome is saved:
django-q2's result row for a bare job, the finished ``JobRecord`` for a tracked
one (which is its only copy: django-q2 does not save a tracked job's success).
The rate is (jobs done in the window) / (time the last outcome appeared - time
the first one appeared), observed by counting the rows every 20 ms, so cluster
start-up and enqueueing are not in it. See bench/README.md for the method and
the figures.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import cpu_snapshot, setup_django, wait_until_idle  # noqa: E402

POLL = 0.02  # seconds between two counts of the saved results
NOISY = 0.10  # a round is flagged when unrelated processes used more than this share of the CPU
STOP_GRACE = 30.0  # seconds the cluster gets to stop on SIGTERM before SIGKILL


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=2000, help="jobs per round (default 2000)")
    parser.add_argument("--workers", type=int, default=2, help="django-q2 workers (default 2)")
    parser.add_argument(
        "--rounds", type=int, default=3, help="rounds of each variant, alternating (default 3)"
    )
    parser.add_argument(
        "--conn-max-age",
        type=int,
        nargs="+",
        default=[600],
        metavar="SECONDS",
        help="CONN_MAX_AGE of the cluster; several values run the whole set once per value "
        "(e.g. --conn-max-age 600 0). Default 600 (persistent connections).",
    )
    parser.add_argument(
        "--sweep-interval",
        nargs="+",
        default=["15"],
        metavar="SECONDS",
        help="JOBPROGRESS['SWEEP_INTERVAL'] of the cluster ('none' turns the sweep off); "
        "several values run the whole set once per value, in the same run (default 15)",
    )
    parser.add_argument(
        "--db-name", default="jobprogress_bench", help="PostgreSQL database (created if missing)"
    )
    parser.add_argument(
        "--redis-url",
        default="redis://127.0.0.1:6379/14",
        help="broker; this Redis database is FLUSHED before every round",
    )
    parser.add_argument(
        "--q-log-level", default="WARNING", help="django-q2 log level in the cluster"
    )
    parser.add_argument(
        "--channel-layer",
        choices=["memory", "redis", "pubsub"],
        default="memory",
        help="'memory' (default): in-process layer, so django_jobprogress pushes nothing; "
        "'redis': channels-redis's core layer on --redis-url, so each job's end (and its "
        "start, if it runs longer than THROTTLE) is pushed; 'pubsub': its pub/sub layer",
    )
    parser.add_argument(
        "--synchronous-commit",
        choices=["on", "off"],
        default="on",
        help="PostgreSQL synchronous_commit for the cluster's and this script's sessions "
        "(default on, the server default); 'off' shows how much of the cost is commit flushes",
    )
    parser.add_argument(
        "--idle-below",
        type=float,
        default=0.25,
        metavar="FRACTION",
        help="before each round, wait (up to --idle-wait s) until the CPUs were less than this "
        "busy over one second, so other work on the machine does not skew a round (0.25)",
    )
    parser.add_argument("--idle-wait", type=float, default=120.0, help="see --idle-below (120)")
    parser.add_argument(
        "--timeout", type=float, default=300.0, help="give up on a round after this many seconds"
    )
    parser.add_argument(
        "--batch",
        action="store_true",
        help="also run 'batch': the jobs as members of one batch, added by enqueue_many",
    )
    parser.add_argument(
        "--server-side-binding",
        action="store_true",
        help="psycopg 3's server-side binding (DATABASES OPTIONS), for every variant",
    )
    parser.add_argument(
        "--uncounted",
        action="store_true",
        help="also run 'uncounted': tracked jobs ended without the dashboard's count (the "
        "dashboard's count switched off in the cluster), to price that count",
    )
    parser.add_argument(
        "--django-tasks",
        action="store_true",
        help="also run a third variant, 'tasks': a no-op django.tasks @task on "
        "JobProgressBackend (needs Django >= 6.0 or the django-tasks backport)",
    )
    return parser.parse_args()


def configure(args: argparse.Namespace) -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = "bench.settings"
    os.environ["BENCH_DB"] = "postgres"
    os.environ["BENCH_DB_NAME"] = args.db_name
    os.environ["BENCH_WORKERS"] = str(args.workers)
    os.environ["BENCH_REDIS_URL"] = args.redis_url
    os.environ["BENCH_ADAPTER"] = "django_q2"
    os.environ["BENCH_Q_LOG_LEVEL"] = args.q_log_level
    os.environ["BENCH_CONN_MAX_AGE"] = str(args.conn_max_age[0])
    os.environ["BENCH_CHANNEL_LAYER"] = args.channel_layer
    os.environ["BENCH_PG_OPTIONS"] = f"-c synchronous_commit={args.synchronous_commit}"
    os.environ["BENCH_SERVER_SIDE_BINDING"] = "1" if args.server_side_binding else "0"


class Cluster:
    """One ``python -m django qcluster`` subprocess in its own process group."""

    live: set[Cluster] = set()  # started and not yet stopped, for the last-resort cleanup

    def __init__(self, conn_max_age: int, log_path: Path, env: dict[str, str]) -> None:
        self.conn_max_age = conn_max_age
        self.log_path = log_path
        self.env = env
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        env = dict(os.environ, BENCH_CONN_MAX_AGE=str(self.conn_max_age), **self.env)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "django", "qcluster"],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C in the terminal does not reach it; stop() does
            )
        Cluster.live.add(self)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # the sentinel stops its workers, drains results
            try:
                proc.wait(STOP_GRACE)
            except subprocess.TimeoutExpired:
                print(f"  cluster pid {proc.pid} did not stop in {STOP_GRACE:g} s: killing it")
        # Whatever is left of the group this script started (workers, pusher, monitor).
        self.kill()

    def kill(self) -> None:
        """SIGKILL whatever is left of the process group this script started."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self._forget()

    def _forget(self) -> None:
        self.proc = None
        Cluster.live.discard(self)


CPU_GROUPS = ("cluster", "postgres", "redis", "this script", "other")


def cpu_used(before, after) -> tuple[dict[str, float], float, float]:
    """CPU seconds by group between two snapshots, and the system's busy and total."""
    used = dict.fromkeys(CPU_GROUPS, 0.0)
    for pid, (group, seconds) in after[0].items():
        start = before[0].get(pid)
        used[group] += seconds - (start[1] if start and start[0] == group else 0.0)
    return used, after[1] - before[1], after[2] - before[2]


def wait_for_quiet(args: argparse.Namespace) -> float:
    """Wait for a quiet machine; return the busy fraction seen last."""
    busy = wait_until_idle(args.idle_below, args.idle_wait)
    if busy >= args.idle_below:
        print(f"  (machine still {busy:.0%} busy after {args.idle_wait:g} s; running anyway)")
    return busy


def reset(redis_url: str) -> None:
    """Empty the broker's Redis database and the tables the jobs write."""
    import redis
    from django.db import connection
    from django_q.models import OrmQ, Task

    from django_jobprogress.models import EndsCounted, JobMinute, JobRecord

    redis.Redis.from_url(redis_url).flushdb()
    models = (Task, OrmQ, JobRecord, EndsCounted, JobMinute)
    tables = [model._meta.db_table for model in models]
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE " + ", ".join(connection.ops.quote_name(t) for t in tables))


def enqueue_bare(n: int) -> None:
    from django_q.tasks import async_task

    for _ in range(n):
        async_task("bench.tasks.noop")


def enqueue_tracked(n: int) -> None:
    from bench.tasks import Noop

    for _ in range(n):
        Noop.enqueue()


def enqueue_django_tasks(n: int) -> None:
    from bench.tasks import noop_task

    for _ in range(n):
        noop_task.enqueue()


def enqueue_batch(n: int) -> None:
    from bench.tasks import Noop
    from django_jobprogress.models import Batch

    with Batch.open("bench") as batch:
        Noop.enqueue_many([()] * n, batch=batch)


VARIANTS = {
    "bare": enqueue_bare,
    "tracked": enqueue_tracked,
    "uncounted": enqueue_tracked,
    "tasks": enqueue_django_tasks,
    "batch": enqueue_batch,
}
TRACKED = ("tracked", "uncounted", "tasks", "batch")  # the variants whose jobs have a JobRecord
#: What each variant's cluster gets in its environment: "uncounted" runs tracked jobs
#: whose end is not stamped by the database and whose sweeps count nothing
#: (bench/tasks.py), to price the dashboard's count.
CLUSTER_ENV = {"uncounted": {"BENCH_COUNT_ENDS": "0"}}


def counted_ends(settle: bool) -> tuple[int, int]:
    """Job ends in the dashboard's counts (``JobMinute``): those the cluster's sweeps
    counted during the run, and all of them once the remaining ends are counted here
    (with ``settle``; not for "uncounted", whose ends nothing counts)."""
    from django.db.models import F, Sum

    from django_jobprogress.models import JobMinute
    from django_jobprogress.models.sql import database_now
    from django_jobprogress.models.stats import count_ends_through

    def total() -> int:
        sums = JobMinute.objects.aggregate(n=Sum(F("completed") + F("failed") + F("cancelled")))
        return sums["n"] or 0

    by_sweeps = total()
    if settle:
        count_ends_through(database_now("default"), passes=10)
    return by_sweeps, total()


def count_done(variant: str) -> int:
    """Jobs whose outcome is saved: django-q2's result rows for bare jobs; for tracked
    jobs their finished ``JobRecord`` rows (django-q2 keeps no second copy of a
    tracked job's success)."""
    from django_q.models import Task

    from django_jobprogress.models import JobRecord

    if variant == "bare":
        return Task.objects.count()
    return JobRecord.objects.exclude(finished_at=None).count()


def run_round(variant: str, args: argparse.Namespace, conn_max_age: int, log: Path) -> dict:
    from django.db.models import Max, Min
    from django_q.models import Task

    from django_jobprogress.models import JobRecord

    n = args.jobs
    reset(args.redis_url)
    idle = wait_for_quiet(args)

    started = time.perf_counter()
    VARIANTS[variant](n)
    enqueue_seconds = time.perf_counter() - started

    cluster = Cluster(conn_max_age, log, CLUSTER_ENV.get(variant, {}))
    try:
        cluster.start()
        t_start = time.perf_counter()
        t_first = t_all = None
        while True:
            done = count_done(variant)
            now = time.perf_counter()
            if done and t_first is None:
                t_first, done_first = now, done
                cpu_first = cpu_snapshot({cluster.proc.pid: "cluster"})
            if done >= n:
                t_all = now
                cpu = cpu_used(cpu_first, cpu_snapshot({cluster.proc.pid: "cluster"}))
                break
            if not cluster.alive():
                raise RuntimeError(f"the cluster exited early; see {log}")
            if now - t_start > args.timeout:
                raise RuntimeError(f"only {done}/{n} jobs done after {args.timeout:g} s; see {log}")
            time.sleep(POLL)
    finally:
        cluster.stop()

    if variant == "bare":
        stamps = Task.objects.aggregate(first=Min("stopped"), last=Max("stopped"))
    else:
        stamps = JobRecord.objects.aggregate(first=Min("finished_at"), last=Max("finished_at"))
    stamp_span = (stamps["last"] - stamps["first"]).total_seconds()
    span = t_all - t_first
    measured = n - done_first
    by_group, busy, total = cpu
    result = {
        "variant": variant,
        "rate": measured / span if span > 0 else float("inf"),
        "span": span,
        "cpu_ms": {g: by_group[g] / measured * 1000 for g in CPU_GROUPS},
        "busy": busy / total if total else 0.0,
        "other_share": by_group["other"] / busy if busy else 0.0,
        "stamp_rate": (n - 1) / stamp_span if stamp_span > 0 else float("inf"),
        "with_startup_rate": n / (t_all - t_start),
        "enqueue_rate": n / enqueue_seconds,
        "failed": Task.objects.filter(success=False).count(),
        "busy_before": idle,
    }
    if variant in TRACKED:
        records = JobRecord.objects.aggregate(first=Min("finished_at"), last=Max("finished_at"))
        completed = JobRecord.objects.filter(status=JobRecord.Status.COMPLETED).count()
        rspan = (records["last"] - records["first"]).total_seconds()
        result["record_rate"] = (completed - 1) / rspan if rspan > 0 else float("inf")
        result["not_completed"] = n - completed
        result["counted_by_sweeps"], result["counted"] = counted_ends(variant != "uncounted")
    return result


def show_round(i: int, r: dict) -> None:
    line = (
        f"  round {i} {r['variant']:>7}: {r['rate']:6.1f} jobs/s "
        f"({r['span']:.2f} s first..last result saved) | "
        f"worker stamps {r['stamp_rate']:6.1f} | incl. start-up {r['with_startup_rate']:6.1f} | "
        f"enqueue {r['enqueue_rate']:6.1f}/s"
    )
    if "counted" in r:
        line += f" | ends counted {r['counted']} ({r['counted_by_sweeps']} by the sweeps)"
    print(line, flush=True)
    cpu = "  ".join(f"{g} {ms:.2f}" for g, ms in r["cpu_ms"].items())
    noisy = r["other_share"] > NOISY
    print(
        f"      CPU ms per job: {cpu}  (CPUs busy {r['busy']:.0%} during the round, "
        f"{r['busy_before']:.0%} before it){'  NOISY' if noisy else ''}"
    )
    if r["failed"] or r.get("not_completed"):
        print(
            f"    WARNING: {r['failed']} django-q2 failures, "
            f"{r.get('not_completed', 0)} records not completed"
        )


def summarize(conn_max_age: int | str, results: list[dict]) -> None:
    def med(variant: str, key: str) -> float:
        return statistics.median(r[key] for r in results if r["variant"] == variant)

    def best(variant: str, key: str) -> float:
        return max(r[key] for r in results if r["variant"] == variant)

    bares = [r for r in results if r["variant"] == "bare"]
    trackeds = [r for r in results if r["variant"] == "tracked"]
    noisy = sum(r["other_share"] > NOISY for r in results)
    print(
        f"\n  summary, CONN_MAX_AGE={conn_max_age}, {len(bares)} rounds each "
        f"({noisy} of {len(results)} rounds NOISY):"
    )
    for key, label, pick in (
        ("rate", "THROUGHPUT, median", med),
        ("rate", "THROUGHPUT, best round", best),
        ("stamp_rate", "worker stamps, median", med),
        ("with_startup_rate", "incl. start-up, median", med),
        ("enqueue_rate", "enqueue, median", med),
    ):
        bare, tracked = pick("bare", key), pick("tracked", key)
        print(
            f"    {label:<24} bare {bare:7.1f} jobs/s   tracked {tracked:7.1f} jobs/s   "
            f"tracked/bare {tracked / bare:.3f}"
        )
    tasks = [r for r in results if r["variant"] == "tasks"]
    batches = [r for r in results if r["variant"] == "batch"]
    uncounted = [r for r in results if r["variant"] == "uncounted"]
    for variant, label, rounds in (
        ("uncounted", "end not counted, median", uncounted),
        ("tasks", "django.tasks, median", tasks),
        ("batch", "one batch, median", batches),
    ):
        if rounds:
            bare, rate = med("bare", "rate"), med(variant, "rate")
            print(
                f"    {label:<24} bare {bare:7.1f} jobs/s   {variant:<7} "
                f"{rate:7.1f} jobs/s   {variant}/bare {rate / bare:.3f}"
            )
    if batches:
        spans = [r["with_startup_rate"] for r in batches]
        bare_spans = [r["with_startup_rate"] for r in bares]
        print(
            f"    {'one batch, end to end':<24} bare {statistics.median(bare_spans):7.1f} jobs/s"
            f"   batch   {statistics.median(spans):7.1f} jobs/s (cluster start to last end)"
        )
    for variant, rounds in (
        ("bare", bares),
        ("tracked", trackeds),
        ("uncounted", uncounted),
        ("tasks", tasks),
        ("batch", batches),
    ):
        if not rounds:
            continue
        cpu = "  ".join(
            f"{g} {statistics.median(r['cpu_ms'][g] for r in rounds):.2f}" for g in CPU_GROUPS
        )
        print(f"    CPU ms/job, {variant:<9}    {cpu}")
    pairs = [t["rate"] / b["rate"] for b, t in zip(bares, trackeds, strict=True)]
    print("    per-round ratios (throughput): " + "  ".join(f"{p:.3f}" for p in pairs))
    if tasks:
        pairs = [t["rate"] / b["rate"] for b, t in zip(bares, tasks, strict=True)]
        print("    per-round ratios (tasks/bare): " + "  ".join(f"{p:.3f}" for p in pairs))
    if uncounted:
        # The count's cost, round by round: (tracked - uncounted) / bare of the same round.
        drops = [
            (u["rate"] - t["rate"]) / b["rate"]
            for b, t, u in zip(bares, trackeds, uncounted, strict=True)
        ]
        cpu = [
            sum(t["cpu_ms"].values()) - sum(u["cpu_ms"].values())
            for t, u in zip(trackeds, uncounted, strict=True)
        ]
        print(
            "    ratio drop from counting ends, per round ((uncounted - tracked) / bare): "
            + "  ".join(f"{d:+.3f}" for d in drops)
            + f"   median {statistics.median(drops):+.3f}"
        )
        print(
            "    CPU ms/job added by counting ends, per round (tracked - uncounted): "
            + "  ".join(f"{c:+.3f}" for c in cpu)
            + f"   median {statistics.median(cpu):+.3f}"
        )


def main() -> int:
    args = parse_args()
    configure(args)
    setup_django(args.db_name)

    log_dir = Path(tempfile.mkdtemp(prefix="jobprogress-bench-"))
    print(
        f"{args.jobs} no-op jobs per round, {args.workers} workers, Redis broker "
        f"{args.redis_url}, PostgreSQL {args.db_name}, channel layer {args.channel_layer}, "
        f"synchronous_commit {args.synchronous_commit}, server-side binding "
        f"{'on' if args.server_side_binding else 'off'}, {args.rounds} rounds per variant; "
        f"cluster logs in {log_dir} (removed at the end when empty)",
        flush=True,
    )
    extra = ("tasks",) * args.django_tasks + ("batch",) * args.batch
    for conn_max_age in args.conn_max_age:
        for sweep in args.sweep_interval:
            os.environ["BENCH_SWEEP_INTERVAL"] = sweep  # inherited by the cluster
            print(f"\nCONN_MAX_AGE = {conn_max_age}, SWEEP_INTERVAL = {sweep}", flush=True)
            results = []
            for i in range(1, args.rounds + 1):
                tracked = ("tracked", "uncounted") if args.uncounted else ("tracked",)
                if i % 2 == 0:
                    tracked = tracked[::-1]  # neither tracked variant always runs first
                for variant in ("bare", *tracked, *extra):
                    log = log_dir / f"qcluster-cma{conn_max_age}-sweep{sweep}-{i}-{variant}.log"
                    result = run_round(variant, args, conn_max_age, log)
                    results.append(result)
                    show_round(i, result)
            summarize(f"{conn_max_age}, SWEEP_INTERVAL={sweep}", results)
    reset(args.redis_url)
    for log in log_dir.iterdir():  # keep only logs that say something
        if log.stat().st_size == 0:
            log.unlink()
    if not any(log_dir.iterdir()):
        log_dir.rmdir()
    return 0


def _terminate(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds through run_round's finally: stops the cluster


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
