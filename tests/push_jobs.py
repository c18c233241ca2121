"""Tasks for ``tests/test_live_push.py``, run by a real qcluster worker process.

The test controls a gated job from its own process through files: the job
reports step ``i`` only once the file ``<gate_dir>/<i>`` exists.
"""

import time
from pathlib import Path

from django_jobprogress import progress_task

GATE_TIMEOUT = 30.0


def wait_for_gate(path: Path, timeout: float = GATE_TIMEOUT) -> None:
    """Wait until ``path`` exists (polled every 10 ms); fail the job after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() >= deadline:
            raise TimeoutError(f"gate {path} was not opened within {timeout:g} s")
        time.sleep(0.01)


@progress_task(throttle=0)
def gated_steps(job, gate_dir, steps):
    """Counts ``steps`` steps; step ``i`` is reported once the test opens gate ``i``."""
    job.progress.stage("stepping")
    job.progress.total = steps
    for step in range(1, steps + 1):
        wait_for_gate(Path(gate_dir) / str(step))
        job.progress.increment()
    return {"steps": steps}


@progress_task(throttle=0)
def chatty(job, writes):
    """``writes`` persisted progress writes as fast as it can (each one is pushed)."""
    job.progress.stage("chatting")
    job.progress.total = writes
    for _ in range(writes):
        job.progress.increment()
    return {"writes": writes}
