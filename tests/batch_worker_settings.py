"""Settings of the qcluster processes started by ``tests/test_batch_workers.py``.

``tests.settings`` tuned for throughput, none of which changes what the test
checks (locking, visibility and isolation are the same):

- persistent connections: with ``CONN_MAX_AGE = 0`` django-q2 opens a new
  PostgreSQL connection for every dequeue, task and saved result (~10 ms each
  here). The clusters are stopped before the test database is dropped;
- ``synchronous_commit = off``: a job makes ~8 commits, each waiting for a WAL
  flush otherwise (only durability after a server crash differs);
- ``save_limit = 0``: with the default (250) every saved result locks all saved
  results (``SELECT ... FOR UPDATE``) to prune them, so the clusters' monitors
  queue behind each other.
"""

from tests.settings import *  # noqa: F403
from tests.settings import DATABASES, Q_CLUSTER

SYNCHRONOUS_COMMIT_OFF = "-c synchronous_commit=off"

DATABASES["default"]["CONN_MAX_AGE"] = 600
DATABASES["default"]["OPTIONS"] = {
    **DATABASES["default"].get("OPTIONS", {}),
    "options": SYNCHRONOUS_COMMIT_OFF,
}
Q_CLUSTER["save_limit"] = 0
