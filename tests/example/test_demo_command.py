"""``python manage.py demo`` as a newcomer runs it: no Redis, no PostgreSQL, one command
that serves the site until Ctrl-C, and clear errors instead of tracebacks."""

import re
import socket
import sqlite3
import urllib.request

import pytest

from tests.example.running import RUNNING, RunningDemo, demo, demo_environment, free_port


@pytest.fixture
def demo_env(tmp_path):
    return demo_environment(tmp_path / "demo.sqlite3")


def test_demo_serves_the_site_and_stops_cleanly_on_ctrl_c(demo_env, tmp_path):
    port = free_port()
    running = RunningDemo(demo_env, port)
    try:
        url = running.read_until(RUNNING, timeout=60).group(1)
        assert url == f"http://127.0.0.1:{port}/"
        running.read_until(r"^  Admin ", timeout=5)  # the last page it lists
        with urllib.request.urlopen(url + "login/", timeout=5) as response:
            assert response.status == 200
            assert b'name="username"' in response.read()
        static = url + "static/django_jobprogress/progress.js"
        with urllib.request.urlopen(static, timeout=5) as response:
            assert response.status == 200

        assert running.stop() == 0
    finally:
        running.stop()
    running.read_until(r"Stopped the worker and the web server\.", timeout=5)
    text = running.text()

    assert "Created the demo user: demo / demo" in text
    assert "django-q2 ORM broker (no Redis)" in text
    assert "  schedules:    demo-heartbeat (every 20s), started by the cluster" in text
    assert re.search(
        rf"  Recurring job +{re.escape(url)}recurring/  \(demo-heartbeat: next run in \d+ s\)",
        text,
    )
    assert re.search(rf"  Zip export +{re.escape(url)}export/\n", text)
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
