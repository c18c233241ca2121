"""The job that ``bench/push_latency.py`` times (run by ``bench/push_worker.py``)."""

import json
import os
import time

from django_jobprogress import JobProgressMixin


class Ticker(JobProgressMixin):
    """``updates`` calls of ``progress.update(i / updates)``, one every ``interval`` s.

    Around each call the job notes ``time.time_ns()``; it writes these times to
    ``out`` (JSON) at the end, so nothing but the update itself is on the
    measured path. Clients tell the updates apart by their ``progress``. The file
    ``out + ".start"`` appears when the first update is due, so that the script
    can measure CPU time over the updates alone.
    """

    throttle = 0  # every update is written and pushed
    stall_timeout = 600

    def run(self, updates, interval, out, lead_in=0.5):
        progress = self.progress
        before, after = [], []
        time.sleep(lead_in)  # sockets receive the RUNNING snapshot first
        with open(out + ".start", "w"):
            pass
        due = time.perf_counter()
        for i in range(1, updates + 1):
            before.append(time.time_ns())
            progress.update(i / updates)
            after.append(time.time_ns())
            due += interval
            pause = due - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
        with open(out + ".tmp", "w") as f:
            json.dump({"sent": before, "returned": after}, f)
        os.rename(out + ".tmp", out)
        time.sleep(lead_in)  # the last updates arrive before the final snapshot
        return None
