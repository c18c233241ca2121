"""Push doubles: one that sends nothing, one that records what would be sent, and one
that also delivers it to the sockets of this process, as a cross-process layer would."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

from django_jobprogress.adapters.base import PushAdapter, PushWatch


class NullPush(PushAdapter):
    """Sends nothing; sockets watch the database."""

    def publish(self, group: str, snapshot: dict[str, Any], delay: float = 0.0) -> None:
        return None

    def publish_lazy(
        self, group: str, produce: Callable[[], dict[str, Any] | None], delay: float = 0.0
    ) -> None:
        return None  # not even read


class RecordingPush(PushAdapter):
    """Keeps every published ``(group, snapshot)`` in ``sent``, for tests."""

    sent: list[tuple[str, dict[str, Any]]] = []

    def publish(self, group: str, snapshot: dict[str, Any], delay: float = 0.0) -> None:
        self.sent.append((group, snapshot))

    @classmethod
    def clear(cls) -> None:
        cls.sent.clear()


class MemoryPush(RecordingPush):
    """Records like ``RecordingPush`` (in its own ``sent``) and delivers each snapshot
    at once to the watches of this process subscribed to its group.

    It claims ``crosses_processes``, so the sockets' hub listens to it instead of
    watching the database: push-mode socket tests run in one process, without Redis.
    ``subscribed()`` tells which groups some watch is subscribed to, ``open_watches()``
    how many watches are open.
    """

    crosses_processes = True
    sent: list[tuple[str, dict[str, Any]]] = []
    _watches: set[MemoryWatch] = set()
    _lock = threading.Lock()

    def publish(self, group: str, snapshot: dict[str, Any], delay: float = 0.0) -> None:
        super().publish(group, snapshot, delay)
        with self._lock:
            watches = list(self._watches)
        for watch in watches:
            watch.offer(group, snapshot)

    async def open_watch(self) -> MemoryWatch:
        watch = MemoryWatch(asyncio.get_running_loop())
        with self._lock:
            self._watches.add(watch)
        return watch

    @classmethod
    def clear(cls) -> None:
        """Empty ``sent``, and forget the watches of event loops that are closed."""
        super().clear()
        with cls._lock:
            for watch in [w for w in cls._watches if w.loop.is_closed()]:
                cls._watches.discard(watch)

    @classmethod
    def subscribed(cls) -> set[str]:
        with cls._lock:
            return {group for watch in cls._watches for group in watch.groups}

    @classmethod
    def open_watches(cls) -> int:
        with cls._lock:
            return len(cls._watches)

    @classmethod
    def _forget(cls, watch: MemoryWatch) -> None:
        with cls._lock:
            cls._watches.discard(watch)


class MemoryWatch(PushWatch):
    """A ``MemoryPush`` watch: published snapshots of its groups wait in a queue of
    the event loop that opened it (they may come from any thread)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.groups: set[str] = set()
        self.queue: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()

    def offer(self, group: str, snapshot: dict[str, Any]) -> None:
        with MemoryPush._lock:
            if group not in self.groups:
                return
        try:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, (group, snapshot))
        except RuntimeError:  # its loop is closed: a test ended without closing it
            MemoryPush._forget(self)

    async def subscribe(self, group: str) -> None:
        with MemoryPush._lock:
            self.groups.add(group)

    async def unsubscribe(self, group: str) -> None:
        with MemoryPush._lock:
            self.groups.discard(group)

    async def receive(self) -> tuple[str, dict[str, Any]]:
        return await self.queue.get()

    async def close(self) -> None:
        MemoryPush._forget(self)
