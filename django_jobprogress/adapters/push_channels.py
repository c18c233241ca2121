"""Channels push: the transport's publishing side (the app's only other importers of
``channels`` are ``consumers`` and ``routing``).

``publish()`` is called on the job's path, so it never blocks: it hands the
snapshot to one event loop per process running in a daemon thread, which sends
it with ``group_send`` under a time bound. Snapshots waiting for the same group
are coalesced to the newest, which keeps channel layers under their capacity.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import math
import os
import threading
from typing import Any

from channels.layers import InMemoryChannelLayer, get_channel_layer

from django_jobprogress import conf
from django_jobprogress.adapters.base import PushAdapter

logger = logging.getLogger(__name__)

MESSAGE_TYPE = "jobprogress.update"


def layer_crosses_processes(alias: str | None = None) -> bool:
    """True when the configured channel layer reaches other processes (e.g. Redis)."""
    layer = get_channel_layer(alias or conf.get("CHANNEL_LAYER"))
    return layer is not None and not isinstance(layer, InMemoryChannelLayer)


class _SenderLoop:
    """An asyncio loop in a daemon thread that sends queued snapshots.

    Snapshots wait in ``pending``, the newest per group with the time it is due.
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
        # group -> (newest message, when it is due on the loop's clock)
        self.pending: dict[str, tuple[dict[str, Any], float]] = {}
        self.idle = threading.Event()
        self.idle.set()
        self._lock = threading.Lock()
        self._looks_at = math.inf  # when the loop will next look at ``pending``
        self._wake: asyncio.Event | None = None
        ready = threading.Event()
        self.thread = threading.Thread(
            target=self._run, args=(ready,), name="jobprogress-push", daemon=True
        )
        self.thread.start()
        ready.wait()

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        self._wake = asyncio.Event()
        ready.set()
        self.loop.run_until_complete(self._send_forever())

    def submit(self, group: str, message: dict[str, Any], delay: float = 0.0) -> None:
        due = self.loop.time() + delay  # the loop's clock is monotonic, readable anywhere
        with self._lock:
            if group in self.pending:  # a newer snapshot replaces an unsent one
                due = min(due, self.pending[group][1])
            self.pending[group] = (message, due)
            self.idle.clear()
            wake = due < self._looks_at
            if wake:
                self._looks_at = due
        if wake:
            self.loop.call_soon_threadsafe(self._wake.set)

    def _take_due(self, now: float) -> dict[str, dict[str, Any]]:
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

    async def _send_all(self, due: dict[str, dict[str, Any]]) -> None:
        layer = get_channel_layer(conf.get("CHANNEL_LAYER"))
        if layer is None:
            return
        timeout = conf.get("PUSH_TIMEOUT")
        if len(due) == 1:  # the usual case: no Task for a lone send
            [(group, message)] = due.items()
            await self._send(layer, group, message, timeout)
        else:
            await asyncio.gather(*(self._send(layer, g, m, timeout) for g, m in due.items()))

    async def _send(self, layer: Any, group: str, message: dict[str, Any], timeout: float) -> None:
        try:
            async with asyncio.timeout(timeout):
                await layer.group_send(group, message)
        except Exception as exc:
            logger.warning("could not push to %s: %s: %s", group, type(exc).__name__, exc)


class ChannelsPush(PushAdapter):
    """Sends snapshots through the channel layer named by ``JOBPROGRESS["CHANNEL_LAYER"]``."""

    crosses_processes = True

    def __init__(self) -> None:
        self._sender: _SenderLoop | None = None
        self._lock = threading.Lock()

    def _get_sender(self) -> _SenderLoop:
        sender = self._sender
        if sender is None or sender.pid != os.getpid():  # a forked worker needs its own
            with self._lock:
                if self._sender is None or self._sender.pid != os.getpid():
                    self._sender = _SenderLoop()
                sender = self._sender
        return sender

    @property
    def enabled(self) -> bool:
        """Only a cross-process layer is worth publishing to; else sockets watch the DB."""
        return layer_crosses_processes()

    def publish(self, group: str, snapshot: dict[str, Any], delay: float = 0.0) -> None:
        message = {"type": MESSAGE_TYPE, "group": group, "snapshot": snapshot}
        self._get_sender().submit(group, message, delay)

    def flush(self, timeout: float = 1.0) -> bool:
        sender = self._sender
        if sender is None or sender.pid != os.getpid():
            return True
        return sender.idle.wait(timeout)


def _flush_at_exit() -> None:
    from django_jobprogress.adapters import get_push_adapter

    with contextlib.suppress(Exception):  # best effort during interpreter shutdown
        get_push_adapter().flush(conf.get("PUSH_TIMEOUT"))


atexit.register(_flush_at_exit)
