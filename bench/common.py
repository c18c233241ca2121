"""Set-up shared by the benchmark scripts."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def ensure_database(name: str) -> None:
    """Create the PostgreSQL database ``name`` if it is missing (libpq's PG* settings)."""
    import psycopg
    from psycopg import sql

    conninfo = dict(
        dbname="postgres",
        user=os.environ.get("PGUSER", "postgres"),
        host=os.environ.get("PGHOST", "127.0.0.1"),
        port=os.environ.get("PGPORT", "5432"),
    )
    with psycopg.connect(**conninfo, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            print(f"created database {name}")


def setup_django(db_name: str) -> None:
    """Create the PostgreSQL database if missing, set Django up (settings from the
    environment the script configured) and migrate."""
    ensure_database(db_name)

    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


def run_per_database(databases: list[str]) -> int:
    """Run this script again once per database, each in its own process (Django's
    settings are per process), with the same options; argparse keeps the last
    ``--db``. Returns the first non-zero exit status, or 0. Ctrl-C ends the
    running child too."""
    script = str(Path(sys.argv[0]).resolve())
    status = 0
    for db in databases:
        child = subprocess.Popen([sys.executable, script, *sys.argv[1:], "--db", db], cwd=ROOT)
        try:
            status = child.wait() or status
        finally:
            if child.poll() is None:  # interrupted: end the child this script started
                child.terminate()
                child.wait()
    return status


# -- CPU accounting from /proc -------------------------------------------------------

HZ = os.sysconf("SC_CLK_TCK")


def machine_cpu() -> tuple[float, float]:
    """The machine's busy and total CPU seconds so far (idle and iowait are not busy)."""
    with open("/proc/stat") as f:
        ticks = [int(v) for v in f.readline().split()[1:]]
    idle = ticks[3] + ticks[4]
    return (sum(ticks) - idle) / HZ, sum(ticks) / HZ


def cpu_snapshot(
    groups: dict[int, str], me: str = "this script"
) -> tuple[dict[int, tuple[str, float]], float, float]:
    """CPU seconds used so far by every process, named by its process group
    (``groups``: pgid -> name; else ``postgres``, ``redis``, ``me`` for this
    process, ``other``), and the machine's busy and total CPU seconds."""
    processes: dict[int, tuple[str, float]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                raw = f.read()
        except OSError:
            continue
        comm = raw[raw.index("(") + 1 : raw.rindex(")")]
        fields = raw[raw.rindex(")") + 2 :].split()
        pid, pgid = int(entry), int(fields[2])
        seconds = (int(fields[11]) + int(fields[12])) / HZ
        if pgid in groups:
            name = groups[pgid]
        elif comm.startswith("postgres"):
            name = "postgres"
        elif comm.startswith("redis"):
            name = "redis"
        elif pid == os.getpid():
            name = me
        else:
            name = "other"
        processes[pid] = (name, seconds)
    return (processes, *machine_cpu())


def machine_busy(seconds: float = 1.0) -> float:
    """Fraction of the machine's CPU time that was busy over the next ``seconds``."""
    busy0, total0 = machine_cpu()
    time.sleep(seconds)
    busy1, total1 = machine_cpu()
    return (busy1 - busy0) / (total1 - total0) if total1 > total0 else 0.0


def wait_until_idle(below: float, patience: float) -> float:
    """Wait (up to ``patience`` s) for the machine to be less than ``below`` busy,
    so other work does not skew a round; return the busy fraction seen last."""
    deadline = time.monotonic() + patience
    busy = machine_busy()
    while busy >= below and time.monotonic() < deadline:
        busy = machine_busy()
    return busy
