"""Server-Sent Events: one writer for every stream the server sends (``/chat``, ``/api/events``).

Every event is one ``data: <compact JSON>\\n\\n`` frame, yielded as its own chunk so the WSGI
server writes and flushes it at once (gevent's server sends each chunk as it comes; nothing in
between buffers). When nothing was written for ``keepalive_s`` seconds a ``: keep-alive``
comment goes out, so proxies and idle timers do not cut a stream while an agent thinks.

The response never drives the producer directly: events arrive through a :class:`Channel`, so a
client that hangs up stops only the writing side. Whoever produces the events decides whether
they go on (a ``/chat`` turn does; an activity subscription is stopped).
"""
from __future__ import annotations

import gevent
from gevent.queue import Empty, Queue
from flask import Response

from .. import events as ev

KEEPALIVE = b": keep-alive\n\n"
HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
_END = object()


def frame(event: dict) -> bytes:
    """The exact bytes of one event on the wire."""
    return b"data: " + ev.to_json(event).encode("utf-8", "replace") + b"\n\n"


class Channel:
    """A one-way pipe from a producer to one SSE response.

    ``put`` never blocks and never fails: once the reader has gone (``close``) or the stream was
    ended, further events are dropped. That is what lets a ``/chat`` turn finish after its client
    disconnected.
    """

    def __init__(self):
        self._queue = Queue()
        self.closed = False   # the reader went away
        self.ended = False    # no more events will come
        self._pump = None

    def put(self, event: dict) -> None:
        if not (self.closed or self.ended):
            self._queue.put(event)

    def end(self) -> None:
        if not self.ended:
            self.ended = True
            self._queue.put(_END)

    def get(self, timeout: float | None):
        """The next event, ``None`` at the end; raises :class:`gevent.queue.Empty` on timeout."""
        item = self._queue.get(timeout=timeout)
        return None if item is _END else item

    def close(self) -> None:
        """The reader is gone: forget queued events; stop a pumped iterator."""
        self.closed = True
        while not self._queue.empty():
            self._queue.get_nowait()
        if self._pump is not None:
            self._pump.kill(block=False)

    @classmethod
    def pumping(cls, iterable) -> "Channel":
        """A channel fed by a greenlet iterating ``iterable`` (stopped when the reader leaves)."""
        channel = cls()

        def pump():
            try:
                for item in iterable:
                    channel.put(item)
            finally:
                channel.end()
                close = getattr(iterable, "close", None)
                if callable(close):
                    close()

        channel._pump = gevent.spawn(pump)
        return channel


def stream(channel: Channel, keepalive_s: float = 15):
    """The response body: frames as they arrive, keep-alive comments in silences."""
    try:
        while True:
            try:
                event = channel.get(timeout=keepalive_s)
            except Empty:
                yield KEEPALIVE
                continue
            if event is None:
                return
            yield frame(event)
    finally:
        channel.close()


def sse_response(events, keepalive_s: float = 15) -> Response:
    """A 200 ``text/event-stream`` response for a :class:`Channel` or any iterator of dicts.

    A plain iterator is run in its own greenlet (so keep-alives can go out while it blocks) and
    is closed when the client leaves.
    """
    channel = events if isinstance(events, Channel) else Channel.pumping(events)
    resp = Response(stream(channel, keepalive_s), status=200, mimetype="text/event-stream",
                    headers=HEADERS, direct_passthrough=True)
    return resp
