"""``python manage.py demo`` run as a newcomer runs it, for the tests that start it:
the environment of a fresh shell, a free port, and the running command's output."""

import contextlib
import http.cookiejar
import importlib.util
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import service_missing

ROOT = Path(__file__).resolve().parents[2]
RUNNING = re.compile(r"The demo is running at (http://\S+)")


def demo_environment(database):
    """The environment of a fresh shell: the example's own settings, the SQLite
    database at ``database`` (a path)."""
    if importlib.util.find_spec("daphne") is None:
        service_missing("daphne is not installed (pip install -e '.[test]')")
    env = dict(os.environ)
    for name in ("DJANGO_SETTINGS_MODULE", "REDIS_URL", "JOBPROGRESS_DB"):
        env.pop(name, None)
    env.update(DEMO_SQLITE_PATH=str(database), PYTHONUNBUFFERED="1")
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


class RunningDemo:
    """``manage.py demo`` in a subprocess, its output read line by line."""

    def __init__(self, env, port):
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "demo", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines = queue.Queue()
        self.output = []
        threading.Thread(
            target=lambda: [self.lines.put(line) for line in self.process.stdout], daemon=True
        ).start()

    def text(self):
        self.read_available()
        return "".join(self.output)

    def read_available(self):
        with contextlib.suppress(queue.Empty):
            while True:
                self.output.append(self.lines.get_nowait())

    def read_until(self, pattern, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.1)
            except queue.Empty:
                if self.process.poll() is not None:
                    break
                continue
            self.output.append(line)
            match = re.search(pattern, line)
            if match:
                return match
        pytest.fail(f"no line matching {pattern!r}; output so far:\n{''.join(self.output)}")

    def stop(self):
        """Ctrl-C, as a person stops it; kill it if that does not work."""
        try:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGINT)
            return self.process.wait(timeout=30)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()


def log_in(url, username="demo", password="demo"):
    """A urllib opener signed in to the demo at ``url`` (with its session cookie)."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    with opener.open(url + "login/", timeout=10) as response:
        page = response.read().decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    form = urllib.parse.urlencode(
        {"csrfmiddlewaretoken": token, "username": username, "password": password}
    ).encode()
    with opener.open(url + "login/", data=form, timeout=10) as response:
        assert response.url == url, f"logging in as {username} led to {response.url}"
    return opener
