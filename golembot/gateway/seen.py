"""Platform message ids already handled, kept on disk so a restart does not answer twice.

Platforms re-deliver when an acknowledgement is late and replay on reconnect, sometimes hours
after the fact; the gateway may have been restarted meanwhile. ``.golem/seen-messages.json`` is
one JSON object ``{"<channel>:<messageId>": <epoch ms>}``; entries expire after 24 h. Saves are
coalesced (the marks of one burst are written together, right after it) rather than delayed
by seconds: a process killed just after answering must not leave the id unsaved, or the worker
that takes over would answer the platform's replay again. Only ids are kept: the same text sent
twice by a person is a new message (gateway.md §11.1).
"""
from __future__ import annotations

import json
import logging
import os
import time

import gevent

from ..files import atomic_write_json

log = logging.getLogger("golembot.gateway")
TTL_MS = 24 * 3600 * 1000
SAVE_DELAY_S = 0.0


def _now_ms() -> int:
    return int(time.time() * 1000)


class SeenStore:
    def __init__(self, dir: str):
        self.path = os.path.join(dir, ".golem", "seen-messages.json")
        self._seen: dict = self._load()
        self._pending = None
        self._dirty = False

    def reload(self) -> None:
        """Read the file again: a worker taking over must see what the old leader handled."""
        self._seen.update(self._load())

    def _load(self) -> dict:
        try:
            with open(self.path, encoding="utf-8") as fh:
                data = json.load(fh)
        except (OSError, ValueError):
            return {}
        cutoff = _now_ms() - TTL_MS
        return {k: v for k, v in data.items()
                if isinstance(k, str) and isinstance(v, (int, float)) and v > cutoff} \
            if isinstance(data, dict) else {}

    def mark_new(self, key: str) -> bool:
        """True (and remembered) the first time ``key`` is seen within 24 h, else False."""
        now = _now_ms()
        stamp = self._seen.get(key)
        if stamp is not None and now - stamp < TTL_MS:
            return False
        self._seen[key] = now
        self._dirty = True
        if self._pending is None:
            self._pending = gevent.spawn_later(SAVE_DELAY_S, self.save)
        return True

    def save(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None and pending is not gevent.getcurrent():
            pending.kill(block=False)
        if not self._dirty:
            return
        self._dirty = False
        cutoff = _now_ms() - TTL_MS
        self._seen = {k: v for k, v in self._seen.items() if v > cutoff}
        try:
            atomic_write_json(self.path, self._seen)
        except OSError as exc:  # dedup still works in memory
            log.warning("could not save %s: %s", self.path, exc)
