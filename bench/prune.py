"""``prune_jobs`` on PostgreSQL at a million rows: rows per second and the longest chunk.

Run from the repository root (it fills and empties its own database)::

    .venv/bin/python bench/prune.py                 # 1,000,000 finished rows, chunks of 1000
    .venv/bin/python bench/prune.py --rows 200000 --chunk-size 5000

Fills ``jobprogress_bench_prune`` with finished jobs spread over two weeks
(the same one-statement fill as ``bench/sweep.py``), then runs
``pruning.prune()`` as ``manage.py prune_jobs --older-than 1s`` would and
prints what it deleted, the rate and the longest single chunk transaction.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import setup_django  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="finished rows (1000000)")
    parser.add_argument("--chunk-size", type=int, default=1000, help="rows per chunk (1000)")
    parser.add_argument("--db-name", default="jobprogress_bench_prune")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    os.environ.update(
        DJANGO_SETTINGS_MODULE="bench.settings", BENCH_DB="postgres", BENCH_DB_NAME=args.db_name
    )
    setup_django(args.db_name)

    from datetime import timedelta

    from django.utils import timezone

    from bench.sweep import fill
    from django_jobprogress.pruning import prune

    fill(args.rows)
    started = time.perf_counter()
    report = prune(timezone.now() - timedelta(seconds=1), chunk_size=args.chunk_size)
    seconds = time.perf_counter() - started
    deleted = sum(report.jobs.values())
    print(
        f"pruned {deleted:,} rows in {seconds:.1f} s ({deleted / seconds:,.0f} rows/s), "
        f"{report.chunks} chunks of {args.chunk_size}, longest chunk "
        f"{report.longest_chunk_s * 1000:.0f} ms; by status {report.jobs}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
