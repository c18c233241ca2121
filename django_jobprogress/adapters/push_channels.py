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
    """An asyncio loop in a daemon thread that sends queued snapshots."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.loop = asyncio.new_event_loop()
        # group -> (newest message, when it is due on the loop's clock)
        self.pending: dict[str, tuple[dict[str, Any], float]] = {}
        self.idle = threading.Event()
        self.idle.set()
        self._in_flight = 0
        self._count_lock = threading.Lock()
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
        with self._count_lock:
            self._in_flight += 1  # handed over but not yet queued on the loop
            self.idle.clear()
        self.loop.call_soon_threadsafe(self._queue, group, message, delay)

    def _queue(self, group: str, message: dict[str, Any], delay: float) -> None:
        with self._count_lock:
            self._in_flight -= 1
        due = self.loop.time() + delay
        if group in self.pending:  # a newer snapshot replaces an unsent one
            due = min(due, self.pending[group][1])
        self.pending[group] = (message, due)
        self._wake.set()

    async def _send_forever(self) -> None:
        while True:
            if not self.pending:
                with self._count_lock:
                    if not self._in_flight:
                        self.idle.set()
                await self._wake.wait()
            self._wake.clear()
            now = self.loop.time()
            due = {g: m for g, (m, when) in self.pending.items() if when <= now}
            if not due:  # only delayed snapshots: sleep until the first is due, or news
                wait = min(when for _, when in self.pending.values()) - now
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), wait)
                continue
            for group in due:
                del self.pending[group]
            layer = get_channel_layer(conf.get("CHANNEL_LAYER"))
            timeout = conf.get("PUSH_TIMEOUT")
            if layer is not None:
                await asyncio.gather(*(self._send(layer, g, m, timeout) for g, m in due.items()))

    async def _send(self, layer: Any, group: str, message: dict[str, Any], timeout: float) -> None:
        try:
            await asyncio.wait_for(layer.group_send(group, message), timeout)
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
