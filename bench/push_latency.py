"""Latency of pushed progress: from ``progress.update()`` in a worker process to a
WebSocket client, through a real ASGI server and channels-redis.

Run from the repository root::

    .venv/bin/python bench/push_latency.py                  # hub and plain, daphne, pub/sub layer
    .venv/bin/python bench/push_latency.py --server daphne uvicorn --design hub plain \\
        --layer pubsub core --rounds 3

Each measurement starts a job (``bench.push_tasks.Ticker``, throttle 0) in its own
worker process through ``run_job``; the job notes ``time.time_ns()`` before each
``progress.update(i / n)``, and client processes note when each socket first
holds a snapshot at or past update ``i``. Same machine, same clock: latency is
the difference. Measured:

1. one socket, ``--updates`` updates (1000) every ``--interval`` s (10 ms);
2. fan-out: ``--sockets`` sockets (500) on one job, ``--fanout-updates`` (200)
   every ``--fanout-interval`` s (50 ms); per update the time until EVERY socket
   has it (the max over sockets), then p50/p99 over the updates;
3. for comparison (``--baselines``): the embedded default (in-memory layer, the
   hub re-reads the row every ``WATCH_INTERVAL``) and polling the JSON view
   every 500 ms (celery-progress's default), with the same job and clock.

See bench/README.md for the method and the figures.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import selectors
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import (  # noqa: E402
    HZ,
    cpu_snapshot,
    machine_cpu,
    setup_django,
    wait_until_idle,
)

STOP_GRACE = 10.0
CLIENT_GRACE = 30.0  # s the clients get, after the job, until the server has closed every socket
NOISY = 0.10  # flagged when unrelated processes used more than this share of the machine


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--updates", type=int, default=1000, help="single-socket updates (1000)")
    parser.add_argument("--interval", type=float, default=0.01, help="s between them (0.01)")
    parser.add_argument("--sockets", type=int, default=500, help="fan-out sockets (500)")
    parser.add_argument("--fanout-updates", type=int, default=200, help="fan-out updates (200)")
    parser.add_argument("--fanout-interval", type=float, default=0.05, help="s between them (0.05)")
    parser.add_argument(
        "--clients", type=int, default=2, help="client processes sharing the sockets (2)"
    )
    parser.add_argument(
        "--warmup", type=int, default=20, help="updates sent first and not counted (20)"
    )
    parser.add_argument("--server", nargs="+", choices=["daphne", "uvicorn"], default=["daphne"])
    parser.add_argument("--design", nargs="+", choices=["hub", "plain"], default=["hub", "plain"])
    parser.add_argument("--layer", nargs="+", choices=["pubsub", "core"], default=["pubsub"])
    parser.add_argument(
        "--only",
        choices=["latency", "fanout"],
        help="run only the single-socket latency or only the fan-out measurement",
    )
    parser.add_argument(
        "--baselines",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also measure the embedded default and 500 ms JSON polling (on)",
    )
    parser.add_argument(
        "--tap",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="split the single-socket latency at Redis with a pub/sub subscriber (pubsub; on)",
    )
    parser.add_argument("--poll-interval", type=float, default=0.5, help="JSON polling (0.5 s)")
    parser.add_argument("--rounds", type=int, default=1, help="repeat everything; medians (1)")
    parser.add_argument(
        "--compression",
        action="store_true",
        help="clients offer permessage-deflate as browsers do (uvicorn accepts it, daphne not)",
    )
    parser.add_argument(
        "--client-loop",
        choices=["uvloop", "asyncio"],
        default="uvloop",
        help="event loop of the client processes (uvloop: less client CPU on the shared cores)",
    )
    parser.add_argument(
        "--uvicorn-ws",
        default="auto",
        help="uvicorn's --ws implementation: auto, websockets, websockets-sansio, wsproto",
    )
    parser.add_argument(
        "--profile",
        metavar="DIR",
        help="py-spy the server during each fan-out (slows it: figures are then not clean); "
        "prints the top functions and keeps the raw stacks in DIR",
    )
    parser.add_argument("--db-name", default="jobprogress_bench_push", help="PostgreSQL database")
    parser.add_argument(
        "--redis-url",
        default="redis://127.0.0.1:6379/13",
        help="channel layer's Redis; this database is FLUSHED at the start",
    )
    parser.add_argument(
        "--idle-below",
        type=float,
        default=0.25,
        metavar="FRACTION",
        help="before each measurement, wait (up to --idle-wait s) until the CPUs were less "
        "than this busy over one second: the machine may be shared (0.25)",
    )
    parser.add_argument("--idle-wait", type=float, default=60.0, help="see --idle-below (60)")
    parser.add_argument(
        "--retries",
        type=int,
        default=2,
        help="measure again, up to this many times, when unrelated processes used more than "
        f"{NOISY * 100:.0f}%% of the CPUs during a measurement (NOISY); the least disturbed try "
        "counts (2)",
    )
    parser.add_argument("--port", type=int, default=0, help="server port (0: a free one)")
    return parser.parse_args()


# -- processes -------------------------------------------------------------------


class Proc:
    """A subprocess in its own process group, killed whatever happens to the script."""

    live: set[Proc] = set()

    def __init__(self, name: str, argv: list[str], env: dict, log: Path, pipe=False) -> None:
        self.name = name
        self.log = log
        with open(log, "ab") as out:
            self.popen = subprocess.Popen(
                argv,
                cwd=ROOT,
                env=env,
                stdout=subprocess.PIPE if pipe else out,
                stderr=out,
                start_new_session=True,  # Ctrl-C reaches only us; we stop it
            )
        Proc.live.add(self)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def wait(self, timeout: float) -> int:
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"{self.name} still running after {timeout:g} s") from None

    def wait_for_file(self, path: Path, timeout: float) -> None:
        """Wait until ``path`` exists, while this process runs."""
        deadline = time.monotonic() + timeout
        while not path.exists():
            if not self.alive():
                tail = self.log.read_text()[-2000:] if self.log.exists() else ""
                raise RuntimeError(f"{self.name} exited early; see {self.log}:\n{tail}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"no {path} after {timeout:g} s; see {self.log}")
            time.sleep(0.002)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.alive():
            self.popen.send_signal(sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(STOP_GRACE)
        self.kill()

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait()
        if self.popen.stdout:
            self.popen.stdout.close()
        Proc.live.discard(self)


def wait_ready(clients: list[Proc], timeout: float) -> int:
    """Wait for each client's ``READY n`` line; return the sockets opened."""
    selector = selectors.DefaultSelector()
    for c in clients:
        selector.register(c.popen.stdout, selectors.EVENT_READ, c)
    opened, pending = 0, set(clients)
    deadline = time.monotonic() + timeout
    while pending:
        left = deadline - time.monotonic()
        if left <= 0:
            raise RuntimeError(f"clients not ready after {timeout:g} s")
        for key, _ in selector.select(left):
            line = key.fileobj.readline().decode()
            client = key.data
            if not line:
                raise RuntimeError(f"{client.name} exited before it was ready; see {client.log}")
            if line.startswith("READY"):
                opened += int(line.split()[1])
                pending.discard(client)
                selector.unregister(key.fileobj)
    selector.close()
    return opened


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port: int, server: Proc, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not server.alive():
            raise RuntimeError(f"the server exited; see {server.log}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.1)
    raise RuntimeError(f"the server did not listen on {port} in {timeout:g} s; see {server.log}")


# -- CPU accounting --------------------------------------------------------------


class CpuSampler:
    """CPU seconds of the processes of one measurement, sampled while it runs.

    The processes (by name: server, clients, worker, postgres, redis) are found
    once by a scan of /proc; then only their own /proc entries and /proc/stat
    are read at each ``sample()``, which is cheap enough to do every 20 ms. A
    process that exits keeps its last value. ``other`` is the machine's busy
    time less theirs.
    """

    def __init__(self, groups: dict[int, str]) -> None:
        processes, _, _ = cpu_snapshot(groups, me="script")
        self.names = {pid: name for pid, (name, _) in processes.items() if name != "other"}
        self.last = {pid: seconds for pid, (_, seconds) in processes.items()}
        self.samples: list[tuple[int, dict[str, float], float, float]] = []
        self.sample()

    def sample(self) -> None:
        used: dict[str, float] = {}
        for pid, name in self.names.items():
            try:
                with open(f"/proc/{pid}/stat") as f:
                    fields = f.read().rpartition(")")[2].split()
                self.last[pid] = (int(fields[11]) + int(fields[12])) / HZ
            except (OSError, IndexError):
                pass
            used[name] = used.get(name, 0.0) + self.last[pid]
        busy, total = machine_cpu()
        self.samples.append((time.time_ns(), used, busy, total))

    def used_until(self, end_ns: int) -> tuple[dict[str, float], float, float, bool]:
        """CPU seconds by name from the first sample to the first one at or after
        ``end_ns``, the machine's busy and total seconds, and whether such a sample
        exists (False: the window was cut short, the figures are too low)."""
        first = self.samples[0]
        last = next((s for s in self.samples if s[0] >= end_ns), None)
        covered = last is not None
        last = last or self.samples[-1]
        used = {name: last[1][name] - first[1].get(name, 0.0) for name in last[1]}
        busy, total = last[2] - first[2], last[3] - first[3]
        used["other"] = max(0.0, busy - sum(used.values()))
        return used, busy, total, covered


# -- set-up ----------------------------------------------------------------------


def configure(args: argparse.Namespace) -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = "bench.push_settings"
    os.environ["BENCH_DB"] = "postgres"
    os.environ["BENCH_DB_NAME"] = args.db_name
    os.environ["BENCH_CONN_MAX_AGE"] = "600"
    os.environ["BENCH_PUSH_REDIS"] = args.redis_url
    os.environ["BENCH_PUSH_LAYER"] = "memory"  # this script pushes nothing itself
    os.environ["PYTHONPATH"] = str(ROOT)


# -- one configuration: a server, and measurements against it ----------------------


class Setup:
    """An ASGI server serving one (server, design, layer) configuration."""

    def __init__(self, args: argparse.Namespace, server: str, design: str, layer: str, tmp: Path):
        self.args, self.server, self.design, self.layer, self.tmp = args, server, design, layer, tmp
        self.env = dict(os.environ, BENCH_PUSH_LAYER=layer, BENCH_PUSH_DESIGN=design)
        self.port = args.port or free_port()
        self.proc: Proc | None = None

    @property
    def label(self) -> str:
        layer = "memory (embedded)" if self.layer == "memory" else self.layer
        return f"{self.server}/{self.design}/{layer}"

    def start(self) -> None:
        py, app, port = sys.executable, "bench.push_asgi:application", str(self.port)
        if self.server == "daphne":
            argv = [py, "-m", "daphne", "-b", "127.0.0.1", "-p", port, app]
        else:
            argv = [py, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", port]
            argv += ["--log-level", "warning", "--no-access-log", "--ws", self.args.uvicorn_ws]
        log = self.tmp / f"server-{self.server}-{self.design}-{self.layer}.log"
        self.proc = Proc(self.server, argv, self.env, log)
        wait_listening(self.port, self.proc)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()
            self.proc = None

    def measure(self, kind: str, sockets: int, updates: int, interval: float) -> dict:
        """Run one job with ``sockets`` sockets (or a JSON poller, ``kind='poll'``)."""
        from bench.push_tasks import Ticker
        from django_jobprogress.adapters.queue_memory import InMemoryQueue

        args, total = self.args, self.args.warmup + updates
        sent_file = self.tmp / "sent.json"
        sent_file.unlink(missing_ok=True)
        Path(f"{sent_file}.start").unlink(missing_ok=True)
        record = Ticker.enqueue(total, interval, str(sent_file))
        InMemoryQueue.clear()  # the worker process below runs it
        token = record.access_token()
        if kind == "poll":
            url = f"http://127.0.0.1:{self.port}/jp/jobs/{record.pk}/?token={token}"
        else:
            url = f"ws://127.0.0.1:{self.port}/ws/jobs/{record.pk}/?token={token}"
        run_seconds = total * interval + 30 + sockets / 20
        n_clients = min(args.clients, sockets) if kind == "ws" else 1
        clients = []
        for c in range(n_clients):
            share = sockets // n_clients + (c < sockets % n_clients)
            argv = [sys.executable, "-m", "bench.push_client", kind, "--url", url]
            argv += ["--updates", str(total), "--out", str(self.tmp / f"client{c}.json")]
            # The clients wait through the idle wait and the worker's start-up too.
            client_timeout = run_seconds + args.idle_wait + 120
            argv += ["--sockets", str(share), "--timeout", str(client_timeout)]
            argv += ["--interval", str(args.poll_interval), "--loop", args.client_loop]
            if args.compression:
                argv.append("--compression")
            if kind == "ws" and c == 0 and self.layer == "pubsub" and args.tap:
                argv += ["--tap-redis", args.redis_url, "--tap-channel", tap_channel(record.pk)]
            clients.append(Proc(f"client{c}", argv, self.env, self.tmp / "clients.log", pipe=True))
        worker = profiler = None
        try:
            opened = wait_ready(clients, 60 + sockets / 10)
            idle_before = wait_until_idle(args.idle_below, args.idle_wait)
            groups = {self.proc.pid: "server", **{c.pid: "clients" for c in clients}}
            worker = Proc(
                "worker",
                [sys.executable, "-m", "bench.push_worker", str(record.pk)],
                self.env,
                self.tmp / "worker.log",
            )
            groups[worker.pid] = "worker"
            # CPU is counted (and the server profiled) from the first update until the
            # last one has reached every socket.
            worker.wait_for_file(Path(f"{sent_file}.start"), 60)
            if args.profile and kind == "ws" and sockets > 1:
                profiler = self.start_profiler()
            sampler = CpuSampler(groups)
            deadline = time.monotonic() + run_seconds
            while worker.alive() and time.monotonic() < deadline:
                time.sleep(0.02)
                sampler.sample()
                if profiler is not None and sent_file.exists():
                    profiler.stop(signal.SIGINT)  # py-spy writes its output on SIGINT
                    profiler = None
            if worker.wait(run_seconds) != 0:
                raise RuntimeError(f"the worker failed; see {worker.log}")
            # The clients end when the server has closed all their sockets (after the
            # final snapshot; CPU is still sampled meanwhile, for a server running
            # behind); past a grace period they are told to stop waiting, and what
            # they miss is reported.
            deadline = time.monotonic() + CLIENT_GRACE
            while any(c.alive() for c in clients) and time.monotonic() < deadline:
                time.sleep(0.02)
                sampler.sample()
            for c in clients:
                if c.alive():
                    c.popen.send_signal(signal.SIGUSR1)
            for c in clients:
                if c.wait(120) != 0:
                    raise RuntimeError(f"{c.name} failed; see {c.log}")
        finally:
            for p in (*clients, worker, profiler):
                if p is not None:
                    p.stop()
        lists = ("first", "messages", "close_codes", "extensions", "errors")
        seen: dict = {key: [] for key in lists}
        seen["tapped"], seen["not_closed"] = None, 0
        for c in range(n_clients):
            with open(self.tmp / f"client{c}.json") as f:
                part = json.load(f)
            for key in lists:
                seen[key] += part[key]
            seen["tapped"] = seen["tapped"] or part["tapped"]
            seen["not_closed"] += part["not_closed"]
        with open(sent_file) as f:
            stamps = json.load(f)
        result = analyse(stamps, seen, args.warmup, total, opened, sockets)
        cpu, busy, capacity, covered = sampler.used_until(result["last_receipt"])
        result.update(cpu=cpu, kind=kind, sockets=sockets, updates=updates, covered=covered)
        result.update(busy=busy / capacity if capacity else 0.0, idle_before=idle_before)
        result["capacity"] = capacity or 1.0
        result["noisy"] = cpu.get("other", 0.0) > NOISY * capacity
        if args.profile and kind == "ws" and sockets > 1:
            show_profile(self.tmp / f"profile-{self.label.replace('/', '-')}.txt")
        return result

    def start_profiler(self) -> Proc:
        name = f"profile-{self.label.replace('/', '-')}"
        out = Path(self.args.profile) / f"{name}-{int(time.time())}.txt"
        Path(self.args.profile).mkdir(parents=True, exist_ok=True)
        (self.tmp / f"{name}.txt").unlink(missing_ok=True)
        argv = [str(Path(sys.executable).parent / "py-spy"), "record", "--format", "raw"]
        argv += ["--rate", "250", "--nonblocking", "-o", str(out), "--pid", str(self.proc.pid)]
        proc = Proc("py-spy", argv, self.env, self.tmp / "py-spy.log")
        with contextlib.suppress(FileExistsError):
            os.symlink(out, self.tmp / f"{name}.txt")
        return proc


def tap_channel(job_id) -> str:
    """The Redis pub/sub channel of the job's group in channels-redis's pub/sub layer."""
    from django.conf import settings

    from django_jobprogress.groups import job_group

    return f"{settings.PUSH_PREFIX}__group__{job_group(job_id)}"


def analyse(stamps: dict, seen: dict, warmup: int, total: int, opened: int, wanted: int) -> dict:
    sent = stamps["sent"]
    counted = range(warmup + 1, total + 1)
    worst, pairs, missing = [], [], 0
    for i in counted:
        lat = []
        for first in seen["first"]:
            if first[i] is None:
                missing += 1
            else:
                lat.append((first[i] - sent[i - 1]) / 1e6)
        pairs += lat
        if lat:
            worst.append(max(lat))
    call = [(r - s) / 1e6 for s, r in zip(stamps["sent"], stamps["returned"], strict=True)]
    last = [first[total] for first in seen["first"] if first[total] is not None]
    to_redis, from_redis = [], []
    tapped = seen.get("tapped")
    if tapped and len(seen["first"]) == 1:
        for i in counted:
            if tapped[i] is not None and seen["first"][0][i] is not None:
                to_redis.append((tapped[i] - sent[i - 1]) / 1e6)
                from_redis.append((seen["first"][0][i] - tapped[i]) / 1e6)
    return {
        # Messages that reached Redis for the counted updates (fewer: the worker coalesced).
        "published": len({tapped[i] for i in counted} - {None}) if tapped else 0,
        "to_redis": to_redis,
        "from_redis": from_redis,
        "last_receipt": max(last) if last else 2**63,
        "worst": worst,
        "pairs": pairs,
        "missing": missing,
        "opened": opened,
        "wanted": wanted,
        "messages": statistics.median(seen["messages"]) if seen["messages"] else 0,
        "close_codes": sorted({str(c) for c in seen["close_codes"]}),
        "extensions": seen["extensions"],
        "errors": seen["errors"][:3],
        "n_errors": len(seen["errors"]),
        "not_closed": seen["not_closed"],
        "update_call_ms": statistics.median(call[warmup:]),
    }


def pct(values: list[float], p: float) -> float:
    """The p-th percentile (nearest rank) of ``values``."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, round(p / 100 * len(ordered) + 0.5 - 1e-9))
    return ordered[min(rank, len(ordered)) - 1]


def show(label: str, r: dict) -> None:
    what = "JSON poll" if r["kind"] == "poll" else f"{r['sockets']} socket(s)"
    worst = r["worst"] or [float("nan")]
    head = (
        f"  {label:<28} {what:<12} {len(worst):4d} updates: "
        f"p50 {pct(worst, 50):7.1f} ms  p99 {pct(worst, 99):7.1f} ms  max {max(worst):7.1f} ms"
    )
    if r["sockets"] > 1:
        head += f"  (all sockets; per socket p50 {pct(r['pairs'], 50):.1f} ms)"
    print(head, flush=True)
    n = r["sockets"] * r["updates"]
    cpu = r["cpu"]
    per = "  ".join(
        f"{k} {cpu.get(k, 0.0) * 1e6 / r['updates']:.0f}"
        for k in ("server", "worker", "clients", "redis", "postgres", "other")
    )
    server_each = cpu.get("server", 0.0) * 1e6 / n
    notes = [
        f"update() call p50 {r['update_call_ms']:.2f} ms",
        f"{r['messages']:.0f} msgs/socket",
        f"server {server_each:.0f} us CPU per socket-update",
    ]
    if r["opened"] < r["wanted"] or r["n_errors"]:
        notes.append(f"OPENED {r['opened']}/{r['wanted']}, {r['n_errors']} errors {r['errors']}")
    notes.append(f"CPUs {r['busy']:.0%} busy (before {r['idle_before']:.0%})")
    if r["noisy"]:
        notes.append("NOISY")
    if not r["covered"]:
        notes.append("CPU window cut short: figures too low")
    if r["published"]:
        notes.append(f"{r['published']} of {len(r['worst'])} updates published")
    if r["not_closed"]:
        notes.append(f"{r['not_closed']} SOCKETS NOT CLOSED {CLIENT_GRACE:g} s after the job")
    if r["missing"]:
        notes.append(f"MISSING {r['missing']} socket-updates")
    if r["extensions"] and r["extensions"] != [""]:
        notes.append(f"extensions {r['extensions']}")
    print(f"      CPU us per update: {per} | " + ", ".join(notes), flush=True)
    if r["to_redis"]:
        a, b = r["to_redis"], r["from_redis"]
        print(
            f"      split at Redis (a pub/sub subscriber in the client): update() -> Redis "
            f"p50 {pct(a, 50):.2f} / p99 {pct(a, 99):.2f} ms, Redis -> socket "
            f"p50 {pct(b, 50):.2f} / p99 {pct(b, 99):.2f} ms",
            flush=True,
        )


def show_profile(path: Path, top: int = 18) -> None:
    """Top functions of a py-spy raw (collapsed) profile: self and inclusive samples."""
    if not path.exists():
        print("      (no profile)")
        return
    own: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        frames = stack.split(";")
        total += n
        leaf = frames[-1]
        own[leaf] = own.get(leaf, 0) + n
        for f in set(frames):
            inclusive[f] = inclusive.get(f, 0) + n
    print(f"      profile of the server ({total} busy samples), {path.resolve()}:")
    for title, table in (("self", own), ("inclusive", inclusive)):
        print(f"        top {title}:")
        for frame, n in sorted(table.items(), key=lambda kv: -kv[1])[:top]:
            print(f"          {n / total:6.1%}  {frame}")


def summarize(results: dict[tuple[str, str], list[dict]]) -> None:
    print("\nsummary (median over rounds of each figure; NOISY: rounds disturbed by other work):")
    print(
        f"  {'configuration':<28} {'measure':<10} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}"
        f" {'server us/socket-update':>24}  NOISY"
    )
    for (label, what), rounds in results.items():

        def med(f, rounds=rounds):
            return statistics.median(f(r) for r in rounds)

        p50 = med(lambda r: pct(r["worst"], 50))
        p99 = med(lambda r: pct(r["worst"], 99))
        top = med(lambda r: max(r["worst"] or [float("nan")]))
        server = med(lambda r: r["cpu"].get("server", 0.0) * 1e6 / (r["sockets"] * r["updates"]))
        noisy = sum(r["noisy"] for r in rounds)
        print(
            f"  {label:<28} {what:<10} {p50:8.1f} {p99:8.1f} {top:8.1f} {server:24.0f}"
            f"  {noisy}/{len(rounds)}"
        )


def reset(args: argparse.Namespace) -> None:
    import redis
    from django.db import connection

    from django_jobprogress.models import JobRecord

    redis.Redis.from_url(args.redis_url).flushdb()
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE " + connection.ops.quote_name(JobRecord._meta.db_table))


def main() -> int:
    args = parse_args()
    configure(args)
    setup_django(args.db_name)
    reset(args)

    tmp = Path(tempfile.mkdtemp(prefix="jobprogress-push-"))
    setups = [
        (server, design, layer)
        for server in args.server
        for layer in args.layer
        for design in args.design
    ]
    if args.baselines:
        setups.append((args.server[0], "hub", "memory"))
    print(
        f"PostgreSQL {args.db_name}, Redis {args.redis_url}, {args.rounds} round(s); "
        f"latency: 1 socket, {args.updates} updates every {args.interval * 1000:g} ms; "
        f"fan-out: {args.sockets} sockets, {args.fanout_updates} updates every "
        f"{args.fanout_interval * 1000:g} ms; {args.warmup} warm-up updates not counted; "
        f"logs in {tmp}",
        flush=True,
    )
    results: dict[tuple[str, str], list[dict]] = {}
    for round_no in range(1, args.rounds + 1):
        print(f"\nround {round_no}", flush=True)
        for server, design, layer in setups:
            setup = Setup(args, server, design, layer, tmp)
            plan = []
            if args.only != "fanout":
                plan.append(("ws", 1, args.updates, args.interval, "1 socket"))
            if args.only != "latency" and layer != "memory":
                plan.append(
                    ("ws", args.sockets, args.fanout_updates, args.fanout_interval, "fan-out")
                )
            if layer == "memory" and args.only != "fanout":
                plan.append(("poll", 1, args.updates, args.interval, "JSON poll"))
            try:
                setup.start()
                for kind, sockets, updates, interval, what in plan:
                    label = setup.label if kind == "ws" else f"{server}/JSON view"
                    tries = []
                    for _ in range(1 + args.retries):
                        tries.append(setup.measure(kind, sockets, updates, interval))
                        show(label, tries[-1])
                        if not tries[-1]["noisy"]:
                            break
                    # The least disturbed try counts.
                    kept = min(tries, key=lambda r: r["cpu"].get("other", 0.0) / r["capacity"])
                    results.setdefault((label, what), []).append(kept)
            finally:
                setup.stop()
    summarize(results)
    reset(args)
    for log in tmp.iterdir():
        if log.is_file() and log.stat().st_size == 0:
            log.unlink()
    return 0


def _terminate(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with it ignored
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("\ninterrupted")
        sys.exit(130)
    finally:
        for proc in list(Proc.live):
            proc.kill()
