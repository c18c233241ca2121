"""Channels push: both halves of the push port on a Channels layer (the app's only
other importers of ``channels`` are ``consumers`` and ``routing``, for the sockets).

``publish()`` is called on the job's path, so it never blocks: it hands the
snapshot to one event loop per process running in a daemon thread, which sends
it with ``group_send`` under a time bound. Snapshots waiting for the same group
are coalesced to the newest, which keeps channel layers under their capacity;
a snapshot published lazily is read only when it is sent.

``open_watch()`` gives a server process's hub one channel of its own, which it
adds to each group its sockets watch.

Both halves speak one envelope, private to this module:
``{"type": "jobprogress.update", "group": ..., "snapshot": ...}``.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import math
import os
import threading
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.core.checks import CheckMessage
from django.db import close_old_connections

from django_jobprogress import conf
from django_jobprogress.adapters.base import PushAdapter, PushWatch, require_installed

logger = logging.getLogger(__name__)

_MESSAGE_TYPE = "jobprogress.update"

Snapshot = dict[str, Any]
# What waits to be sent: a snapshot, or the function that reads it when it is sent.
Item = Snapshot | Callable[[], Snapshot | None]


def _envelope(group: str, snapshot: Snapshot) -> dict[str, Any]:
    return {"type": _MESSAGE_TYPE, "group": group, "snapshot": snapshot}


def _read(produce: Callable[[], Snapshot | None]) -> Snapshot | None:
    """Run ``produce`` on the reader thread, closing its database connection after
    use as Django does around a request (it is not a request's thread)."""
    close_old_connections()
    try:
        return produce()
    finally:
        close_old_connections()


def layer_crosses_processes(alias: str | None = None) -> bool:
    """True when the configured channel layer reaches other processes (e.g. Redis)."""
    layer = get_channel_layer(alias or conf.get("CHANNEL_LAYER"))
    return layer is not None and not isinstance(layer, InMemoryChannelLayer)


class _SenderLoop:
    """An asyncio loop in a daemon thread that sends queued snapshots.

    Snapshots wait in ``pending``, the newest per group with the time it is due;
    a lazy one (a function) is called when it is due, on one reader thread.
    Waking the loop from the job's thread is the costly part of a push, so it is
    woken only when a snapshot is due before the loop would look anyway. After
    sending, the loop looks every ``TICK`` seconds for a while, so the "started"
    snapshot a job holds back for one throttle period normally rides on a look
    the loop makes anyway.
    """

    TICK = 0.1  # seconds between looks while recently active
    LINGER = 1.0  # seconds of ticking after the last send

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.loop = asyncio.new_event_loop()
        # group -> (newest snapshot or its reader, when it is due on the loop's clock)
        self.pending: dict[str, tuple[Item, float]] = {}
        self.idle = threading.Event()
        self.idle.set()
        self._lock = threading.Lock()
        self._looks_at = math.inf  # when the loop will next look at ``pending``
        self._wake = asyncio.Event()  # bound to the loop that first waits on it
        # One thread reads lazy snapshots: the database sees at most one connection
        # per process from it, and a slow read cannot block the loop.
        self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="jobprogress-push-read")
        ready = threading.Event()
        self.thread = threading.Thread(
            target=self._run, args=(ready,), name="jobprogress-push", daemon=True
        )
        self.thread.start()
        ready.wait()

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        ready.set()
        self.loop.run_until_complete(self._send_forever())

    def submit(self, group: str, item: Item, delay: float = 0.0) -> None:
        due = self.loop.time() + delay  # the loop's clock is monotonic, readable anywhere
        with self._lock:
            if group in self.pending:  # a newer snapshot replaces an unsent one
                due = min(due, self.pending[group][1])
            self.pending[group] = (item, due)
            self.idle.clear()
            wake = due < self._looks_at
            if wake:
                self._looks_at = due
        if wake:
            self.loop.call_soon_threadsafe(self._wake.set)

    def _take_due(self, now: float) -> dict[str, Item]:
        with self._lock:
            due = {g: m for g, (m, when) in self.pending.items() if when <= now}
            for group in due:
                del self.pending[group]
            return due

    def _plan_next_look(self, now: float, linger_until: float) -> float:
        """When to look next: the first due snapshot, a tick while recently active,
        or never (until woken). Idle is set here, when nothing is left to send."""
        with self._lock:
            looks_at = min((when for _, when in self.pending.values()), default=math.inf)
            if not self.pending:
                self.idle.set()
                if now < linger_until:
                    looks_at = now + self.TICK
            self._looks_at = looks_at
            # Cleared under the lock: a submit after this sees the new _looks_at, and its
            # wake-up callback can only run once this coroutine awaits.
            self._wake.clear()
            return looks_at

    async def _send_forever(self) -> None:
        linger_until = -math.inf
        while True:
            now = self.loop.time()
            due = self._take_due(now)
            if due:
                await self._send_all(due)
                linger_until = now + self.LINGER
                continue  # more may have come while sending
            looks_at = self._plan_next_look(now, linger_until)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout_at(None if looks_at == math.inf else looks_at):
                    await self._wake.wait()

    async def _send_all(self, due: dict[str, Item]) -> None:
        layer = get_channel_layer(conf.get("CHANNEL_LAYER"))
        if layer is None:
            return
        timeout = conf.get("PUSH_TIMEOUT")
        if len(due) == 1:  # the usual case: no Task for a lone send
            [(group, item)] = due.items()
            await self._send(layer, group, item, timeout)
        else:
            await asyncio.gather(*(self._send(layer, g, m, timeout) for g, m in due.items()))

    async def _send(self, layer: Any, group: str, item: Item, timeout: float) -> None:
        try:
            async with asyncio.timeout(timeout):
                if callable(item):
                    snapshot = await self.loop.run_in_executor(self._reader, _read, item)
                    if snapshot is None:
                        return
                else:
                    snapshot = item
                await layer.group_send(group, _envelope(group, snapshot))
        except Exception as exc:
            logger.warning("could not push to %s: %s: %s", group, type(exc).__name__, exc)


