"""Set-up shared by the benchmark scripts."""

from __future__ import annotations

import os
import subprocess
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


def run_children(commands: list[list[str]]) -> int:
    """Run each command in turn from the repository root (a script measures each
    database in a child process, since Django's settings are per process); return
    the first non-zero exit status, or 0. Ctrl-C ends the running child too."""
    status = 0
    for command in commands:
        child = subprocess.Popen(command, cwd=ROOT)
        try:
            status = child.wait() or status
        finally:
            if child.poll() is None:  # interrupted: end the child this script started
                child.terminate()
                child.wait()
    return status
