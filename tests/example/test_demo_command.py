"""``python manage.py demo`` as a newcomer runs it: no Redis, no PostgreSQL, one command
that serves the site until Ctrl-C, and clear errors instead of tracebacks."""

import importlib.util
import os
import queue
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import service_missing

ROOT = Path(__file__).resolve().parents[2]
RUNNING = re.compile(r"The demo is running at (http://\S+)")


@pytest.fixture
def demo_env(tmp_path):
    """The environment of a fresh shell: the example's own settings, a throwaway DB."""
    if importlib.util.find_spec("daphne") is None:
        service_missing("daphne is not installed (pip install -e '.[test]')")
    env = dict(os.environ)
    for name in ("DJANGO_SETTINGS_MODULE", "REDIS_URL", "JOBPROGRESS_DB"):
        env.pop(name, None)
    env.update(DEMO_SQLITE_PATH=str(tmp_path / "demo.sqlite3"), PYTHONUNBUFFERED="1")
    return env


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def demo(env, *args, timeout=30):
    return subprocess.run(
        [sys.executable, "manage.py", "demo", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_demo_serves_the_site_and_stops_cleanly_on_ctrl_c(demo_env, tmp_path):
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "manage.py", "demo", "--port", str(port)],
        cwd=ROOT,
        env=demo_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines = queue.Queue()
    output = []
    threading.Thread(
        target=lambda: [lines.put(line) for line in process.stdout], daemon=True
    ).start()

    def read_until(pattern, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = lines.get(timeout=0.1)
            except queue.Empty:
                if process.poll() is not None:
                    break
                continue
            output.append(line)
            match = re.search(pattern, line)
            if match:
                return match
        pytest.fail(f"no line matching {pattern!r}; output so far:\n{''.join(output)}")

    try:
        url = read_until(RUNNING, timeout=60).group(1)
        assert url == f"http://127.0.0.1:{port}/"
        with urllib.request.urlopen(url + "login/", timeout=5) as response:
            assert response.status == 200
            assert b'name="username"' in response.read()
        static = url + "static/django_jobprogress/progress.js"
        with urllib.request.urlopen(static, timeout=5) as response:
            assert response.status == 200

        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    read_until(r"Stopped the worker and the web server\.", timeout=5)
    text = "".join(output)

    assert "Created the demo user: demo / demo" in text
    assert "django-q2 ORM broker (no Redis)" in text
    assert "Cluster" in text and "has stopped" in text  # qcluster shut down, not killed
    assert "Traceback" not in text
    with socket.socket() as probe:  # daphne is gone: nothing listens on the port
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", port))
    with sqlite3.connect(tmp_path / "demo.sqlite3") as db:
        users = db.execute("SELECT username, is_superuser FROM auth_user").fetchall()
    assert users == [("demo", 1)]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--port", "abc"], "CommandError: invalid port 'abc': give a number from 1 to 65535"),
        (["--port", "70000"], "CommandError: invalid port 70000: give a number from 1 to 65535"),
        (["--host", "no-such-host.invalid"], "CommandError: invalid host 'no-such-host.invalid'"),
    ],
)
def test_bad_options_are_named_without_a_traceback(demo_env, args, message):
    result = demo(demo_env, *args)
    assert result.returncode == 1
    assert result.stderr.startswith(message), result.stderr
    assert "Traceback" not in result.stderr


def test_a_port_in_use_is_named(demo_env):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = demo(demo_env, "--port", str(port))
    assert result.returncode == 1
    assert result.stderr.startswith(f"CommandError: cannot listen on 127.0.0.1:{port}: ")
    assert "Traceback" not in result.stderr


def test_an_unreachable_redis_is_named(demo_env):
    demo_env["REDIS_URL"] = "redis://127.0.0.1:1/0"
    result = demo(demo_env, "--port", str(free_port()))
    assert result.returncode == 1
    assert result.stderr.startswith("CommandError: Redis at redis://127.0.0.1:1/0 does not answer")