class _ChannelsWatch(PushWatch):
    """The hub's own channel on the layer, added to each watched group."""

    def __init__(self, layer: Any, channel: str) -> None:
        self.layer = layer
        self.channel = channel

    async def subscribe(self, group: str) -> None:
        await self.layer.group_add(group, self.channel)

    async def unsubscribe(self, group: str) -> None:
        await self.layer.group_discard(group, self.channel)

    async def receive(self) -> tuple[str, Snapshot]:
        """The next snapshot on the channel.

        Raises ``TimeoutError`` about every 5 s while idle on channels-redis's core
        layer: it blocks 5 s in BZPOPMIN, and redis-py 8 gives up reading after its
        default socket_timeout of 5 s (the hub retries a single failure at once).
        Cancelling it lets the pub/sub layer drop the channel: nothing else to close.
        """
        while True:
            message = await self.layer.receive(self.channel)
            if message.get("type") == _MESSAGE_TYPE:
                return message["group"], message["snapshot"]


class ChannelsPush(PushAdapter):
    """Sends snapshots through the channel layer named by ``JOBPROGRESS["CHANNEL_LAYER"]``,
    and watches groups on it."""

    def __init__(self) -> None:
        self._sender: _SenderLoop | None = None
        self._lock = threading.Lock()

    def _get_sender(self) -> _SenderLoop:
        sender = self._sender
        if sender is None or sender.pid != os.getpid():  # a forked worker needs its own
            with self._lock:
                if self._sender is None or self._sender.pid != os.getpid():
                    self._sender = _SenderLoop()
                    # What is still queued at exit is sent first (bounded by PUSH_TIMEOUT).
                    atexit.register(_flush_at_exit, weakref.ref(self))
                sender = self._sender
        return sender

    @property
    def crosses_processes(self) -> bool:
        """True when the layer reaches other processes (Redis; not the in-memory one)."""
        return layer_crosses_processes()

    @property
    def enabled(self) -> bool:
        """Only a cross-process layer is worth publishing to; else sockets watch the DB."""
        return self.crosses_processes

    def publish(self, group: str, snapshot: Snapshot, delay: float = 0.0) -> None:
        self._get_sender().submit(group, snapshot, delay)

    def publish_lazy(
        self, group: str, produce: Callable[[], Snapshot | None], delay: float = 0.0
    ) -> None:
        """Queue ``produce``: the sender calls it once, when the group is due."""
        self._get_sender().submit(group, produce, delay)

    async def open_watch(self) -> PushWatch | None:
        layer = get_channel_layer(conf.get("CHANNEL_LAYER"))
        if layer is None or isinstance(layer, InMemoryChannelLayer):
            return None  # nothing published elsewhere can be heard through it
        return _ChannelsWatch(layer, await layer.new_channel("jobprogress."))

    def flush(self, timeout: float = 1.0) -> bool:
        sender = self._sender
        if sender is None or sender.pid != os.getpid():
            return True
        return sender.idle.wait(timeout)

    def check(self) -> list[CheckMessage]:
        return require_installed("channels", "jobprogress.E008")


def _flush_at_exit(adapter: weakref.ref[ChannelsPush]) -> None:
    live = adapter()
    if live is not None:
        with contextlib.suppress(Exception):  # best effort during interpreter shutdown
            live.flush(conf.get("PUSH_TIMEOUT"))
