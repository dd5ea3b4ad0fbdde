"""What the gateway has done, for ``/api/status``, the dashboard and the ``/api/events`` feed.

In memory, per process (a restart starts at zero). Every recorded message is also published to
the live activity subscribers; each subscriber has its own bounded queue so one slow browser
never holds up the recorder.
"""
from __future__ import annotations

from gevent.queue import Full, Queue

from ..sessions import iso_now

RECENT_LIMIT = 100
PREVIEW = 120
SUBSCRIBER_QUEUE = 200


class Broadcaster:
    """Fan-out of activity entries to ``/api/events`` subscribers."""

    def __init__(self):
        self._queues: list = []

    def subscribe(self) -> Queue:
        queue = Queue(maxsize=SUBSCRIBER_QUEUE)
        self._queues.append(queue)
        return queue

    def unsubscribe(self, queue) -> None:
        if queue in self._queues:
            self._queues.remove(queue)

    def stream(self):
        """Iterator of entries for one subscriber; unsubscribes when closed."""
        queue = self.subscribe()
        try:
            while True:
                yield queue.get()
        finally:
            self.unsubscribe(queue)

    def publish(self, entry: dict) -> None:
        for queue in list(self._queues):
            try:
                queue.put_nowait(entry)
            except Full:  # a stuck client loses entries, never the recorder
                pass

    @property
    def subscriber_count(self) -> int:
        return len(self._queues)


class Metrics:
    """Counters + the last 100 messages (gateway.md §16)."""

    def __init__(self, activity: Broadcaster | None = None):
        self.activity = activity or Broadcaster()
        self.total_messages = 0
        self.total_cost_usd = 0.0
        self.total_duration_ms = 0
        self.by_source: dict = {}
        self.recent: list = []

    def record(self, source, sender, message, response, durationMs=None, costUsd=None,
               passed=None) -> dict:
        entry = {"ts": iso_now(), "source": source, "sender": sender or "anonymous",
                 "messagePreview": (message or "")[:PREVIEW],
                 "responsePreview": (response or "")[:PREVIEW]}
        if durationMs:
            entry["durationMs"] = durationMs
            self.total_duration_ms += durationMs
        if costUsd:
            entry["costUsd"] = costUsd
            self.total_cost_usd += costUsd
        if passed:
            entry["passed"] = True
        self.total_messages += 1
        self.by_source[source] = self.by_source.get(source, 0) + 1
        self.recent.append(entry)
        del self.recent[:-RECENT_LIMIT]
        self.activity.publish(entry)
        return entry

    def snapshot(self) -> dict:
        n = self.total_messages
        return {"totalMessages": n, "totalCostUsd": round(self.total_cost_usd, 6),
                "avgDurationMs": round(self.total_duration_ms / n) if n else 0,
                "messagesBySource": dict(self.by_source), "recentMessages": list(self.recent)}
