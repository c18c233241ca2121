"""The WebSocket consumer and the per-process hub that feeds it.

Sockets do not subscribe one by one: each server process keeps one
``ProgressHub`` per event loop, which subscribes once per watched group through
the push adapter's watch half (``PushAdapter.open_watch``) and fans each update
out to its local sockets, serialising the JSON once. So a thousand sockets on
one job cost one subscription, not a thousand, and a mass connect or disconnect
makes one call to the adapter per job, not one per socket.

When the adapter's snapshots cannot be heard here (the embedded default: no
cross-process channel layer), the hub re-reads each watched job from the
database every ``WATCH_INTERVAL`` seconds instead. That database watch stays
in the hub, not behind the port: it is also how the hub resyncs in push mode
and how it watches a group whose subscription failed, and it reads the
models, which no adapter needs to know.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from typing import Any
from urllib.parse import parse_qs
from uuid import UUID

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer

from django_jobprogress import access, conf
from django_jobprogress.adapters import get_push_adapter
from django_jobprogress.adapters.base import PushAdapter, PushWatch
from django_jobprogress.groups import batch_group, job_group
from django_jobprogress.models import Batch, JobRecord

logger = logging.getLogger(__name__)

CLOSE_FORBIDDEN = 4403
# In push mode the database is still re-read this often, so a lost push (a timeout,
# a Redis restart) delays a socket by seconds instead of leaving it stale.
RESYNC_INTERVAL = 5.0
FINISHED = {"completed", "failed", "cancelled"}


def _is_newer(snapshot: dict[str, Any], than: dict[str, Any] | None) -> bool:
    """Order snapshots by their ``updated`` time; the ETA alone is no news."""
    if than is None:
        return True
    updated, last = snapshot.get("updated") or "", than.get("updated") or ""
    if updated != last:
        return updated > last
    return {**snapshot, "eta_seconds": None} != {**than, "eta_seconds": None}


@database_sync_to_async  # type: ignore[untyped-decorator]  # channels: no types
def load_snapshot(model: Any, pk: Any) -> dict[str, Any] | None:
    obj = model.objects.filter(pk=pk).first()
    return obj.snapshot() if obj is not None else None


def updates_are_pushed(adapter: PushAdapter) -> bool:
    """Whether jobs publish their snapshots where this process can hear them."""
    return adapter.crosses_processes and adapter.enabled


class ProgressHub:
    """Fans updates for watched groups out to local consumers (one hub per loop)."""

    def __init__(self) -> None:
        self.watchers: dict[str, set[ProgressConsumer]] = {}
        self._watch: PushWatch | None = None  # the watch new groups join
        self._watch_adapter: PushAdapter | None = None  # the adapter that opened it
        self._receivers: dict[PushWatch, asyncio.Task[None]] = {}  # every open watch
        self._subscribed: dict[str, PushWatch] = {}  # group -> the watch it is heard on
        self._pollers: dict[str, asyncio.Task[None]] = {}
        self._lock = asyncio.Lock()

    async def join(self, group: str, consumer: ProgressConsumer, load: Any) -> None:
        """Watch ``group`` for ``consumer``; ``load()`` re-reads the snapshot.

        Pushed updates come through the push adapter's watch when jobs publish where
        this process can hear them; the database is then re-read only now and then,
        to catch a push that was lost. Otherwise (no watch, or the adapter does not
        answer in time) the database is re-read every ``WATCH_INTERVAL``.
        """
        async with self._lock:
            first = group not in self.watchers
            self.watchers.setdefault(group, set()).add(consumer)
            if not first:
                return
            interval = conf.get("WATCH_INTERVAL")
            adapter = get_push_adapter()
            if updates_are_pushed(adapter):
                try:
                    timeout = conf.get("PUSH_TIMEOUT")
                    if await asyncio.wait_for(self._subscribe(adapter, group), timeout):
                        interval = max(interval, RESYNC_INTERVAL)
                except Exception:
                    logger.warning(
                        "push adapter unavailable; watching %s in the database",
                        group,
                        exc_info=True,
                    )
            self._pollers[group] = asyncio.ensure_future(self._poll_forever(group, load, interval))
            await self._close_unused_watches()

    async def _subscribe(self, adapter: PushAdapter, group: str) -> bool:
        """Subscribe ``group`` on the hub's watch, opened first if need be; False if
        the adapter gives no watch."""
        if self._watch is None or self._watch_adapter is not adapter:
            # None, or opened on an adapter since replaced (settings changed): groups
            # already heard on an old watch stay on it until they are left.
            watch = await adapter.open_watch()
            if watch is None:
                return False
            self._watch, self._watch_adapter = watch, adapter
            self._receivers[watch] = asyncio.ensure_future(self._receive_forever(watch))
        await self._watch.subscribe(group)
        self._subscribed[group] = self._watch
        return True

    async def leave(self, group: str, consumer: ProgressConsumer) -> None:
        async with self._lock:
            watchers = self.watchers.get(group)
            if not watchers or consumer not in watchers:
                return
            watchers.discard(consumer)
            if watchers:
                return
            del self.watchers[group]
            poller = self._pollers.pop(group, None)
            if poller is not None:
                poller.cancel()
            watch = self._subscribed.pop(group, None)
            if watch is not None:
                try:
                    await asyncio.wait_for(watch.unsubscribe(group), conf.get("PUSH_TIMEOUT"))
                except Exception:
                    logger.warning("could not leave group %s", group, exc_info=True)
            await self._close_unused_watches()

    async def _close_unused_watches(self) -> None:
        """Close each watch no group is heard on (idle, or all watched in the database
        after a failed subscribe), so nothing stays subscribed and no receive loop
        keeps retrying against a dead server."""
        in_use = set(self._subscribed.values())
        for watch in [w for w in self._receivers if w not in in_use]:
            receiver = self._receivers.pop(watch)
            # A receiver that is delivering the final snapshot of its last group got
            # here through its socket's leave(): it stops once that delivery is done.
            if receiver is not asyncio.current_task():
                receiver.cancel()
            if watch is self._watch:
                self._watch, self._watch_adapter = None, None
            try:
                await asyncio.wait_for(watch.close(), conf.get("PUSH_TIMEOUT"))
            except Exception:
                logger.warning("could not close a push watch", exc_info=True)

    async def _receive_forever(self, watch: PushWatch) -> None:
        # A single failure is retried at once: an idle watch may fail routinely
        # (ChannelsPush on channels-redis's core layer times out every ~5 s, see its
        # receive()), and a back-off would delay the next update or fill the log.
        failures = 0
        while True:
            try:
                group, snapshot = await watch.receive()
            except asyncio.CancelledError:
                raise
            except Exception:
                failures += 1
                if failures > 1:
                    logger.warning("push watch receive failed; retrying", exc_info=True)
                    await asyncio.sleep(min(0.1 * failures, 1.0))
                continue
            failures = 0
            await self.deliver(group, snapshot)
            if watch not in self._receivers and (task := asyncio.current_task()) is not None:
                # Closed while delivering (see _close_unused_watches): be cancelled in
                # the next receive(), as every closed watch's receiver is, so the watch
                # lets go there (channels-redis's pub/sub layer drops a channel so).
                task.cancel()

    async def _poll_forever(self, group: str, load: Any, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                snapshot = await load()
            except Exception:
                logger.warning("could not re-read %s", group, exc_info=True)
                continue
            if snapshot is not None:
                await self.deliver(group, snapshot)

    async def deliver(self, group: str, snapshot: dict[str, Any]) -> None:
        consumers = [c for c in self.watchers.get(group, ()) if c.wants(snapshot)]
        if not consumers:
            return
        text = json.dumps(snapshot)
        # One socket after the other: a send only hands the frame to the server's
        # transport, and a Task per socket (gather) costs more than the send. One
        # socket's failure (uvicorn raises ClientDisconnected for a socket that just
        # went away) must not stop the others, nor end the hub's receive loop.
        for consumer in consumers:
            try:
                await consumer.deliver(text, snapshot)
            except Exception:
                logger.debug("could not send %s to a socket", group, exc_info=True)


_hubs: dict[asyncio.AbstractEventLoop, ProgressHub] = {}


def get_hub() -> ProgressHub:
    loop = asyncio.get_running_loop()
    hub = _hubs.get(loop)
    if hub is None:
        hub = _hubs[loop] = ProgressHub()
    return hub


class ProgressConsumer(AsyncWebsocketConsumer):  # type: ignore[misc]  # channels: no types
    """Base of the job and batch sockets: the snapshot on connect, then every update.

    Authorised like the JSON views (owner, staff with the view permission, or
    ``?token=``); anyone else is closed with code 4403 before seeing anything.
    The socket is closed (1000) after the final snapshot.
    """

    # The hub talks to the push adapter; sockets need no channel-layer channel.
    channel_layer_alias = "__jobprogress_hub_only__"

    model: Any = None
    url_kwarg = ""

    group: str | None = None
    last_sent: dict[str, Any] | None = None

    def group_for(self, pk: Any) -> str:
        raise NotImplementedError

    async def connect(self) -> None:
        await self.accept()
        obj = await self._authorised(self.scope["url_route"]["kwargs"][self.url_kwarg])
        if obj is None:
            await self.close(code=CLOSE_FORBIDDEN)
            return
        self.group = self.group_for(obj.pk)
        load = functools.partial(load_snapshot, self.model, obj.pk)
        await get_hub().join(self.group, self, load)
        # Read again after joining (not the row read above): no update can then
        # fall between this snapshot and the first one the hub delivers.
        snapshot = await load()
        if snapshot is not None and self.wants(snapshot):
            await self.deliver(json.dumps(snapshot), snapshot)

    async def disconnect(self, code: int) -> None:
        if self.group is not None:
            await get_hub().leave(self.group, self)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """Clients have nothing to say; cancel goes through the JSON view."""

    def wants(self, snapshot: dict[str, Any]) -> bool:
        return _is_newer(snapshot, self.last_sent)

    async def deliver(self, text: str, snapshot: dict[str, Any]) -> None:
        if not self.wants(snapshot):
            return
        self.last_sent = snapshot
        await self.send(text_data=text)
        if snapshot["status"] in FINISHED and self.group is not None:
            group, self.group = self.group, None
            await get_hub().leave(group, self)  # nothing more will come: stop watching now
            await self.close(code=1000)

    async def _authorised(self, raw_id: Any) -> Any:
        token = parse_qs(self.scope.get("query_string", b"").decode()).get("token", [None])[0]
        return await _authorised(self.model, raw_id, self.scope.get("user"), token)


class JobProgressConsumer(ProgressConsumer):
    """``ws/jobs/<uuid>/``"""

    model = JobRecord
    url_kwarg = "job_id"

    def group_for(self, pk: Any) -> str:
        return job_group(pk)


class BatchProgressConsumer(ProgressConsumer):
    """``ws/batches/<uuid>/``"""

    model = Batch
    url_kwarg = "batch_id"

    def group_for(self, pk: Any) -> str:
        return batch_group(pk)


#: Most jobs and batches one shared socket may follow at once.
MAX_WATCHED = 500
KINDS: dict[str, tuple[Any, Any]] = {"job": (JobRecord, job_group), "batch": (Batch, batch_group)}


class WatchConsumer(AsyncWebsocketConsumer):  # type: ignore[misc]  # channels: no types
    """``ws/watch/``: one socket for every bar of a page.

    The client sends ``{"watch": [{"kind": "job" | "batch", "id": ..., "token": ...},
    ...]}`` (and ``{"unwatch": [...]}``); each entry is authorised like the
    single-job socket and answered with its snapshot, then with every update,
    until it finishes. An entry the viewer may not see is answered with
    ``{"kind": ..., "id": ..., "forbidden": true}``, whatever the reason, so it
    tells nothing. A malformed message is answered with ``{"error": ...}``.
    """

    channel_layer_alias = "__jobprogress_hub_only__"

    async def connect(self) -> None:
        self.last_sent: dict[str, dict[str, Any]] = {}  # group -> the last snapshot sent
        await self.accept()

    async def disconnect(self, code: int) -> None:
        for group in list(self.last_sent):
            await get_hub().leave(group, self)
        self.last_sent.clear()

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        try:
            message = json.loads(text_data or "")
            entries = _entries(message)
        except ValueError as exc:
            await self.send(text_data=json.dumps({"error": str(exc)}))
            return
        for verb, kind, raw_id, token in entries:
            if verb == "unwatch":
                await self._unwatch(kind, raw_id)
            else:
                await self._watch(kind, raw_id, token)

    async def _watch(self, kind: str, raw_id: Any, token: str | None) -> None:
        model, group_of = KINDS[kind]
        obj = await _authorised(model, raw_id, self.scope.get("user"), token)
        if obj is None:
            await self.send(text_data=json.dumps({"kind": kind, "id": raw_id, "forbidden": True}))
            return
        group = group_of(obj.pk)
        if group in self.last_sent:
            return
        if len(self.last_sent) >= MAX_WATCHED:
            await self.send(
                text_data=json.dumps({"error": f"at most {MAX_WATCHED} watched at once"})
            )
            return
        self.last_sent[group] = {}
        load = functools.partial(load_snapshot, model, obj.pk)
        await get_hub().join(group, self, load)
        snapshot = await load()  # after joining: no update falls in between
        if snapshot is not None:
            await self.deliver(json.dumps(snapshot), snapshot)

    async def _unwatch(self, kind: str, raw_id: Any) -> None:
        try:
            group = KINDS[kind][1](UUID(str(raw_id)))
        except ValueError:
            return
        if self.last_sent.pop(group, None) is not None:
            await get_hub().leave(group, self)

    def wants(self, snapshot: dict[str, Any]) -> bool:
        last = self.last_sent.get(_group_of(snapshot))
        return last is not None and _is_newer(snapshot, last or None)

    async def deliver(self, text: str, snapshot: dict[str, Any]) -> None:
        if not self.wants(snapshot):
            return
        group = _group_of(snapshot)
        self.last_sent[group] = snapshot
        await self.send(text_data=text)
        if snapshot["status"] in FINISHED:
            del self.last_sent[group]
            await get_hub().leave(group, self)  # nothing more will come for it


def _group_of(snapshot: dict[str, Any]) -> str:
    return KINDS[snapshot.get("kind", "job")][1](snapshot["id"])


def _entries(message: Any) -> list[tuple[str, str, Any, str | None]]:
    """``(verb, kind, id, token)`` for each entry of a client's message; ValueError,
    naming what is wrong, for anything else."""
    if not isinstance(message, dict) or not set(message) <= {"watch", "unwatch"} or not message:
        raise ValueError('send {"watch": [...]} or {"unwatch": [...]}')
    found = []
    for verb, entries in message.items():
        if not isinstance(entries, list) or len(entries) > MAX_WATCHED:
            raise ValueError(f"{verb!r} must be a list of at most {MAX_WATCHED} entries")
        for entry in entries:
            kind = entry.get("kind", "job") if isinstance(entry, dict) else None
            if kind not in KINDS or not isinstance(entry.get("id"), str):
                raise ValueError(
                    f'each {verb!r} entry must be {{"kind": "job" or "batch", "id": "<uuid>"}}'
                )
            token = entry.get("token")
            found.append((verb, kind, entry["id"], token if isinstance(token, str) else None))
    return found


@database_sync_to_async  # type: ignore[untyped-decorator]  # channels: no types
def _authorised(model: Any, raw_id: Any, user: Any, token: str | None) -> Any:
    try:
        pk = UUID(str(raw_id))
    except ValueError:
        return None
    obj = model.objects.filter(pk=pk).first()
    if obj is None or not access.can_view(user, obj, token or None):
        return None
    return obj
