"""``python manage.py demo``: the example site, ready to try, in one command.

Migrates the database (which also syncs the recurring schedule of the settings),
creates (or resets) the demo user, then runs a django-q2 cluster, which starts
the schedule's runs, and daphne side by side until Ctrl-C, which stops both. Needs no server:
SQLite and django-q2's ORM broker by default; with ``REDIS_URL`` set, the
settings switch the broker and the channel layer to Redis (the two processes
inherit the environment).
"""

import collections
import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import webbrowser

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError
from django.urls import reverse

from django_jobprogress.models import Schedule
from example_project.demo import use_cases

STOP_GRACE = 10.0  # seconds each process gets to stop before it is killed
START_TIMEOUT = 30.0  # seconds daphne gets to accept connections
WILDCARD_HOSTS = ("0.0.0.0", "::")


def parse_port(value):
    try:
        port = int(value)
    except (TypeError, ValueError):
        raise CommandError(f"invalid port {value!r}: give a number from 1 to 65535") from None
    if not 1 <= port <= 65535:
        raise CommandError(f"invalid port {port}: give a number from 1 to 65535")
    return port


def check_port_free(host, port):
    """Raise a ``CommandError`` naming ``host:port`` unless a server could listen there."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise CommandError(f"invalid host {host!r}: {exc.strerror}") from None
    family, kind, proto, _name, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as daphne does
        try:
            probe.bind(address)
        except OSError as exc:
            raise CommandError(
                f"cannot listen on {host}:{port}: {exc.strerror} "
                "(is another server running there? try --port)"
            ) from None


def client_host(host):
    """Where a browser on this machine reaches a server bound to ``host``."""
    if host == "0.0.0.0":
        return "127.0.0.1"
    if host == "::":
        return "::1"
    return host


def url_host(host):
    return f"[{host}]" if ":" in host else host


def redis_url():
    """The Redis the cluster uses, or None for the ORM broker."""
    return getattr(settings, "Q_CLUSTER", {}).get("redis") or None


def schedules_text():
    """ "demo-heartbeat (every 20s), started by the cluster", or "none"."""
    parts = []
    for row in Schedule.objects.order_by("name"):
        try:
            when = row.spec.describe()
        except (TypeError, ValueError):
            when = "definition unreadable: run manage.py jobprogress_schedules"
        parts.append(f"{row.name} ({when})")
    return ", ".join(parts) + ", started by the cluster" if parts else "none"


def pages():
    """(title, path, note) of each page of the site, as the home page lists them."""
    found = [
        (case.title, reverse("demo:use-case", args=[case.slug]), "")
        for case in use_cases.USE_CASES.values()
    ]
    found.append(("Weekly email blast", reverse("demo:blast"), ""))
    recurring = use_cases.recurring(limit=0)
    note = (
        f"  ({recurring.name}: next run {recurring.countdown})"
        if recurring.schedule is not None
        else f"  ({recurring.name} is not scheduled)"
    )
    found.append(("Recurring job", reverse("demo:recurring"), note))
    found.append(("Admin", reverse("admin:index"), ""))
    return found


class Child:
    """A subprocess whose output is relayed line by line with a prefix."""

    def __init__(self, name, argv, env, cwd, out):
        self.name = name
        self.tail = collections.deque(maxlen=20)
        self.process = subprocess.Popen(
            argv,
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            # Its own session: Ctrl-C reaches only this command, which stops the
            # children in order, and killpg() can reach a worker's own children.
            start_new_session=os.name == "posix",
        )
        self.reader = threading.Thread(target=self._relay, args=(out,), daemon=True)
        self.reader.start()

    def _relay(self, out):
        for raw in self.process.stdout:
            line = raw.decode(errors="replace").rstrip()
            self.tail.append(line)
            out.write(f"[{self.name}] {line}")

    def exited(self):
        return self.process.poll() is not None

    def terminate(self):
        """SIGTERM to the main process only: qcluster stops its own workers."""
        if not self.exited():
            with contextlib.suppress(ProcessLookupError):
                self.process.terminate()

    def reap(self, deadline):
        """Wait until ``deadline`` (monotonic), then kill whatever is left of it."""
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=max(deadline - time.monotonic(), 0.0))
        if os.name == "posix":
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)
        elif not self.exited():
            self.process.kill()
        self.process.wait()
        self.reader.join(timeout=2.0)

    def failure(self):
        output = "\n".join(self.tail) or "(no output)"
        return f"{self.name} exited with code {self.process.returncode}:\n{output}"


class Command(BaseCommand):
    help = (
        "Run the example site: migrate, create the demo user, start a django-q2 "
        "cluster and daphne, and stop both on Ctrl-C."
    )

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
        parser.add_argument("--port", default="8000", help="port to listen on (8000)")
        parser.add_argument("--username", default="demo", help="demo user's name (demo)")
        parser.add_argument("--password", default="demo", help="demo user's password (demo)")
        parser.add_argument("--open", action="store_true", help="open the site in a browser")

    def handle(self, *args, **options):
        host, port = options["host"], parse_port(options["port"])
        check_port_free(host, port)
        self.check_redis()
        self.migrate()
        self.reset_user(options["username"], options["password"])
        self.describe_setup()

        stop = threading.Event()
        previous = {
            signum: signal.signal(signum, lambda *_: stop.set())
            for signum in (signal.SIGINT, signal.SIGTERM)
        }
        children = []
        try:
            env = self.child_env(host)
            cwd = str(getattr(settings, "BASE_DIR", os.getcwd()))
            worker = Child(
                "worker", [sys.executable, "-m", "django", "qcluster"], env, cwd, self.stdout
            )
            children.append(worker)
            web = Child("web", self.daphne_argv(host, port), env, cwd, self.stdout)
            children.append(web)
            self.wait_until_listening(client_host(host), port, children, stop)
            if not stop.is_set():
                self.announce(host, port, options)
                if options["open"]:
                    webbrowser.open(self.site_url(host, port))
            while not stop.wait(0.2):
                dead = next((child for child in children if child.exited()), None)
                if dead is not None:
                    raise CommandError(f"the demo stopped because {dead.failure()}")
        finally:
            self.shut_down(children)
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        self.stdout.write("Stopped the worker and the web server.")

    # -- before starting -------------------------------------------------------

    def check_redis(self):
        url = redis_url()
        if url is None:
            return
        import redis

        try:
            redis.Redis.from_url(url, socket_connect_timeout=2).ping()
        except (redis.RedisError, ValueError) as exc:
            raise CommandError(
                f"Redis at {url} does not answer ({exc}): start it, or unset REDIS_URL "
                "to run without it"
            ) from None

    def migrate(self):
        self.stdout.write("Migrating the database...")
        try:
            call_command("migrate", interactive=False, verbosity=0)
        except DatabaseError as exc:
            name = settings.DATABASES["default"]["NAME"]
            raise CommandError(f"cannot migrate the database {name}: {exc}") from None

    def reset_user(self, username, password):
        """Create the demo user, or give it back its password and rights."""
        if not username or not password:
            raise CommandError("the demo user needs a non-empty --username and --password")
        user_model = get_user_model()
        user, created = user_model._default_manager.get_or_create(
            **{user_model.USERNAME_FIELD: username}
        )
        user.set_password(password)
        user.is_active = user.is_staff = user.is_superuser = True
        user.save()
        self.credentials = (username, password)
        verb = "Created" if created else "Reset"
        self.stdout.write(f"{verb} the demo user: {username} / {password}")

    def describe_setup(self):
        database = settings.DATABASES["default"]
        url = redis_url()
        layer = settings.CHANNEL_LAYERS.get("default", {}).get("BACKEND", "none")
        pushed = "InMemory" not in layer
        lines = [
            f"  database:     {database['ENGINE'].rsplit('.', 1)[-1]} ({database['NAME']})",
            f"  broker:       {'Redis at ' + url if url else 'django-q2 ORM broker (no Redis)'}",
            "  live updates: "
            + (
                f"pushed through {layer}" if pushed else "sockets re-read the job from the database"
            ),
            f"  schedules:    {schedules_text()}",
        ]
        self.stdout.write("\n".join(lines))

    def child_env(self, host):
        env = dict(os.environ)
        env.setdefault("DJANGO_SETTINGS_MODULE", settings.SETTINGS_MODULE)
        env["PYTHONUNBUFFERED"] = "1"
        base = str(getattr(settings, "BASE_DIR", os.getcwd()))
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [base, env.get("PYTHONPATH")]))
        allowed = list(settings.ALLOWED_HOSTS)
        if host not in WILDCARD_HOSTS and host not in allowed and "*" not in allowed:
            env["DJANGO_ALLOWED_HOSTS"] = ",".join([*allowed, url_host(host)])
        return env

    def daphne_argv(self, host, port):
        app = getattr(settings, "ASGI_APPLICATION", "")
        module, _, name = app.rpartition(".")
        if not module:
            raise CommandError("settings.ASGI_APPLICATION must name the ASGI application")
        return [sys.executable, "-m", "daphne", "-b", host, "-p", str(port), f"{module}:{name}"]

    # -- running -----------------------------------------------------------------

    def wait_until_listening(self, host, port, children, stop):
        deadline = time.monotonic() + START_TIMEOUT
        while not stop.is_set():
            for child in children:
                if child.exited():
                    raise CommandError(f"the demo could not start: {child.failure()}")
            with contextlib.suppress(OSError), socket.create_connection((host, port), 0.5):
                return
            if time.monotonic() > deadline:
                raise CommandError(
                    f"daphne did not listen on {host}:{port} within {START_TIMEOUT:g} s"
                )
            stop.wait(0.1)

    def site_url(self, host, port):
        return f"http://{url_host(client_host(host))}:{port}/"

    def announce(self, host, port, options):
        username, password = self.credentials
        site = self.site_url(host, port)
        self.stdout.write(
            self.style.SUCCESS(
                f"\nThe demo is running at {site}\n"
                f"Log in as {username} / {password}. Press Ctrl-C to stop.\n"
            )
        )
        listed = pages()
        width = max(len(title) for title, _path, _note in listed)
        for title, path, note in listed:
            self.stdout.write(f"  {title:<{width}}  {site.rstrip('/')}{path}{note}")
        self.stdout.write("")

    def shut_down(self, children):
        if not children:
            return
        self.stdout.write("Stopping the worker and the web server...")
        for child in children:
            child.terminate()
        deadline = time.monotonic() + STOP_GRACE
        for child in children:
            child.reap(deadline)
