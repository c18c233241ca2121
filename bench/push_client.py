"""The client side of ``bench/push_latency.py``: WebSocket sockets or a JSON poller.

Started by the script as a subprocess; prints ``READY`` once every socket has its
first snapshot (or the first poll has answered), then records until the job has
finished, and writes what it saw to ``--out`` as JSON:

- ``first``: for each socket, for each update index ``i`` (0..updates), the
  ``time.time_ns()`` at which the client first held a snapshot with index >= i
  (``null`` if never). The index of a snapshot is ``round(progress * updates)``,
  so a coalesced (skipped) update counts as received with the next one;
- ``messages``: messages received per socket; ``close_codes``; ``errors``.

WebSockets use the Sans-I/O protocol of the ``websockets`` library driven by a
bare ``asyncio.Protocol``: each message is stamped in ``data_received``, as soon
as its bytes reach this process, so the client's own scheduling of hundreds of
sockets does not add to the measured latency. Parsing the JSON is left until
the job is over.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import signal
import sys
import time
from urllib.parse import urlsplit

from websockets.client import ClientProtocol
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.uri import parse_uri

FINISHED = {"completed", "failed", "cancelled"}


class Socket(asyncio.Protocol):
    """One WebSocket connection that stamps every text message on arrival."""

    def __init__(self, url: str, compression: bool) -> None:
        extensions = [ClientPerMessageDeflateFactory()] if compression else None
        self.ws = ClientProtocol(parse_uri(url), extensions=extensions, max_size=None)
        self.transport: asyncio.Transport | None = None
        self.received: list[tuple[int, bytes]] = []
        self.partial: list[bytes] = []
        loop = asyncio.get_running_loop()
        self.opened: asyncio.Future = loop.create_future()  # the first message arrived
        self.closed: asyncio.Future = loop.create_future()
        self.extensions = ""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.ws.send_request(self.ws.connect())
        self._flush()

    def data_received(self, data: bytes) -> None:
        now = time.time_ns()
        self.ws.receive_data(data)
        for event in self.ws.events_received():
            if isinstance(event, Frame):
                if event.opcode is Opcode.TEXT or (event.opcode is Opcode.CONT and self.partial):
                    self.partial.append(event.data)
                    if event.fin:
                        self.received.append((now, b"".join(self.partial)))
                        self.partial = []
                        if not self.opened.done():
                            self.opened.set_result(None)
            elif isinstance(event, Response):
                self.extensions = event.headers.get("Sec-WebSocket-Extensions", "")
                if self.ws.handshake_exc is not None and not self.opened.done():
                    self.opened.set_exception(self.ws.handshake_exc)
        self._flush()

    def eof_received(self) -> bool | None:
        self.ws.receive_eof()
        self._flush()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(exc or ConnectionError("closed before the first message"))
        if not self.closed.done():
            self.closed.set_result(None)

    def _flush(self) -> None:
        for data in self.ws.data_to_send():
            if data:
                self.transport.write(data)
            elif self.transport.can_write_eof():
                self.transport.write_eof()
        if self.ws.close_expected():
            # The server closed (or we answered its close): drop the TCP connection.
            asyncio.get_running_loop().call_later(1.0, self.transport.close)

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()


def index_of(text: bytes, updates: int) -> tuple[int, str]:
    snapshot = json.loads(text)
    return round(snapshot["progress"] * updates), snapshot["status"]


def tapped_index_of(data: bytes, updates: int) -> tuple[int, str]:
    """The index of a channels-redis pub/sub message (msgpack) holding a snapshot."""
    import msgpack

    snapshot = msgpack.unpackb(data)["snapshot"]
    return round(snapshot["progress"] * updates), snapshot["status"]


def first_receipts(received: list[tuple[int, bytes]], updates: int, parse=index_of) -> list:
    """For each index 0..updates, when a snapshot at or past it was first held."""
    first: list[int | None] = [None] * (updates + 1)
    seen = -1
    for stamp, data in received:
        index, _ = parse(data, updates)
        if index > seen:
            for i in range(seen + 1, index + 1):
                first[i] = stamp
            seen = index
    return first


async def tap(url: str, channel: str, received: list[tuple[int, bytes]], ready) -> None:
    """Stamp each message published on the job group's Redis pub/sub channel: the
    moment an update has left the worker and reached Redis."""
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(url)
    pubsub = client.pubsub()
    await pubsub.subscribe(channel)
    ready.set_result(None)
    try:
        while True:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=None)
            if message is not None:
                received.append((time.time_ns(), message["data"]))
    finally:
        await pubsub.aclose()
        await client.aclose()


async def run_sockets(args: argparse.Namespace) -> dict:
    loop = asyncio.get_running_loop()
    host, port = urlsplit(args.url).hostname, urlsplit(args.url).port
    gate = asyncio.Semaphore(args.connect_concurrency)
    errors: list[str] = []

    async def open_socket() -> Socket | None:
        async with gate:
            try:
                _, sock = await loop.create_connection(
                    lambda: Socket(args.url, args.compression), host, port
                )
                await asyncio.wait_for(sock.opened, args.timeout)
                return sock
            except Exception as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
                return None

    tapped: list[tuple[int, bytes]] = []
    tapping = None
    if args.tap_channel:
        ready = loop.create_future()
        tapping = asyncio.ensure_future(tap(args.tap_redis, args.tap_channel, tapped, ready))
        await ready
    opened = await asyncio.gather(*(open_socket() for _ in range(args.sockets)))
    sockets = [s for s in opened if s is not None]
    print(f"READY {len(sockets)}", flush=True)
    # Until the server has closed every socket (after the job's final snapshot), or
    # SIGUSR1 (the script gives up waiting), or the timeout.
    wrap_up = asyncio.Event()
    loop.add_signal_handler(signal.SIGUSR1, wrap_up.set)
    all_closed = asyncio.ensure_future(asyncio.gather(*(s.closed for s in sockets)))
    told = asyncio.ensure_future(wrap_up.wait())
    await asyncio.wait([all_closed, told], timeout=args.timeout, return_when="FIRST_COMPLETED")
    told.cancel()
    not_closed = sum(not s.closed.done() for s in sockets)
    for s in sockets:
        s.close()
    if tapping is not None:
        tapping.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await tapping
    return {
        "tapped": first_receipts(tapped, args.updates, tapped_index_of) if tapping else None,
        "first": [first_receipts(s.received, args.updates) for s in sockets],
        "messages": [len(s.received) for s in sockets],
        "close_codes": [s.ws.close_code for s in sockets],
        "not_closed": not_closed,
        "extensions": sorted({s.extensions for s in sockets}),
        "errors": errors,
    }


def run_poller(args: argparse.Namespace) -> dict:
    """GET the JSON view every ``--interval`` s on a fixed schedule, like ``setInterval``."""
    parts = urlsplit(args.url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=args.timeout)
    target = parts.path + ("?" + parts.query if parts.query else "")
    received: list[tuple[int, bytes]] = []
    errors: list[str] = []
    requests = 0
    deadline = time.monotonic() + args.timeout
    due = time.monotonic()
    while time.monotonic() < deadline:
        try:
            conn.request("GET", target)
            response = conn.getresponse()
            body = response.read()
            requests += 1
            if response.status != 200:
                errors.append(f"HTTP {response.status}")
                body = None
        except (OSError, http.client.HTTPException) as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
            conn.close()
            body = None
        if body is not None:
            received.append((time.time_ns(), body))
            if len(received) == 1:
                print("READY 1", flush=True)
            if index_of(body, args.updates)[1] in FINISHED:
                break
        due += args.interval
        time.sleep(max(0.0, due - time.monotonic()))
    conn.close()
    return {
        "tapped": None,
        "first": [first_receipts(received, args.updates)],
        "messages": [requests],
        "close_codes": [None],
        "not_closed": 0,
        "extensions": [],
        "errors": errors,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description="push_latency.py's client process")
    parser.add_argument("mode", choices=["ws", "poll"])
    parser.add_argument("--url", required=True)
    parser.add_argument("--updates", type=int, required=True, help="the job's update count")
    parser.add_argument("--out", required=True)
    parser.add_argument("--sockets", type=int, default=1)
    parser.add_argument("--compression", action="store_true", help="offer permessage-deflate")
    parser.add_argument("--connect-concurrency", type=int, default=50)
    parser.add_argument("--interval", type=float, default=0.5, help="poll interval (poll mode)")
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--tap-channel", help="also stamp this Redis pub/sub channel's messages")
    parser.add_argument("--tap-redis", default="redis://127.0.0.1:6379/13")
    parser.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio")
    args = parser.parse_args()
    if args.mode == "poll":
        result = run_poller(args)
    elif args.loop == "uvloop":
        import uvloop

        result = uvloop.run(run_sockets(args))
    else:
        result = asyncio.run(run_sockets(args))
    with open(args.out, "w") as f:
        json.dump(result, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
